// optim/optim.h: SGD and Adam with the exact arithmetic of torch.optim.SGD / torch.optim.Adam
// (coupled L2 weight decay: the decay term is added to the gradient). Parameters and gradients
// are packed into one flat buffer per device and dtype (optim/flat_params.h), so a step is one
// fused Backend::sgd_update / adam_update call over all parameters.
//
// Checkpoint support: state() lists the state tensors (views of the flat state buffers, one per
// parameter and slot, e.g. momentum_buffer), and steps() the number of steps taken; loading copies
// into those views and calls set_steps().
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "optim/flat_params.h"

namespace minima::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params) : flat_(std::move(params)) {}
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad() { flat_.zero_grad(); }
  virtual void set_lr(double lr) = 0;
  virtual double lr() const = 0;
  virtual std::string type_name() const = 0;

  // State per parameter: (parameter index, slot name, tensor view of the parameter's shape).
  struct StateEntry {
    size_t param;
    std::string slot;
    Tensor tensor;
  };
  std::vector<StateEntry> state() const;
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  const std::vector<Tensor>& params() const { return flat_.tensors(); }
  FlatParams& flat() { return flat_; }

 protected:
  // lr, refused unless finite and >= 0 (a NaN rate turns every parameter NaN at the next step).
  static double checked_lr(double lr);
  // Slots: name and one flat buffer per group.
  std::vector<std::pair<std::string, std::vector<Tensor>>> slots_;
  FlatParams flat_;
  int64_t steps_ = 0;
};

struct SGDOptions {
  double lr = 0.1, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions o);
  void step() override;
  void set_lr(double lr) override { opt_.lr = checked_lr(lr); }
  double lr() const override { return opt_.lr; }
  std::string type_name() const override { return "sgd"; }
  const SGDOptions& options() const { return opt_; }

 private:
  SGDOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions o);
  void step() override;
  void set_lr(double lr) override { opt_.lr = checked_lr(lr); }
  double lr() const override { return opt_.lr; }
  std::string type_name() const override { return "adam"; }
  const AdamOptions& options() const { return opt_; }

 private:
  AdamOptions opt_;
};

}  // namespace minima::optim
