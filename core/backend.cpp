// core/backend.cpp: picks the kernel set for a device. The CUDA entry points come from
// kernels/cuda when minima is built with CUDA; otherwise they say so clearly.
#include "core/backend.h"

#include "core/profiler.h"
#include "kernels/cpu/cpu_backend.h"

namespace minima {

const char* op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Softplus: return "softplus";
    case UnaryOp::Pow: return "pow";
    case UnaryOp::Clamp: return "clamp";
    case UnaryOp::Square: return "square";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Reciprocal: return "reciprocal";
    case UnaryOp::Log1p: return "log1p";
    case UnaryOp::AddScalar: return "add_scalar";
    case UnaryOp::MulScalar: return "mul_scalar";
    case UnaryOp::Affine: return "affine";
  }
  return "unary";
}

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
  }
  return "binary";
}

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
    case ReduceOp::ArgMax: return "argmax";
    case ReduceOp::ArgMin: return "argmin";
  }
  return "reduce";
}

Backend& cpu_backend() {
  static cpu::CpuBackend b;
  return b;
}

Backend& backend_for(Device d) {
  Backend& b = d.is_cpu() ? cpu_backend() : cuda_backend();
  return profiling() ? profiled(b) : b;
}

namespace {
thread_local bool g_targets_trusted = false;
}
TrustedTargetsGuard::TrustedTargetsGuard() : prev_(g_targets_trusted) { g_targets_trusted = true; }
TrustedTargetsGuard::~TrustedTargetsGuard() { g_targets_trusted = prev_; }
bool targets_trusted() { return g_targets_trusted; }

#ifndef MINIMA_HAS_CUDA
Backend& cuda_backend() {
  throw Error("this minima was built without CUDA (configure with -DMINIMA_CUDA=ON and an nvcc on PATH)");
}
Allocator* cuda_allocator(int) {
  cuda_backend();
  return nullptr;
}
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
#endif

}  // namespace minima
