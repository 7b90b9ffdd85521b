// optim/flat_params.cpp: see flat_params.h.
#include "optim/flat_params.h"

namespace minima::optim {

FlatParams::FlatParams(std::vector<Tensor> params) : params_(std::move(params)) {
  NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    MINIMA_CHECK(p.defined(), "optimizer: parameter ", i, " is undefined");
    // A computed tensor would be stepped in a copy that nothing reads (PyTorch: "can't optimize a
    // non-leaf Tensor").
    MINIMA_CHECK(p.is_leaf(), "optimizer: parameter ", i, " is not a leaf (it was computed from other tensors)");
    MINIMA_CHECK(is_floating(p.dtype()), "optimizer: parameter ", i, " has dtype ", p.dtype(),
                 " (expected a floating dtype)");
    for (size_t j = 0; j < i; ++j)
      MINIMA_CHECK(params_[j].impl() != p.impl(), "optimizer: parameter ", i, " appears twice (also at ", j, ")");
    size_t g = 0;
    while (g < groups_.size() && !(groups_[g].device == p.device() && groups_[g].dtype == p.dtype())) ++g;
    if (g == groups_.size()) groups_.push_back(Group{p.device(), p.dtype(), {}, {}, {}, {}});
    groups_[g].members.push_back(i);
  }
  for (auto& grp : groups_) {
    int64_t total = 0;
    for (size_t i : grp.members) {
      grp.offsets.push_back(total);
      total += params_[i].numel();
    }
    grp.params = empty({total}, TensorOptions(grp.dtype, grp.device));
    grp.grads = zeros({total}, TensorOptions(grp.dtype, grp.device));
    for (size_t k = 0; k < grp.members.size(); ++k) {
      const Tensor& p = params_[grp.members[k]];
      Tensor pv = grp.params.narrow(0, grp.offsets[k], p.numel()).view(p.shape());
      pv.copy_(p.detach());
      Tensor gv = grp.grads.narrow(0, grp.offsets[k], p.numel()).view(p.shape());
      if (p.grad().defined()) gv.copy_(p.grad());
      // Re-point the parameter at its slice of the flat buffer.
      TensorImpl* im = p.impl();
      im->storage = pv.storage();
      im->offset = pv.offset();
      im->strides = pv.strides();
      p.impl()->grad = gv.impl_ptr();
    }
  }
}

int64_t FlatParams::numel() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g.params.numel();
  return n;
}

Tensor FlatParams::zeros_like_group(size_t g) const {
  return zeros(groups_.at(g).params.shape(), TensorOptions(groups_[g].dtype, groups_[g].device));
}

Tensor FlatParams::member_view(size_t g, size_t k, const Tensor& flat) const {
  const Tensor& p = params_[groups_.at(g).members.at(k)];
  return flat.narrow(0, groups_[g].offsets[k], p.numel()).view(p.shape());
}

void FlatParams::sync() {
  NoGradGuard ng;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& grp = groups_[gi];
    for (size_t k = 0; k < grp.members.size(); ++k) {
      const Tensor& p = params_[grp.members[k]];
      MINIMA_CHECK(p.storage() == grp.params.storage() && p.offset() == grp.params.offset() + grp.offsets[k],
                   "optimizer: parameter ", grp.members[k], " (shape ", shape_str(p.shape()),
                   ") was moved to new storage after the optimizer was created; create the optimizer "
                   "after moving the model (Module::to)");
      Tensor gv = member_view(gi, k, grp.grads);
      Tensor cur = p.grad();
      if (cur.defined() && cur.storage() == grp.grads.storage() && cur.offset() == gv.offset()) continue;
      if (cur.defined()) {
        MINIMA_CHECK(cur.shape() == p.shape(), "optimizer: gradient of parameter ", grp.members[k], " has shape ",
                     shape_str(cur.shape()), ", expected ", shape_str(p.shape()));
        gv.copy_(cur);
      } else {
        gv.zero_();
      }
      p.impl()->grad = gv.impl_ptr();
    }
  }
}

void FlatParams::zero_grad() {
  sync();
  for (auto& g : groups_) g.grads.zero_();
}

}  // namespace minima::optim
