// kernels/cuda/cuda_config.cpp: storage of the CUDA backend's run-time settings (see
// cuda_config.h). Plain atomics: the settings are read on every GEMM/conv call.
#include "kernels/cuda/cuda_config.h"

#include <atomic>

#include "core/error.h"

namespace minima::cuda {

namespace {
std::atomic<int> g_gemm{int(Impl::Auto)}, g_conv{int(Impl::Auto)}, g_bn{int(BnImpl::Passes)};
std::atomic<int> g_bn_stages{3};
std::atomic<bool> g_tf32{false}, g_det{false};

Impl parse(const std::string& name, const char* what, const char* vendor) {
  if (name == "native") return Impl::Native;
  if (name == vendor) return Impl::Vendor;
  if (name == "auto") return Impl::Auto;
  throw Error(str("unknown ", what, " implementation '", name, "' (expected native, ", vendor, " or auto)"));
}
std::string name_of(Impl i, const char* vendor) {
  switch (i) {
    case Impl::Native: return "native";
    case Impl::Vendor: return vendor;
    case Impl::Auto: return "auto";
  }
  return "?";
}
}  // namespace

void set_gemm_impl(const std::string& name) { g_gemm = int(parse(name, "gemm", "cublas")); }
void set_conv_impl(const std::string& name) {
  Impl i = parse(name, "conv", "cudnn");
  MINIMA_CHECK(i != Impl::Vendor || have_cudnn(),
               "--conv cudnn: this minima was built without cuDNN (no libcudnn found at configure time)");
  g_conv = int(i);
}
Impl gemm_impl() { return Impl(g_gemm.load()); }
Impl conv_impl() { return Impl(g_conv.load()); }
std::string gemm_impl_name() { return name_of(gemm_impl(), "cublas"); }
std::string conv_impl_name() { return name_of(conv_impl(), "cudnn"); }

void set_bn_impl(const std::string& name) {
  if (name == "passes")
    g_bn = int(BnImpl::Passes);
  else if (name == "persistent")
    g_bn = int(BnImpl::Persistent);
  else
    throw Error(str("unknown batch_norm implementation '", name, "' (expected passes or persistent)"));
}
BnImpl bn_impl() { return BnImpl(g_bn.load()); }
std::string bn_impl_name() { return bn_impl() == BnImpl::Passes ? "passes" : "persistent"; }
void set_bn_stages(int stages) {
  MINIMA_CHECK(stages == 2 || stages == 3, "batch_norm: the persistent kernel has 2 or 3 stages, not ", stages);
  g_bn_stages = stages;
}
int bn_stages() { return g_bn_stages.load(); }

void set_allow_tf32(bool on) { g_tf32 = on; }
bool allow_tf32() { return g_tf32; }
void set_deterministic(bool on) { g_det = on; }
bool deterministic() { return g_det; }

bool have_cudnn() {
#ifdef MINIMA_HAS_CUDNN
  return true;
#else
  return false;
#endif
}

ConfigGuard::ConfigGuard()
    : gemm_(gemm_impl()),
      conv_(conv_impl()),
      bn_(bn_impl()),
      bn_stages_(bn_stages()),
      tf32_(allow_tf32()),
      det_(deterministic()) {}
ConfigGuard::~ConfigGuard() {
  g_gemm = int(gemm_);
  g_conv = int(conv_);
  g_bn = int(bn_);
  g_bn_stages = bn_stages_;
  g_tf32 = tf32_;
  g_det = det_;
}

}  // namespace minima::cuda
