// optim/flat_params.h: packs a list of parameters (and their gradients) into one contiguous buffer
// per (device, dtype), so an optimizer step over every parameter is one fused kernel call.
//
// How: the parameters' data is copied into the flat buffer and each parameter's TensorImpl is
// re-pointed at its slice (so the model's handles keep working and now alias the buffer); each
// gradient is set to a view of a flat gradient buffer, into which backward() accumulates in place.
// zero_grad() is then one fill. Gradients therefore always exist (zeros before the first backward):
// a parameter that got no gradient is updated with a zero gradient (weight decay and momentum still
// act), where torch.optim skips parameters whose .grad is None; in the networks here every
// parameter gets a gradient, so the two agree.
//
// If something replaces a gradient tensor (set_grad), sync() copies it into the flat slice and
// re-attaches the view; if a parameter was moved to new storage after packing (e.g. Module::to),
// sync() throws: create the optimizer after moving the model.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace minima::optim {

class FlatParams {
 public:
  struct Group {
    Device device;
    DType dtype;
    Tensor params, grads;          // flat, 1-D, contiguous
    std::vector<size_t> members;   // indices into tensors()
    std::vector<int64_t> offsets;  // element offset of each member in the flat buffers
  };

  FlatParams() = default;
  explicit FlatParams(std::vector<Tensor> params);

  const std::vector<Tensor>& tensors() const { return params_; }
  std::vector<Group>& groups() { return groups_; }
  const std::vector<Group>& groups() const { return groups_; }
  int64_t numel() const;
  // A new flat buffer shaped like group g's parameters (for optimizer state), zero-filled.
  Tensor zeros_like_group(size_t g) const;
  // View of member `k` of group g inside a flat buffer of that group (param shape).
  Tensor member_view(size_t g, size_t k, const Tensor& flat) const;
  // Re-attaches gradient views replaced since the last call (see above); checks the parameters.
  void sync();
  void zero_grad();

 private:
  std::vector<Tensor> params_;
  std::vector<Group> groups_;
};

}  // namespace minima::optim
