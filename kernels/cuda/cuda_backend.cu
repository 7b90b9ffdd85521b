// kernels/cuda/cuda_backend.cu: the CUDA backend's entry points (cuda_device_count,
// cuda_available, cuda_backend, cuda_allocator), per-device state (one stream, created once and
// never destroyed, so tensors freed at exit stay safe), error reporting, the "auto" timing
// between native and vendor paths, and the host side of bad-index reports.
//
// The stream is created with default (blocking) flags: work other code queues on the legacy
// default stream stays ordered with ours, while our launches still name the stream explicitly.
#include <cuda_runtime.h>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"

namespace minima {

int cuda_device_count() {
  static const int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device / no driver" error
      c = 0;
    }
    return c;
  }();
  return n;
}

bool cuda_available() { return cuda_device_count() > 0; }

Backend& cuda_backend() {
  static cuda::CudaBackend b;
  MINIMA_CHECK(cuda_available(), "no CUDA device is available (this minima was built with CUDA, but ",
               "cudaGetDeviceCount found no usable device or driver)");
  return b;
}

namespace cuda {
Allocator* caching_allocator(int device);  // memory.cu
}
Allocator* cuda_allocator(int device) { return cuda::caching_allocator(device); }

namespace cuda {

void throw_cuda_error(int code, const char* name, const char* desc, const char* what, const char* file, int line,
                      const char* library) {
  throw Error(str(library, " error at ", file, ":", line, ": ", what, " failed with ", name, " (", code, "): ", desc));
}

void report_cuda_error(int code, const char* name, const char* desc, const char* what, const char* file, int line,
                       const char* library) {
  std::fprintf(stderr, "minima: %s error at %s:%d: %s failed with %s (%d): %s\n", library, file, line, what, name, code,
               desc);
}

namespace {

struct DeviceState {
  cudaStream_t stream = nullptr;
  int sms = 0;
  std::string name;
  unsigned long long* err_slot = nullptr;  // bad-index reports (8 bytes of device memory)
};

std::mutex g_state_mu;

// Never destroyed: buffers and contexts released during static destruction may still look
// their device up.
std::vector<std::unique_ptr<DeviceState>>& states_vec() {
  static auto* v = new std::vector<std::unique_ptr<DeviceState>>();
  return *v;
}

bool device_started(int dev) {
  std::lock_guard<std::mutex> lock(g_state_mu);
  auto& v = states_vec();
  return dev >= 0 && dev < int(v.size()) && v[size_t(dev)] != nullptr;
}

DeviceState& state(int dev) {
  auto& states = states_vec();
  std::lock_guard<std::mutex> lock(g_state_mu);
  int n = cuda_device_count();
  MINIMA_CHECK(dev >= 0 && dev < n, "cuda:", dev, " requested, but ", n, " CUDA device", n == 1 ? " is" : "s are",
               " available");
  if (states.empty()) states.resize(size_t(n));
  auto& s = states[size_t(dev)];
  if (!s) {
    auto fresh = std::make_unique<DeviceState>();
    int prev = 0;
    MINIMA_CUDA_CHECK(cudaGetDevice(&prev));
    MINIMA_CUDA_CHECK(cudaSetDevice(dev));
    MINIMA_CUDA_CHECK(cudaStreamCreateWithFlags(&fresh->stream, cudaStreamDefault));
    cudaDeviceProp prop;
    MINIMA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    fresh->sms = prop.multiProcessorCount;
    fresh->name = prop.name;
    MINIMA_CUDA_CHECK(cudaMalloc(&fresh->err_slot, sizeof(unsigned long long)));
    MINIMA_CUDA_CHECK(cudaMemset(fresh->err_slot, 0xFF, sizeof(unsigned long long)));  // nothing reported
    MINIMA_CUDA_CHECK(cudaSetDevice(prev));
    s = std::move(fresh);  // kept for the life of the process
  }
  return *s;
}

}  // namespace

cudaStream_t stream_for(int device) { return state(device).stream; }
int sm_count(int device) { return state(device).sms; }
std::string device_name(int device) { return state(device).name; }
unsigned long long* index_error_slot(int dev) { return state(dev).err_slot; }

bool stream_capturing(int device) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  MINIMA_CUDA_CHECK(cudaStreamIsCapturing(stream_for(device), &st));
  return st != cudaStreamCaptureStatusNone;
}

Ctx::Ctx(int device) : dev(device) {
  stream = stream_for(device);
  int cur = -1;
  MINIMA_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) MINIMA_CUDA_CHECK(cudaSetDevice(device));
}

static int device_of(const Tensor& t) {
  MINIMA_CHECK(t.defined(), "CUDA backend: undefined tensor argument");
  MINIMA_CHECK(t.device().is_cuda(), "CUDA backend: expected a tensor on a CUDA device, got ", t.str());
  return t.device().index;
}
Ctx::Ctx(const Tensor& t) : Ctx(device_of(t)) {}

void synchronize(int device) {
  Ctx ctx(device);
  MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

void CudaBackend::synchronize() {
  // Only devices this process has used: touching the others would create a context on each
  // (and fail on GPUs other jobs hold in exclusive mode).
  for (int d = 0; d < cuda_device_count(); ++d)
    if (device_started(d)) cuda::synchronize(d);
}

double time_ms(const std::function<void()>& f, int warmup, int iters, int device) {
  Ctx ctx(device);
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t a, b;
  MINIMA_CUDA_CHECK(cudaEventCreate(&a));
  MINIMA_CUDA_CHECK(cudaEventCreate(&b));
  MINIMA_CUDA_CHECK(cudaEventRecord(a, ctx.stream));
  for (int i = 0; i < iters; ++i) f();
  MINIMA_CUDA_CHECK(cudaEventRecord(b, ctx.stream));
  MINIMA_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  MINIMA_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  MINIMA_CUDA_CHECK(cudaEventDestroy(a));
  MINIMA_CUDA_CHECK(cudaEventDestroy(b));
  return double(ms) / double(iters < 1 ? 1 : iters);
}

// ---------------------------------------------------------------------------------------------
// auto: time both paths once per call signature
// ---------------------------------------------------------------------------------------------
namespace {
std::mutex g_tune_mu;
std::map<std::string, bool>& tune_cache() {
  static std::map<std::string, bool> m;
  return m;
}
}  // namespace

void clear_autotune_cache() {
  std::lock_guard<std::mutex> lock(g_tune_mu);
  tune_cache().clear();
}

bool autotune_use_vendor(const std::string& key, const Ctx& ctx, const std::function<void()>& native,
                         const std::function<void()>& vendor, bool rule_vendor) {
  if (deterministic() || stream_capturing(ctx.dev)) return rule_vendor;
  std::string k = str(key, "|tf32=", allow_tf32(), "|dev=", ctx.dev);
  {
    std::lock_guard<std::mutex> lock(g_tune_mu);
    auto it = tune_cache().find(k);
    if (it != tune_cache().end()) return it->second;
  }
  // One untimed run of each (the vendor's first call may search its algorithms), then the best
  // of two timed runs of each.
  // A vendor call that fails (cuDNN has no algorithm for some bfloat16 shapes) settles it for
  // the native kernel.
  double tn = 1e30, tv = 1e30;
  bool vendor_ok = true;
  try {
    tv = std::min(tv, time_ms(vendor, 1, 1, ctx.dev));
  } catch (const Error& e) {
    std::fprintf(stderr, "warning: %s: the vendor library failed (%s); using the native kernel\n", key.c_str(),
                 e.what());
    vendor_ok = false;
  }
  tn = std::min(tn, time_ms(native, 1, 1, ctx.dev));
  if (vendor_ok) tv = std::min(tv, time_ms(vendor, 0, 1, ctx.dev));
  tn = std::min(tn, time_ms(native, 0, 1, ctx.dev));
  bool v = vendor_ok && tv < tn;
  std::lock_guard<std::mutex> lock(g_tune_mu);
  tune_cache()[k] = v;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Bad-index reports
// ---------------------------------------------------------------------------------------------
static int64_t take_error(const Ctx& ctx) {
  if (stream_capturing(ctx.dev)) return -1;
  unsigned long long v = 0;
  unsigned long long* slot = index_error_slot(ctx.dev);
  MINIMA_CUDA_CHECK(cudaMemcpyAsync(&v, slot, sizeof(v), cudaMemcpyDeviceToHost, ctx.stream));
  MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  if (v == ~0ull) return -1;
  MINIMA_CUDA_CHECK(cudaMemsetAsync(slot, 0xFF, sizeof(v), ctx.stream));
  return int64_t(v);
}

static int64_t index_value_at(const Ctx& ctx, const Tensor& index, int64_t pos) {
  int64_t val = 0;
  const int64_t* p = static_cast<const int64_t*>(index.data_ptr()) + pos;
  MINIMA_CUDA_CHECK(cudaMemcpyAsync(&val, p, sizeof(val), cudaMemcpyDeviceToHost, ctx.stream));
  MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return val;
}

void check_index_error(const Ctx& ctx, const Tensor& index, int64_t bound, const char* op, int64_t dim) {
  int64_t pos = take_error(ctx);
  if (pos < 0) return;
  int64_t val = index_value_at(ctx, index, pos);
  throw Error(str(op, ": index ", val, " at position ", pos, " is out of range for dim ", dim, " of size ", bound));
}

void check_target_error(const Ctx& ctx, const Tensor& target, int64_t classes) {
  int64_t pos = take_error(ctx);
  if (pos < 0) return;
  int64_t val = index_value_at(ctx, target, pos);
  throw Error(
      str("cross_entropy/nll_loss: target ", val, " at position ", pos, " is out of range for ", classes, " classes"));
}

}  // namespace cuda
}  // namespace minima
