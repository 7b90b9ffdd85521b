// kernels/cuda/vendor_cudnn.cu: the cuDNN path of conv2d (forward, input gradient, weight
// gradient) behind the same signatures as the native kernels, through cuDNN's convolution API
// (descriptors + cudnnConvolution*). For each new shape the algorithms are benchmarked once with
// cudnnFind* and the fastest acceptable one is cached: in deterministic mode only algorithms
// cuDNN reports as deterministic, and for float32 without allow_tf32 only FMA (full fp32) math.
// Workspaces come from the caching allocator. Without cuDNN at configure time the functions
// exist and say so.
#include "kernels/cuda/cuda_common.cuh"

#ifdef MINIMA_HAS_CUDNN
#include <cudnn.h>

#include <map>
#include <mutex>
#include <vector>

namespace minima::cuda {

namespace {

void check_cudnn(cudnnStatus_t s, const char* what, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw_cuda_error(int(s), "cudnnStatus_t", cudnnGetErrorString(s), what, file, line, "cuDNN");
}
#define MINIMA_CUDNN_CHECK(expr) check_cudnn((expr), #expr, __FILE__, __LINE__)
void check_cudnn_nothrow(cudnnStatus_t s, const char* what, int line) {
  if (s != CUDNN_STATUS_SUCCESS)
    report_cuda_error(int(s), "cudnnStatus_t", cudnnGetErrorString(s), what, __FILE__, line, "cuDNN");
}

cudnnHandle_t handle_for(const Ctx& ctx) {
  static std::mutex mu;
  static std::vector<cudnnHandle_t> handles;  // one per device, kept for the process's life
  std::lock_guard<std::mutex> lock(mu);
  if (handles.empty()) handles.resize(size_t(cuda_device_count()), nullptr);
  cudnnHandle_t& h = handles[size_t(ctx.dev)];
  if (!h) {
    MINIMA_CUDNN_CHECK(cudnnCreate(&h));
    MINIMA_CUDNN_CHECK(cudnnSetStream(h, ctx.stream));
  }
  return h;
}

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: throw Error(str("conv2d (cuDNN): unsupported dtype ", t));
  }
}

// The descriptors of one convolution; x/y are the image-side tensors (or their gradients).
struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  DType dtype;
  Descs(const Tensor& x_, const Tensor& w_, const Tensor& y_, const Conv2dParams& p) : dtype(x_.dtype()) {
    for (const Tensor* t : {&x_, &w_, &y_})
      MINIMA_CHECK(t->numel() < (int64_t(1) << 31), "conv2d (cuDNN): tensor of shape ", t->shape(),
                   " has 2^31 elements or more");
    cudnnDataType_t dt = data_type(dtype);
    MINIMA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    MINIMA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    MINIMA_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    MINIMA_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    MINIMA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, int(x_.size(0)), int(x_.size(1)),
                                                  int(x_.size(2)), int(x_.size(3))));
    MINIMA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, int(y_.size(0)), int(y_.size(1)),
                                                  int(y_.size(2)), int(y_.size(3))));
    MINIMA_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NCHW, int(w_.size(0)), int(w_.size(1)),
                                                  int(w_.size(2)), int(w_.size(3))));
    cudnnDataType_t compute = dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    MINIMA_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, int(p.pad_h), int(p.pad_w), int(p.stride_h),
                                                       int(p.stride_w), int(p.dil_h), int(p.dil_w),
                                                       CUDNN_CROSS_CORRELATION, compute));
    MINIMA_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, int(p.groups)));
    MINIMA_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, wanted_math()));
  }
  ~Descs() {  // must not throw: failures are reported on stderr
    check_cudnn_nothrow(cudnnDestroyConvolutionDescriptor(conv), "cudnnDestroyConvolutionDescriptor", __LINE__);
    check_cudnn_nothrow(cudnnDestroyFilterDescriptor(w), "cudnnDestroyFilterDescriptor", __LINE__);
    check_cudnn_nothrow(cudnnDestroyTensorDescriptor(y), "cudnnDestroyTensorDescriptor", __LINE__);
    check_cudnn_nothrow(cudnnDestroyTensorDescriptor(x), "cudnnDestroyTensorDescriptor", __LINE__);
  }
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;

  cudnnMathType_t wanted_math() const {
    if (dtype == DType::bf16) return CUDNN_TENSOR_OP_MATH;
    if (dtype == DType::f32 && !allow_tf32()) return CUDNN_FMA_MATH;
    return CUDNN_DEFAULT_MATH;
  }
  // Whether an algorithm cuDNN found may be used under the current settings.
  template <class Perf>
  bool acceptable(const Perf& r) const {
    if (r.status != CUDNN_STATUS_SUCCESS) return false;
    if (deterministic() && r.determinism != CUDNN_DETERMINISTIC) return false;
    if (dtype == DType::f32 && !allow_tf32() && r.mathType != CUDNN_FMA_MATH && r.mathType != CUDNN_DEFAULT_MATH)
      return false;
    return true;
  }
};

struct Choice {
  int algo;
  cudnnMathType_t math;
};

std::mutex g_algo_mu;
std::map<std::string, Choice>& algo_cache() {
  static std::map<std::string, Choice> m;
  return m;
}

std::string key_of(const char* pass, const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p,
                   const Ctx& ctx) {
  return str(pass, "|", x.dtype(), "|", x.shape(), "|", w.shape(), "|", y.shape(), "|", p.stride_h, ",", p.stride_w,
             ",", p.pad_h, ",", p.pad_w, ",", p.dil_h, ",", p.dil_w, ",", p.groups, "|tf32=", allow_tf32(),
             "|det=", deterministic(), "|dev=", ctx.dev);
}

// Runs `find` (a cudnnFind* call filling `perf`) once per key and returns the cached choice.
template <class Perf, class FindFn>
Choice choose(const std::string& key, const Descs& d, int count, FindFn find) {
  {
    std::lock_guard<std::mutex> lock(g_algo_mu);
    auto it = algo_cache().find(key);
    if (it != algo_cache().end()) return it->second;
  }
  std::vector<Perf> perf(static_cast<size_t>(count));
  int n = 0;
  find(count, &n, perf.data());
  for (int i = 0; i < n; ++i) {
    if (!d.acceptable(perf[size_t(i)])) continue;
    // Float32 without TF32 always executes with FMA math (the math type it was searched with).
    cudnnMathType_t math = d.wanted_math() == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : perf[size_t(i)].mathType;
    Choice c{int(perf[size_t(i)].algo), math};
    std::lock_guard<std::mutex> lock(g_algo_mu);
    algo_cache()[key] = c;
    return c;
  }
  throw Error(str("conv2d (cuDNN): no usable algorithm for ", key));
}

struct Scalars {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d0) : &f0; }
};

}  // namespace

void cudnn_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Conv2dParams& p, const Ctx& ctx) {
  cudnnHandle_t h = handle_for(ctx);
  Descs d(x, w, y, p);
  Choice c = choose<cudnnConvolutionFwdAlgoPerf_t>(key_of("fwd", x, w, y, p, ctx), d, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                   [&](int cnt, int* n, auto* perf) {
                                                     MINIMA_CUDNN_CHECK(
                                                         cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y,
                                                                                              cnt, n, perf));
                                                   });
  MINIMA_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
  auto algo = cudnnConvolutionFwdAlgo_t(c.algo);
  size_t ws = 0;
  MINIMA_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, algo, &ws));
  DeviceBuffer buf(ws, ctx.dev);
  Scalars s;
  MINIMA_CUDNN_CHECK(cudnnConvolutionForward(h, s.one(d.dtype), d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv, algo,
                                             buf.data(), ws, s.zero(d.dtype), d.y, y.data_ptr()));
}

void cudnn_conv_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p,
                               const Ctx& ctx) {
  cudnnHandle_t h = handle_for(ctx);
  Descs d(gx, w, gy, p);
  Choice c = choose<cudnnConvolutionBwdDataAlgoPerf_t>(
      key_of("dgrad", gx, w, gy, p, ctx), d, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, [&](int cnt, int* n, auto* perf) {
        MINIMA_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, d.w, d.y, d.conv, d.x, cnt, n, perf));
      });
  MINIMA_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
  auto algo = cudnnConvolutionBwdDataAlgo_t(c.algo);
  size_t ws = 0;
  MINIMA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x, algo, &ws));
  DeviceBuffer buf(ws, ctx.dev);
  Scalars s;
  MINIMA_CUDNN_CHECK(cudnnConvolutionBackwardData(h, s.one(d.dtype), d.w, w.data_ptr(), d.y, gy.data_ptr(), d.conv,
                                                  algo, buf.data(), ws, s.zero(d.dtype), d.x, gx.data_ptr()));
}

void cudnn_conv_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p,
                                const Ctx& ctx) {
  cudnnHandle_t h = handle_for(ctx);
  Descs d(x, gw, gy, p);
  Choice c = choose<cudnnConvolutionBwdFilterAlgoPerf_t>(
      key_of("wgrad", x, gw, gy, p, ctx), d, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, [&](int cnt, int* n, auto* perf) {
        MINIMA_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x, d.y, d.conv, d.w, cnt, n, perf));
      });
  MINIMA_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
  auto algo = cudnnConvolutionBwdFilterAlgo_t(c.algo);
  size_t ws = 0;
  MINIMA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.conv, d.w, algo, &ws));
  DeviceBuffer buf(ws, ctx.dev);
  Scalars s;
  MINIMA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, s.one(d.dtype), d.x, x.data_ptr(), d.y, gy.data_ptr(), d.conv,
                                                    algo, buf.data(), ws, s.zero(d.dtype), d.w, gw.data_ptr()));
}

}  // namespace minima::cuda

#else  // no cuDNN

namespace minima::cuda {
static void no_cudnn() { throw Error("conv2d: the cuDNN path was requested, but this minima was built without cuDNN"); }
void cudnn_conv_forward(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&, const Ctx&) { no_cudnn(); }
void cudnn_conv_backward_input(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&, const Ctx&) {
  no_cudnn();
}
void cudnn_conv_backward_weight(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&, const Ctx&) {
  no_cudnn();
}
}  // namespace minima::cuda

#endif
