// optim/optim.cpp: SGD and Adam over flat parameter buffers (see optim.h).
#include "optim/optim.h"

#include <algorithm>
#include <cmath>

#include "core/backend.h"

namespace minima::optim {

std::vector<Optimizer::StateEntry> Optimizer::state() const {
  std::vector<StateEntry> out;
  const auto& groups = flat_.groups();
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t k = 0; k < groups[g].members.size(); ++k)
      for (const auto& [slot, bufs] : slots_)
        out.push_back({groups[g].members[k], slot, flat_.member_view(g, k, bufs[g])});
  std::sort(out.begin(), out.end(), [](const StateEntry& a, const StateEntry& b) { return a.param < b.param; });
  return out;
}

double Optimizer::checked_lr(double lr) {
  MINIMA_CHECK(std::isfinite(lr) && lr >= 0, "optimizer: the learning rate must be finite and >= 0, got ", lr);
  return lr;
}

SGD::SGD(std::vector<Tensor> params, SGDOptions o) : Optimizer(std::move(params)), opt_(o) {
  checked_lr(o.lr);
  MINIMA_CHECK(std::isfinite(o.momentum) && o.momentum >= 0, "SGD: invalid momentum ", o.momentum);
  MINIMA_CHECK(std::isfinite(o.dampening) && o.dampening >= 0, "SGD: invalid dampening ", o.dampening);
  MINIMA_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "SGD: invalid weight_decay ", o.weight_decay);
  MINIMA_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
               "SGD: Nesterov momentum requires a momentum and zero dampening");
  if (o.momentum != 0) {
    std::vector<Tensor> bufs;
    bufs.reserve(flat_.groups().size());
    for (size_t g = 0; g < flat_.groups().size(); ++g) bufs.push_back(flat_.zeros_like_group(g));
    slots_.emplace_back("momentum_buffer", std::move(bufs));
  }
}

void SGD::step() {
  flat_.sync();
  NoGradGuard ng;
  auto& groups = flat_.groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    Tensor buf = opt_.momentum != 0 ? slots_[0].second[g] : Tensor();
    backend_for(groups[g].device)
        .sgd_update(groups[g].params, groups[g].grads, buf, opt_.lr, opt_.momentum, opt_.dampening, opt_.weight_decay,
                    opt_.nesterov, steps_ == 0);
    groups[g].params.mark_modified();  // a graph that saved the old values can no longer backward
  }
  ++steps_;
}

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Optimizer(std::move(params)), opt_(o) {
  checked_lr(o.lr);
  MINIMA_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "Adam: betas must be in [0, 1), got ",
               o.beta1, ", ", o.beta2);
  MINIMA_CHECK(std::isfinite(o.eps) && o.eps >= 0, "Adam: invalid eps ", o.eps);
  MINIMA_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "Adam: invalid weight_decay ", o.weight_decay);
  std::vector<Tensor> m, v;
  for (size_t g = 0; g < flat_.groups().size(); ++g) {
    m.push_back(flat_.zeros_like_group(g));
    v.push_back(flat_.zeros_like_group(g));
  }
  slots_.emplace_back("exp_avg", std::move(m));
  slots_.emplace_back("exp_avg_sq", std::move(v));
}

void Adam::step() {
  flat_.sync();
  NoGradGuard ng;
  ++steps_;
  auto& groups = flat_.groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    backend_for(groups[g].device)
        .adam_update(groups[g].params, groups[g].grads, slots_[0].second[g], slots_[1].second[g], opt_.lr, opt_.beta1,
                     opt_.beta2, opt_.eps, opt_.weight_decay, steps_);
    groups[g].params.mark_modified();
  }
}

}  // namespace minima::optim
