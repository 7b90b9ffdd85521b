// tests/cuda/test_cuda_memory.cpp: the caching allocator (reuse, bytes in use, peak), device
// buffers, host<->device copies, and the strided copy kernel behind cat / pad / flip / contiguous
// (any strides, negative ones included, and every pair of dtypes), plus fill.
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "tests/cuda/cuda_test_util.h"

using namespace minima;
using namespace cudatest;

TEST_CASE("cuda: device available") {
  if (!have_gpu()) MESSAGE(skip_reason());
#ifdef MINIMA_HAS_CUDA
  if (have_gpu()) MESSAGE("CUDA device 0: ", cuda::device_name(0), " (", cuda::sm_count(0), " SMs)");
#endif
  CHECK(true);
}

// These two run on any machine: they need no device.
TEST_CASE("cuda: without a device, CUDA tensors and kernels raise a clear error" * doctest::skip(have_gpu())) {
  CHECK_THROWS_AS(empty({2, 3}, TensorOptions(DType::f32, Device::cuda(0))), Error);
  CHECK_THROWS_AS(backend_for(Device::cuda(0)), Error);
  CHECK_THROWS_AS(rnd({2}, 1).to(Device::cuda(0)), Error);
}

#ifdef MINIMA_HAS_CUDA

// Runs on any machine: the mode is read from the environment before any device is touched.
TEST_CASE("cuda allocator: MINIMA_CUDA_ALLOCATOR is caching or direct, and any other value is named") {
  std::string warning = "stale";
  CHECK(!cuda::direct_allocation(nullptr, warning));
  CHECK(warning.empty());
  CHECK(!cuda::direct_allocation("", warning));
  CHECK(!cuda::direct_allocation("caching", warning));
  CHECK(warning.empty());
  CHECK(cuda::direct_allocation("direct", warning));
  CHECK(warning.empty());
  for (const char* typo : {"Direct", "direct ", "1", "off"}) {
    CAPTURE(typo);
    CHECK(!cuda::direct_allocation(typo, warning));
    CHECK(warning == std::string("MINIMA_CUDA_ALLOCATOR=") + typo + " is not one of caching, direct; using caching");
  }
}

TEST_CASE("cuda config: implementation names, flags and ConfigGuard") {
  const cuda::Impl gemm_before = cuda::gemm_impl();
  const cuda::BnImpl bn_before = cuda::bn_impl();
  const bool tf32_before = cuda::allow_tf32(), det_before = cuda::deterministic();
  {
    cuda::ConfigGuard guard;
    cuda::set_gemm_impl("native");
    cuda::set_conv_impl("native");
    cuda::set_allow_tf32(true);
    cuda::set_deterministic(true);
    CHECK(cuda::gemm_impl() == cuda::Impl::Native);
    CHECK(cuda::gemm_impl_name() == "native");
    CHECK(cuda::allow_tf32());
    CHECK(cuda::deterministic());
    cuda::set_gemm_impl("cublas");
    CHECK(cuda::gemm_impl() == cuda::Impl::Vendor);
    CHECK(cuda::gemm_impl_name() == "cublas");
    if (cuda::have_cudnn()) {
      cuda::set_conv_impl("cudnn");
      CHECK(cuda::conv_impl_name() == "cudnn");
    }
    CHECK_THROWS_WITH_AS(cuda::set_gemm_impl("cudnn"), doctest::Contains("expected native, cublas or auto"), Error);
    CHECK_THROWS_AS(cuda::set_conv_impl("fast"), Error);
    cuda::set_bn_impl("persistent");
    CHECK(cuda::bn_impl() == cuda::BnImpl::Persistent);
    CHECK(cuda::bn_impl_name() == "persistent");
    cuda::set_bn_impl("passes");
    CHECK(cuda::bn_impl_name() == "passes");
    cuda::set_bn_impl("persistent");
    CHECK_THROWS_WITH_AS(cuda::set_bn_impl("fused"), doctest::Contains("expected passes or persistent"), Error);
    CHECK(cuda::bn_impl() == cuda::BnImpl::Persistent);  // a bad name changes nothing
  }
  // The guard restored every setting.
  CHECK(cuda::gemm_impl() == gemm_before);
  CHECK(cuda::bn_impl() == bn_before);
  CHECK(cuda::allow_tf32() == tf32_before);
  CHECK(cuda::deterministic() == det_before);
}

CUDA_TEST_CASE("cuda allocator: bytes in use, peak and reuse of freed blocks") {
  if (const char* mode = std::getenv("MINIMA_CUDA_ALLOCATOR"); mode && std::string(mode) == "direct") {
    MESSAGE("skipped: MINIMA_CUDA_ALLOCATOR=direct turns the caching allocator off, so there is no reuse to test");
    return;
  }
  Allocator* a = allocator_for(kGpu);
  cuda::empty_cache(0);  // so the blocks handed out below are the ones this test frees
  size_t base = a->bytes_in_use();
  a->reset_peak();
  CHECK(a->peak_bytes() == base);
  void* p = a->allocate(1000);
  REQUIRE(p != nullptr);
  CHECK(a->bytes_in_use() == base + 1000);
  void* q = a->allocate(3000);
  CHECK(a->bytes_in_use() == base + 4000);
  CHECK(a->peak_bytes() == base + 4000);
  a->deallocate(q, 3000);
  CHECK(a->bytes_in_use() == base + 1000);
  CHECK(a->peak_bytes() == base + 4000);  // the high-water mark stays
  auto before = cuda::allocator_stats(0);
  void* r = a->allocate(3000);  // same size class: the freed block comes back, no cudaMalloc
  auto after = cuda::allocator_stats(0);
  CHECK(r == q);
  CHECK(after.reuses == before.reuses + 1);
  CHECK(after.device_allocs == before.device_allocs);
  CHECK(after.cached + 3072 == before.cached);
  a->deallocate(r, 3000);
  a->deallocate(p, 1000);
  CHECK(a->bytes_in_use() == base);
  a->reset_peak();
  CHECK(a->peak_bytes() == base);
  CHECK(a->allocate(0) == nullptr);
  // A much larger request is not served by a small cached block.
  void* big = a->allocate(1 << 20);
  CHECK(big != p);
  CHECK(big != q);
  a->deallocate(big, 1 << 20);
  cuda::empty_cache(0);
  CHECK(cuda::allocator_stats(0).cached == 0);
  CHECK(a->bytes_in_use() == base);
}

CUDA_TEST_CASE("cuda allocator: tensors free their storage, DeviceBuffer is move-only RAII") {
  Allocator* a = allocator_for(kGpu);
  size_t base = a->bytes_in_use();
  {
    Tensor t = empty({250}, TensorOptions(DType::f32, kGpu));
    CHECK(a->bytes_in_use() == base + 1000);
    Tensor view = t.narrow(0, 10, 20);  // shares the storage
    t = Tensor();
    CHECK(a->bytes_in_use() == base + 1000);
  }
  CHECK(a->bytes_in_use() == base);
  {
    cuda::DeviceBuffer b(4096);
    CHECK(b.data() != nullptr);
    CHECK(b.size() == 4096);
    CHECK(a->bytes_in_use() == base + 4096);
    cuda::DeviceBuffer c(std::move(b));
    CHECK(b.data() == nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is under test
    CHECK(c.size() == 4096);
    CHECK(a->bytes_in_use() == base + 4096);
    cuda::DeviceBuffer d;
    d = std::move(c);
    CHECK(d.data() != nullptr);
    CHECK(a->bytes_in_use() == base + 4096);
  }
  CHECK(a->bytes_in_use() == base);
}

CUDA_TEST_CASE("cuda copy: host to device to host, every dtype, and .to(device)") {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
    INFO(dtype_name(t));
    Tensor h = mul(abs(rnd({3, 5, 7}, 1)), 3.0).to(t);
    Tensor d = h.to(kGpu);
    CHECK(d.device() == kGpu);
    CHECK(d.dtype() == t);
    expect_equal(d.cpu(), h, "round trip");
    expect_equal(d.to(DType::f64).cpu(), h.to(DType::f64), "convert on the device");
  }
  Tensor s = scalar_tensor(2.5, TensorOptions(DType::f32, kGpu));
  CHECK(s.item() == 2.5);
  // Typed host access to device memory is refused with a clear error instead of a crash.
  CHECK_THROWS_WITH_AS(s.data<float>(), doctest::Contains("cannot be read on the host"), Error);
  CHECK(s.data_ptr() != nullptr);  // the raw pointer, for kernels
  // Differentiable: the gradient flows back to the host tensor.
  Tensor x = rnd({4, 3}, 2);
  x.requires_grad_(true);
  Tensor y = sum(mul(x.to(kGpu), 2.0));
  y.backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().device() == Device::cpu());
  expect_equal(x.grad(), full({4, 3}, 2.0), "grad through .to(cuda)");
}

CUDA_TEST_CASE("cuda copy: strided, broadcast and negative-stride views, all dtype pairs") {
  // Non-negative values: converting a negative float to uint8 is undefined in C++, and the CPU
  // reference's result then depends on how the compiler vectorized its loop.
  Tensor h = mul(abs(rnd({5, 6, 7}, 3)), 4.0);
  Tensor d = h.to(kGpu);
  struct View {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
  };
  std::vector<View> views = {
      {"transpose", [](const Tensor& t) { return t.transpose(0, 2); }},
      {"permute",
       [](const Tensor& t) {
         return t.permute({1, 2, 0});
       }},
      {"step slice", [](const Tensor& t) { return t.slice(1, 1, 6, 2); }},
      {"narrow", [](const Tensor& t) { return t.narrow(2, 3, 3); }},
      {"select", [](const Tensor& t) { return t.select(1, 4); }},
      {"broadcast",
       [](const Tensor& t) {
         return t.select(0, 1).select(0, 2).unsqueeze(0).expand({4, 7});
       }},
      {"flip",
       [](const Tensor& t) {
         return flip(t, {0, 2});
       }},
      {"flip of transpose", [](const Tensor& t) { return flip(t.transpose(1, 2), {1}); }},
  };
  for (auto& v : views) {
    for (DType src : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
      for (DType dst : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
        INFO(v.name, " ", dtype_name(src), " -> ", dtype_name(dst));
        Tensor hs = v.f(h.to(src)), ds = v.f(d.to(src));
        Tensor want = empty(hs.shape(), TensorOptions(dst));
        want.copy_(hs);
        Tensor got = empty(ds.shape(), TensorOptions(dst, kGpu));
        got.copy_(ds);
        expect_equal(got.cpu(), want, str(v.name, " ", dtype_name(src), "->", dtype_name(dst)));
      }
    }
  }
  // A strided destination: write into every other column of a zero matrix.
  Tensor hz = zeros({6, 8}), dz = zeros({6, 8}, TensorOptions(DType::f32, kGpu));
  Tensor src = rnd({6, 4}, 4);
  hz.slice(1, 0, 8, 2).copy_(src);
  dz.slice(1, 0, 8, 2).copy_(src.to(kGpu));
  expect_equal(dz.cpu(), hz, "strided destination");
  // Host sources and destinations that are views, across devices.
  Tensor hv = h.transpose(0, 1);
  expect_equal(hv.to(kGpu).cpu(), hv.contiguous(), "non-contiguous host source");
  Tensor host_dst = zeros({7, 6});
  host_dst.t().copy_(d.select(0, 2));
  expect_equal(host_dst, h.select(0, 2).t().contiguous(), "non-contiguous host destination");
}

CUDA_TEST_CASE("cuda copy: dense casts between floating dtypes, with tails and misaligned starts") {
  // Dense, aligned tensors take the eight-at-a-time kernel (sizes off the eight: its tail);
  // views that start one element in are not 16-byte aligned and take the strided loop. Values
  // span many binades and include ties for bfloat16 rounding, infinities and NaN.
  for (int64_t n : {1, 7, 8, 9, 1000003}) {
    Tensor h = mul(rnd({n}, 5, DType::f64), 1e3);
    if (n > 8) {
      std::vector<double> special = {1.0 + 1.0 / 256,
                                     -(1.0 + 3.0 / 256),
                                     1e-40,
                                     3.5e38,
                                     1e300,
                                     std::numeric_limits<double>::infinity(),
                                     std::numeric_limits<double>::quiet_NaN(),
                                     -0.0};
      // As float64: without the option the factory would make float32, rounding 1e-40 and
      // overflowing 1e300 and 3.5e38 before the casts under test see them.
      h.slice(0, 0, 8, 1).copy_(from_vector<double>(special, {8}, TensorOptions(DType::f64)));
    }
    for (DType src : {DType::f32, DType::f64, DType::bf16}) {
      for (DType dst : {DType::f32, DType::f64, DType::bf16}) {
        if (src == dst) continue;
        Tensor hs = h.to(src), ds = hs.to(kGpu);
        const Tensor cast = ds.to(dst).cpu();
        expect_equal(cast, hs.to(dst), str(n, " ", dtype_name(src), "->", dtype_name(dst)));
        if (n > 8) CHECK(std::signbit(cast.to_vector<double>()[7]));  // -0.0 keeps its sign (== cannot tell)
        if (n > 1) {
          Tensor got = empty({n - 1}, TensorOptions(dst, kGpu)), want = empty({n - 1}, TensorOptions(dst));
          got.copy_(ds.slice(0, 1, n, 1));
          want.copy_(hs.slice(0, 1, n, 1));
          expect_equal(got.cpu(), want, str(n, " misaligned ", dtype_name(src), "->", dtype_name(dst)));
        }
      }
    }
  }
}

CUDA_TEST_CASE("cuda fill: every dtype, contiguous and strided") {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
    for (double v : {0.0, -1.25, 3.0, 1e-3, -1.0, 255.0}) {
      INFO(dtype_name(t), " ", v);
      // An integer tensor refuses a value it cannot hold, on the GPU as on the CPU.
      const bool fits = is_floating(t) || (v == std::trunc(v) && (t != DType::u8 || (v >= 0 && v <= 255)));
      if (!fits) {
        const char* why = v != std::trunc(v) ? "is not an integer" : "is outside the range of uint8";
        CHECK_THROWS_WITH_AS(full({3, 37}, v, TensorOptions(t, kGpu)), doctest::Contains(why), Error);
        CHECK_THROWS_AS(zeros({5, 9}, TensorOptions(t, kGpu)).slice(1, 1, 9, 3).fill_(v), Error);
        continue;
      }
      expect_equal(full({3, 37}, v, TensorOptions(t, kGpu)).cpu(), full({3, 37}, v, TensorOptions(t)), "full");
      Tensor d = zeros({5, 9}, TensorOptions(t, kGpu)), h = zeros({5, 9}, TensorOptions(t));
      d.slice(1, 1, 9, 3).fill_(v);
      h.slice(1, 1, 9, 3).fill_(v);
      expect_equal(d.cpu(), h, "strided fill");
    }
  }
}

CUDA_TEST_CASE("cuda cat / stack / pad / flip / clone match the CPU, with gradients") {
  Tensor a = rnd({3, 4, 5}, 5), b = rnd({3, 2, 5}, 6), c = rnd({3, 7, 5}, 7);
  check_graph("cat dim 1", {a, b, c}, tol(DType::f32), [](const std::vector<Tensor>& x) {
    return cat({x[0], x[1], x[2]}, 1);
  });
  check_graph("stack", {a}, tol(DType::f32), [](const std::vector<Tensor>& x) { return stack({x[0], x[0] * 2.0}, 2); });
  check_graph("pad", {a}, tol(DType::f32), [](const std::vector<Tensor>& x) { return pad(x[0], {1, 2, 0, 3}, -0.5); });
  check_graph("flip", {a}, tol(DType::f32), [](const std::vector<Tensor>& x) { return flip(x[0], {0, 2}); });
  check_graph("transpose then clone", {a}, tol(DType::f32),
              [](const std::vector<Tensor>& x) { return x[0].transpose(0, 2).clone(); });
  Tensor h = rnd({4, 6}, 8, DType::bf16);
  check_graph("bf16 cat", {h}, tol(DType::bf16), [](const std::vector<Tensor>& x) {
    return cat({x[0], flip(x[0], {1})}, 0);
  });
}

#endif  // MINIMA_HAS_CUDA
