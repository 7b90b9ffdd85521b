// nn/autocast.h: mixed precision. Inside an AutocastGuard(DType::bf16) the layers that do the
// arithmetic (Linear and Conv2d) run in bfloat16: they cast their input and their parameters to
// bfloat16 with the differentiable cast, so activations are stored in bfloat16 while the
// parameters stay float32 master weights (the optimizer updates them in float32) and their
// gradients arrive in float32 through the cast's backward. Batch norm keeps its float32 weight,
// bias and running statistics and normalizes the bfloat16 activations with float32 (double on
// the CPU) statistics. Losses belong in float32: cast the logits back (the trainer does).
// The setting is per thread and scoped; DType::f32 (the default) turns it off.
#pragma once
#include <string>

#include "core/tensor.h"

namespace minima::nn {

// The dtype Linear and Conv2d compute in on this thread: f32 (off) or bf16.
DType autocast_dtype();

class AutocastGuard {
 public:
  explicit AutocastGuard(DType t);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType prev_;
};

// `t` in the autocast dtype when autocast is on and `t` is float32 (differentiably), else `t`.
Tensor autocast(const Tensor& t);

// --precision: "fp32" -> f32, "bf16" -> bf16; anything else is an error naming the choices.
DType precision_from_flag(const std::string& s);

}  // namespace minima::nn
