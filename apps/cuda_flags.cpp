// apps/cuda_flags.cpp: see cuda_flags.h.
#include "apps/cuda_flags.h"

#include "core/error.h"

#ifdef MINIMA_HAS_CUDA
#include "kernels/cuda/cuda_config.h"
#endif

namespace minima::cli {

CudaFlags apply_cuda_flags(Args& a) {
  std::string gemm =
      a.get_string("gemm", "auto", "CUDA matrix products: native, cublas or auto (time both once per shape)");
  std::string conv =
      a.get_string("conv", "auto", "CUDA convolutions: native, cudnn or auto (time both once per shape)");
  std::string bn =
      a.get_string("bn", "passes",
                   "CUDA batch norm in training: passes (three kernels) or persistent (one cooperative kernel)");
  bool tf32 = a.get_flag("tf32", "allow TF32 tensor cores in float32 GEMM/conv on CUDA");
  bool det = a.get_flag("deterministic", "bitwise-reproducible CUDA runs (no float atomics; slower scatters)");
#ifdef MINIMA_HAS_CUDA
  cuda::set_gemm_impl(gemm);
  cuda::set_conv_impl(conv);
  cuda::set_bn_impl(bn);
  cuda::set_allow_tf32(tf32);
  cuda::set_deterministic(det);
#else
  MINIMA_CHECK(gemm == "native" || gemm == "cublas" || gemm == "auto", "unknown gemm implementation '", gemm,
               "' (expected native, cublas or auto)");
  MINIMA_CHECK(conv == "native" || conv == "cudnn" || conv == "auto", "unknown conv implementation '", conv,
               "' (expected native, cudnn or auto)");
  MINIMA_CHECK(bn == "passes" || bn == "persistent", "unknown batch_norm implementation '", bn,
               "' (expected passes or persistent)");
#endif
  return {gemm, conv, bn, tf32, det};
}

}  // namespace minima::cli
