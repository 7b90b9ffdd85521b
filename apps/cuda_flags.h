// apps/cuda_flags.h: the CUDA backend's command-line flags, for every command that can run on a
// GPU. Call apply_cuda_flags(args) where the command declares its flags (before finish()):
//   --gemm native|cublas|auto   --conv native|cudnn|auto   --bn passes|persistent   --tf32
//   --deterministic
// They set the backend's run-time settings (kernels/cuda/cuda_config.h). In a build without
// CUDA they are accepted and have no effect.
#pragma once
#include <string>

#include "apps/cli.h"

namespace minima::cli {

// The values given, for commands that pass them on (bench train hands --tf32 to its PyTorch peer).
struct CudaFlags {
  std::string gemm, conv, bn;
  bool tf32 = false, deterministic = false;
};

CudaFlags apply_cuda_flags(Args& a);

}  // namespace minima::cli
