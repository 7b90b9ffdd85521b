// core/autograd.h: the dynamic tape. Every differentiable op that sees an input requiring grad
// records a Node: one edge per input (to the input's producer Node, or to the leaf that collects
// the gradient) and a closure that maps the output's gradient to one gradient per input.
// backward() sorts the Nodes reachable from the root topologically (DFS), runs the closures in
// reverse order, sums gradients arriving at the same Node, and frees each closure (and with it
// the tensors it saved) unless the graph is retained.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace minima {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;
// A backward that may add gradients straight into the buffers that will hold them (record_into):
// into[i] is the buffer of input i when there is one it may add to, else undefined.
using BackwardIntoFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<Tensor>& into)>;

struct Node {
  struct Edge {
    std::shared_ptr<Node> node;        // the input's producer, or
    std::shared_ptr<TensorImpl> leaf;  // the leaf the gradient accumulates into
    Shape shape;                       // the input's shape, to check the gradient returned
    DType dtype = DType::f32;
    bool active() const { return node || leaf; }
  };
  std::string name;
  std::vector<Edge> next;  // one per input
  BackwardFn fn;           // the closure recorded by record, or
  BackwardIntoFn fn_into;  // the one recorded by record_into; both null once released
  // The tensors fn reads, with their storage's version when the op ran (see Tensor::version).
  std::vector<std::pair<Tensor, uint64_t>> saved;
  bool needs_grad(size_t i) const { return i < next.size() && next[i].active(); }
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Releases the chain of producers iteratively: a graph of 10^5 ops must not overflow the
  // stack through nested shared_ptr destructors.
  ~Node();
};

// True when grad mode is on and any of the tensors requires grad: the op must record a Node.
bool needs_graph(std::initializer_list<const Tensor*> inputs);
bool needs_graph(const std::vector<Tensor>& inputs);

// Attaches a Node named `name` to `out` (which must be freshly created by the op). Closures must
// capture saved tensors through detach() so a Node never owns its own output, and list them in
// `saved`: backward() then refuses to run the closure if one of them was written in place since
// (its gradient would be computed from the new values, silently wrong), as PyTorch does.
void record(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn,
            const std::vector<Tensor>& saved = {});

// As record, for a backward that can add a gradient into an existing buffer more cheaply than it
// can return one to be added (a matrix product with beta = 1 reads the buffer once, where a
// separate add reads it and the gradient and writes it again). backward() offers, as into[i],
// input i's .grad when input i is a leaf that already has one of its shape, dtype and device,
// contiguous (as an optimizer's flat gradient buffers are). For each such input the closure either
// returns a gradient as usual, or adds its gradient into into[i] (marking it modified) and returns
// into[i] itself, which backward() then leaves alone.
void record_into(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardIntoFn fn,
                 const std::vector<Tensor>& saved = {});

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace minima
