// nn/module.h: the Module base class. A module owns named parameters (leaf tensors that require
// grad), named buffers (state that is saved but not trained, e.g. BatchNorm running statistics)
// and named child modules. Names compose PyTorch-style ("layer1.0.conv1.weight"), and the order
// of named_parameters()/state_dict() is PyTorch's: a module's own parameters, then its own
// buffers, then each child in registration order, recursively.
//
// Non-obvious choice: layers keep plain Tensor handles to their parameters, and the registry
// holds handles to the same TensorImpl. Moving a module to another device (to()) or packing its
// parameters into one flat buffer (optim/flat_params.h) re-points the existing TensorImpl at new
// storage instead of creating new tensors, so every handle (the layer's, an optimizer's) stays
// valid, like assigning `param.data` in PyTorch.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace minima::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // A one-line description, e.g. "Conv2d(3, 64, kernel=3, stride=1, padding=1, bias=false)".
  virtual std::string describe() const { return type_name(); }
  virtual std::string type_name() const = 0;

  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  // Parameters and buffers, in PyTorch's state_dict() order and with its keys.
  NamedTensors state_dict() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter, gradient and buffer to `d` in place (handles stay valid).
  void to(Device d);
  // Converts the floating parameters, gradients and buffers to `t` in place (integer buffers such
  // as num_batches_tracked keep their dtype). Used e.g. to run a network in float64.
  void to(DType t);
  int64_t num_parameters() const;
  // Zeroes the gradients that exist, in place (they stay allocated, as flat views stay views).
  void zero_grad();
  // The module tree, one line per module, indented (like printing a torch.nn.Module).
  std::string tree(int indent = 0) const;

 protected:
  // Registers `t` under `name` and makes it a leaf that requires grad; returns the handle to keep.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  // Whether m is this module or lies anywhere below it.
  bool contains(const Module* m) const;

 private:
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace minima::nn
