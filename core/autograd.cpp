// core/autograd.cpp: recording Nodes and the backward pass (topological sort by DFS, reverse
// traversal, gradient summation, release of the graph).
#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/ops.h"

namespace minima {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_mode_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  for (auto& e : next)
    if (e.node) pending.push_back(std::move(e.node));
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    // Sole owner: take its producers before it dies, so its destructor finds nothing to recurse on.
    if (n.use_count() == 1)
      for (auto& e : n->next)
        if (e.node) pending.push_back(std::move(e.node));
  }
}

bool needs_graph(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}
bool needs_graph(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

namespace {
std::shared_ptr<Node> make_node(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& saved) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->saved.reserve(saved.size());
  for (const Tensor& t : saved)
    if (t.defined()) node->saved.emplace_back(t, t.version());
  node->next.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;
    auto& e = node->next[i];
    if (t.grad_fn())
      e.node = t.grad_fn();
    else
      e.leaf = t.impl_ptr();
    e.shape = t.shape();
    e.dtype = t.dtype();
  }
  return node;
}

void attach(Tensor& out, std::shared_ptr<Node> node) {
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}
}  // namespace

void record(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn,
            const std::vector<Tensor>& saved) {
  auto node = make_node(name, inputs, saved);
  node->fn = std::move(fn);
  attach(out, std::move(node));
}

void record_into(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardIntoFn fn,
                 const std::vector<Tensor>& saved) {
  auto node = make_node(name, inputs, saved);
  node->fn_into = std::move(fn);
  attach(out, std::move(node));
}

namespace {
void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined())
    slot = g;
  else
    slot = add(slot, g);
}

// The buffers a record_into backward may add into (see autograd.h): the leaves' existing grads.
std::vector<Tensor> grad_buffers(const Node& node) {
  std::vector<Tensor> into(node.next.size());
  for (size_t i = 0; i < into.size(); ++i) {
    const auto& e = node.next[i];
    if (!e.leaf || !e.leaf->grad) continue;
    Tensor gr(e.leaf->grad);
    if (gr.shape() == e.shape && gr.dtype() == e.dtype && gr.device() == Tensor(e.leaf).device() && gr.is_contiguous())
      into[i] = gr;
  }
  return into;
}

void accumulate_leaf(TensorImpl* leaf, const Tensor& g) {
  if (!leaf->grad) {
    // A fresh buffer: the incoming gradient may alias storage other code still uses.
    Tensor c = g.clone();
    leaf->grad = c.impl_ptr();
  } else {
    Tensor(leaf->grad).add_(g);
  }
}
}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  MINIMA_CHECK(root.defined(), "backward: undefined tensor");
  MINIMA_CHECK(root.requires_grad(), "backward: the tensor of shape ", root.shape(),
               " does not require grad and has no grad_fn (did you forget requires_grad_() on the "
               "inputs, or compute it under a NoGradGuard?)");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    MINIMA_CHECK(root.numel() == 1,
                 "backward: grad can be implicitly created only for scalar "
                 "outputs; the output has shape ",
                 root.shape(), ", pass a gradient of that shape");
    grad = ones(root.shape(), TensorOptions(root.dtype(), root.device()));
  }
  MINIMA_CHECK(grad.shape() == root.shape(), "backward: gradient of shape ", grad.shape(),
               " does not match the output's shape ", root.shape());
  MINIMA_CHECK(grad.device() == root.device(), "backward: gradient on ", grad.device(), " but the output is on ",
               root.device());
  NoGradGuard no_grad;
  if (grad.dtype() != root.dtype()) grad = grad.to(root.dtype());
  if (root.is_leaf()) {
    accumulate_leaf(root.impl(), grad);
    return;
  }

  // Topological order by iterative DFS (post-order), holding every Node alive until the end.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack;
  stack.push_back({root.grad_fn(), 0});
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, i] = stack.back();
    if (i < node->next.size()) {
      auto child = node->next[i++].node;
      if (child && seen.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = grad;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto gi = grads.find(node);
    if (gi == grads.end()) continue;  // no gradient flows here
    Tensor g = gi->second;
    grads.erase(gi);
    MINIMA_CHECK(node->fn || node->fn_into,
                 "backward: trying to backward through the graph a second time "
                 "(through ",
                 node->name, "); pass retain_graph=true the first time");
    for (const auto& [t, version] : node->saved)
      MINIMA_CHECK(t.version() == version, "backward: ", node->name, " saved a tensor of shape ", t.shape(),
                   " that was changed in place after ", node->name, " ran (", t.version() - version,
                   " in-place write(s) since), so its gradient cannot be computed; "
                   "change it after backward(), or change a clone() of it");
    const std::vector<Tensor> into = node->fn_into ? grad_buffers(*node) : std::vector<Tensor>();
    std::vector<Tensor> in_grads = node->fn_into ? node->fn_into(g, into) : node->fn(g);
    MINIMA_CHECK(in_grads.size() == node->next.size(), "backward: ", node->name, " returned ", in_grads.size(),
                 " gradients for ", node->next.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const auto& e = node->next[i];
      if (!e.active() || !in_grads[i].defined()) continue;
      if (i < into.size() && into[i].defined() && in_grads[i].impl() == into[i].impl()) continue;  // added in
      Tensor gi_t = in_grads[i];
      MINIMA_CHECK(gi_t.shape() == e.shape, "backward: ", node->name, " produced a gradient of shape ", gi_t.shape(),
                   " for input ", i, " of shape ", e.shape);
      if (gi_t.dtype() != e.dtype) gi_t = gi_t.to(e.dtype);
      if (e.node)
        accumulate(grads[e.node.get()], gi_t);
      else
        accumulate_leaf(e.leaf.get(), gi_t);
    }
    if (!retain_graph) {
      node->fn = nullptr;  // frees the tensors the closure saved
      node->fn_into = nullptr;
      node->saved.clear();
    }
  }
}

}  // namespace minima
