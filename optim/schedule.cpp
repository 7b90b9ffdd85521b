// optim/schedule.cpp: see schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace minima::optim {

std::string ConstantLR::describe() const { return str("constant(lr=", lr_, ")"); }

MultiStepLR::MultiStepLR(double lr, std::vector<int64_t> milestones, double gamma)
    : lr_(lr), gamma_(gamma), milestones_(std::move(milestones)) {
  MINIMA_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()),
               "multistep schedule: milestones must be increasing, got ", milestones_);
}

double MultiStepLR::lr_at(int64_t epoch) const {
  int64_t passed = 0;
  for (int64_t m : milestones_) passed += epoch >= m ? 1 : 0;
  return lr_ * std::pow(gamma_, double(passed));
}

std::string MultiStepLR::describe() const {
  return str("multistep(lr=", lr_, ", milestones=", milestones_, ", gamma=", gamma_, ")");
}

double ExponentialLR::lr_at(int64_t epoch) const { return lr_ * std::pow(gamma_, double(epoch)); }
std::string ExponentialLR::describe() const { return str("exponential(lr=", lr_, ", gamma=", gamma_, ")"); }

CosineLR::CosineLR(double lr, int64_t t_max, double eta_min) : lr_(lr), t_max_(t_max), eta_min_(eta_min) {
  MINIMA_CHECK(t_max > 0, "cosine schedule: t_max must be positive, got ", t_max);
}

double CosineLR::lr_at(int64_t epoch) const {
  const double pi = 3.14159265358979323846;
  return eta_min_ + (lr_ - eta_min_) * (1.0 + std::cos(pi * double(epoch) / double(t_max_))) / 2.0;
}

std::string CosineLR::describe() const {
  return str("cosine(lr=", lr_, ", t_max=", t_max_, ", eta_min=", eta_min_, ")");
}

std::vector<int64_t> paper_milestones(int64_t epochs) {
  // 150/350 and 250/350 of the run, rounded to the nearest epoch (350 -> 150, 250), never before
  // epoch 1: a one-epoch run (a timing run, say) trains at the base rate rather than at a tenth of it.
  auto at = [&](double frac) { return std::max<int64_t>(1, std::llround(double(epochs) * frac)); };
  return {at(150.0 / 350.0), at(250.0 / 350.0)};
}

std::unique_ptr<Schedule> make_schedule(const std::string& name, double lr, int64_t epochs,
                                        std::vector<int64_t> milestones, double gamma) {
  if (name == "constant") return std::make_unique<ConstantLR>(lr);
  if (name == "multistep") {
    if (milestones.empty()) milestones = paper_milestones(epochs);
    return std::make_unique<MultiStepLR>(lr, milestones, gamma < 0 ? 0.1 : gamma);
  }
  if (name == "exponential") return std::make_unique<ExponentialLR>(lr, gamma < 0 ? 0.95 : gamma);
  if (name == "cosine") return std::make_unique<CosineLR>(lr, epochs);
  throw Error(str("unknown schedule '", name, "' (known: constant, multistep, exponential, cosine)"));
}

}  // namespace minima::optim
