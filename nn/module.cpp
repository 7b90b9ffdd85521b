// nn/module.cpp: parameter/buffer registration, recursive naming, modes and device moves.
#include "nn/module.h"

#include <sstream>

namespace minima::nn {

namespace {
// Re-points `t`'s TensorImpl at a contiguous copy of its data on `d` (keeps every handle valid).
void repoint(const Tensor& t, const Tensor& moved) {
  TensorImpl* im = t.impl();
  im->storage = moved.storage();
  im->strides = moved.strides();
  im->offset = moved.offset();
  im->dtype = moved.dtype();
}
void move_in_place(const Tensor& t, Device d) {
  if (!t.defined() || t.device() == d) return;
  NoGradGuard ng;
  repoint(t, t.detach().to(d).contiguous());
}
void convert_in_place(const Tensor& t, DType dt) {
  if (!t.defined() || t.dtype() == dt || !is_floating(t.dtype())) return;
  NoGradGuard ng;
  repoint(t, t.detach().to(dt).contiguous());
}
}  // namespace

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  MINIMA_CHECK(t.defined(), "register_parameter: '", name, "' is undefined");
  MINIMA_CHECK(name.find('.') == std::string::npos, "register_parameter: name '", name, "' must not contain '.'");
  if (!t.requires_grad()) t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  MINIMA_CHECK(t.defined(), "register_buffer: '", name, "' is undefined");
  buffers_.emplace_back(name, t);
  return t;
}

bool Module::contains(const Module* m) const {
  if (this == m) return true;
  for (const auto& c : children_)
    if (c.second->contains(m)) return true;
  return false;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  MINIMA_CHECK(m != nullptr, "register_module: child '", name, "' is null");
  // A module inside itself would make every walk over the tree (parameters, to(), train()) recurse
  // for ever.
  MINIMA_CHECK(!m->contains(this), "register_module: child '", name,
               "' contains this module: a module cannot hold itself");
  for (const auto& c : children_)
    MINIMA_CHECK(c.first != name, "register_module: a child named '", name, "' already exists");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const {
  if (params)
    for (const auto& p : params_) out.emplace_back(prefix + p.first, p.second);
  if (buffers)
    for (const auto& b : buffers_) out.emplace_back(prefix + b.first, b.second);
  for (const auto& c : children_) c.second->collect(prefix + c.first + ".", params, buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

void Module::to(Device d) {
  for (auto& p : named_parameters()) {
    move_in_place(p.second, d);
    if (p.second.grad().defined()) move_in_place(p.second.grad(), d);
  }
  for (auto& b : named_buffers()) move_in_place(b.second, d);
}

void Module::to(DType t) {
  MINIMA_CHECK(is_floating(t), "Module::to: expected a floating dtype, got ", t);
  for (auto& p : named_parameters()) {
    convert_in_place(p.second, t);
    convert_in_place(p.second.grad(), t);
  }
  for (auto& b : named_buffers()) convert_in_place(b.second, t);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : named_parameters()) n += p.second.numel();
  return n;
}

void Module::zero_grad() {
  NoGradGuard ng;
  for (auto& p : named_parameters())
    if (p.second.grad().defined()) p.second.grad().zero_();
}

std::string Module::tree(int indent) const {
  std::ostringstream s;
  s << describe();
  if (!children_.empty()) {
    s << " (\n";
    for (const auto& c : children_)
      s << std::string(indent + 2, ' ') << "(" << c.first << "): " << c.second->tree(indent + 2) << "\n";
    s << std::string(indent, ' ') << ")";
  }
  return s.str();
}

}  // namespace minima::nn
