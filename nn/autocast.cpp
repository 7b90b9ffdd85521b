// nn/autocast.cpp: see autocast.h.
#include "nn/autocast.h"

#include "core/error.h"

namespace minima::nn {

namespace {
thread_local DType t_autocast = DType::f32;
}

DType autocast_dtype() { return t_autocast; }

AutocastGuard::AutocastGuard(DType t) : prev_(t_autocast) {
  MINIMA_CHECK(t == DType::f32 || t == DType::bf16, "autocast: expected float32 (off) or bfloat16, got ", t);
  t_autocast = t;
}

AutocastGuard::~AutocastGuard() { t_autocast = prev_; }

Tensor autocast(const Tensor& t) {
  if (!t.defined() || t_autocast == DType::f32 || t.dtype() != DType::f32) return t;
  return t.to(t_autocast);
}

DType precision_from_flag(const std::string& s) {
  if (s == "fp32") return DType::f32;
  if (s == "bf16") return DType::bf16;
  throw Error(str("unknown precision '", s, "' (expected fp32, or bf16: bfloat16 activations and weights ",
                  "with float32 master weights and batch-norm statistics)"));
}

}  // namespace minima::nn
