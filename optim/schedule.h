// optim/schedule.h: learning-rate schedules as pure functions of the epoch (0-based), matching
// torch.optim.lr_scheduler's values when the scheduler is stepped once per epoch:
//   constant     lr
//   multistep    lr * gamma^(number of milestones <= epoch)    (the paper: 0.1 at 150 and 250 of 350)
//   exponential  lr * gamma^epoch                               (Zhang et al.: gamma 0.95)
//   cosine       eta_min + (lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace minima::optim {

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual double lr_at(int64_t epoch) const = 0;
  virtual std::string describe() const = 0;
};

class ConstantLR : public Schedule {
 public:
  explicit ConstantLR(double lr) : lr_(lr) {}
  double lr_at(int64_t) const override { return lr_; }
  std::string describe() const override;

 private:
  double lr_;
};

class MultiStepLR : public Schedule {
 public:
  MultiStepLR(double lr, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t epoch) const override;
  std::string describe() const override;

 private:
  double lr_, gamma_;
  std::vector<int64_t> milestones_;
};

class ExponentialLR : public Schedule {
 public:
  ExponentialLR(double lr, double gamma) : lr_(lr), gamma_(gamma) {}
  double lr_at(int64_t epoch) const override;
  std::string describe() const override;

 private:
  double lr_, gamma_;
};

class CosineLR : public Schedule {
 public:
  CosineLR(double lr, int64_t t_max, double eta_min = 0);
  double lr_at(int64_t epoch) const override;
  std::string describe() const override;

 private:
  double lr_;
  int64_t t_max_;
  double eta_min_;
};

// "constant", "multistep" (milestones, gamma), "exponential" (gamma), "cosine" (t_max = epochs).
// The paper's multistep milestones for a run of E epochs scale 150/350 and 250/350 of E when
// `milestones` is empty.
std::unique_ptr<Schedule> make_schedule(const std::string& name, double lr, int64_t epochs,
                                        std::vector<int64_t> milestones = {}, double gamma = -1);
std::vector<int64_t> paper_milestones(int64_t epochs);

}  // namespace minima::optim
