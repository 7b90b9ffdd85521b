// kernels/cuda/vendor_cublas.cu: the cuBLAS path of gemm, behind the same signature as the native
// kernels. cuBLAS is column-major, so the row-major product C = A @ B is issued as the
// column-major product C^T = B^T @ A^T: the memory of a row-major matrix is its transpose in
// column-major order, so no data moves. An operand whose strides cuBLAS cannot express (no unit
// stride, a leading dimension too small, a negative stride) is first copied to a contiguous
// tensor; so is an output that is not row-major.
// Compute types: float32 -> CUBLAS_COMPUTE_32F (or 32F_FAST_TF32 when TF32 is allowed),
// bfloat16 -> bf16 storage with 32F compute, float64 -> 64F. One handle per device, bound to the
// device's stream, with a fixed workspace so calls can be captured in a CUDA graph.
#include <cublas_v2.h>

#include <mutex>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"

namespace minima::cuda {

namespace {

void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw_cuda_error(int(s), cublasGetStatusName(s), cublasGetStatusString(s), what, file, line, "cuBLAS");
}
#define MINIMA_CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

cublasHandle_t handle_for(const Ctx& ctx) {
  static std::mutex mu;
  static std::vector<cublasHandle_t> handles;  // one per device, kept for the process's life
  std::lock_guard<std::mutex> lock(mu);
  if (handles.empty()) handles.resize(size_t(cuda_device_count()), nullptr);
  cublasHandle_t& h = handles[size_t(ctx.dev)];
  if (!h) {
    MINIMA_CUBLAS_CHECK(cublasCreate(&h));
    MINIMA_CUBLAS_CHECK(cublasSetStream(h, ctx.stream));
    MINIMA_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    void* ws = nullptr;
    MINIMA_CUDA_CHECK(cudaMalloc(&ws, kWorkspaceBytes));
    MINIMA_CUBLAS_CHECK(cublasSetWorkspace(h, ws, kWorkspaceBytes));
  }
  return h;
}

// A matrix X of R rows and Cc columns with strides (rs, cs), as the operand op(X') = X^T of the
// column-major product: either X's memory read as a column-major Cc x R matrix (op N, ld = rs),
// or as a column-major R x Cc matrix, transposed (op T, ld = cs).
bool blas_layout(int64_t R, int64_t Cc, int64_t rs, int64_t cs, cublasOperation_t& op, int64_t& ld) {
  if ((cs == 1 || Cc == 1) && (R == 1 || rs >= std::max<int64_t>(1, Cc))) {
    op = CUBLAS_OP_N;
    ld = R == 1 ? std::max<int64_t>(1, Cc) : rs;
    return true;
  }
  if ((rs == 1 || R == 1) && (Cc == 1 || cs >= std::max<int64_t>(1, R))) {
    op = CUBLAS_OP_T;
    ld = Cc == 1 ? std::max<int64_t>(1, R) : cs;
    return true;
  }
  return false;
}

bool fits_int(int64_t v) { return v >= 0 && v <= int64_t(INT32_MAX); }

}  // namespace

void cublas_gemm(const Tensor& c, const Tensor& a0, const Tensor& b0, double alpha, double beta, const Ctx& ctx) {
  NoGradGuard ng;
  const int64_t batch = c.size(0), M = c.size(1), N = c.size(2), K = a0.size(2);
  // The output: row-major with a leading dim cuBLAS accepts; otherwise through a temporary.
  bool c_ok = (c.stride(2) == 1 || N == 1) && (M == 1 || c.stride(1) >= std::max<int64_t>(1, N)) && c.stride(0) >= 0;
  if (!c_ok) {
    Tensor t = beta != 0.0 ? c.clone() : empty(c.shape(), TensorOptions(c.dtype(), c.device()));
    cublas_gemm(t, a0, b0, alpha, beta, ctx);
    device_copy(c, t, ctx);
    return;
  }
  Tensor a = a0, b = b0;
  cublasOperation_t opa, opb;  // op of B (first cuBLAS operand) and of A (second)
  int64_t lda = 0, ldb = 0;
  if (a.stride(0) < 0 || !blas_layout(M, K, a.stride(1), a.stride(2), opb, ldb)) {
    a = a.contiguous();
    if (!a.is_contiguous() || a.stride(0) < 0) a = a.clone();
    blas_layout(M, K, a.stride(1), a.stride(2), opb, ldb);
  }
  if (b.stride(0) < 0 || !blas_layout(K, N, b.stride(1), b.stride(2), opa, lda)) {
    b = b.contiguous();
    if (!b.is_contiguous() || b.stride(0) < 0) b = b.clone();
    blas_layout(K, N, b.stride(1), b.stride(2), opa, lda);
  }
  const int64_t ldc = M == 1 ? std::max<int64_t>(1, N) : c.stride(1);
  MINIMA_CHECK(fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb) && fits_int(ldc) &&
                   fits_int(batch),
               "gemm (cuBLAS): sizes beyond 2^31 are not supported: ", c.shape(), " with K = ", K);

  cudaDataType_t dt;
  cublasComputeType_t ct;
  switch (c.dtype()) {
    case DType::f32:
      dt = CUDA_R_32F;
      ct = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::bf16:
      dt = CUDA_R_16BF;
      ct = CUBLAS_COMPUTE_32F;
      break;
    case DType::f64:
      dt = CUDA_R_64F;
      ct = CUBLAS_COMPUTE_64F;
      break;
    default: throw Error(str("gemm (cuBLAS): unsupported dtype ", c.dtype()));
  }
  const float af = float(alpha), bf = float(beta);
  const void* pa = c.dtype() == DType::f64 ? static_cast<const void*>(&alpha) : static_cast<const void*>(&af);
  const void* pb = c.dtype() == DType::f64 ? static_cast<const void*>(&beta) : static_cast<const void*>(&bf);
  // A batch of one needs no batch stride (a broadcast stride 0 is fine either way).
  long long sa = batch == 1 ? 0 : a.stride(0), sb = batch == 1 ? 0 : b.stride(0), sc = batch == 1 ? 0 : c.stride(0);
  cublasHandle_t h = handle_for(ctx);
  MINIMA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opa, opb, int(N), int(M), int(K), pa, b.data_ptr(), dt, int(lda),
                                                 sb, a.data_ptr(), dt, int(ldb), sa, pb, c.data_ptr(), dt, int(ldc), sc,
                                                 int(batch), ct, CUBLAS_GEMM_DEFAULT));
}

}  // namespace minima::cuda
