// tests/cuda/test_cuda_gemm.cpp: matrix products on CUDA against the CPU and native against
// cuBLAS: odd sizes that fill no tile, transposed views, broadcast batches, alpha/beta with
// strided outputs, TF32 and bf16 tensor cores, float64, and the "auto" choice.
#include "tests/cuda/cuda_test_util.h"

using namespace minima;
using namespace cudatest;

#ifdef MINIMA_HAS_CUDA

namespace {
struct MatCase {
  Shape a, b;
  bool ta, tb;  // pass the operand as the transpose of a stored [.., n, m] tensor
};
std::vector<MatCase> mat_cases() {
  return {{{1, 1}, {1, 1}, false, false},          {{7, 13}, {13, 5}, false, false},
          {{129, 257}, {257, 131}, false, false},  {{300, 64}, {64, 1}, false, false},
          {{1, 77}, {77, 200}, false, false},      {{33, 45}, {45, 19}, true, false},
          {{33, 45}, {45, 19}, false, true},       {{130, 70}, {70, 129}, true, true},
          {{3, 17, 33}, {3, 33, 9}, false, false}, {{2, 1, 5, 6}, {3, 6, 7}, false, false},
          {{45}, {45, 8}, false, false},           {{8, 45}, {45}, false, false}};
}
// Stored transposed: returns the operand as a view with the requested shape.
Tensor make_operand(const Shape& s, bool transposed, uint64_t seed, DType t) {
  if (!transposed) return rnd(s, seed, t);
  Shape st = s;
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return rnd(st, seed, t);
}
Tensor as_view(const Tensor& x, bool transposed) { return transposed ? x.transpose(-1, -2) : x; }
}  // namespace

CUDA_TEST_CASE("cuda matmul matches the CPU for every implementation, with gradients") {
  cuda::ConfigGuard guard;
  cuda::set_allow_tf32(false);
  for (const char* impl : {"native", "cublas", "auto"}) {
    cuda::set_gemm_impl(impl);
    for (const auto& c : mat_cases()) {
      Tensor a = make_operand(c.a, c.ta, 61, DType::f32), b = make_operand(c.b, c.tb, 62, DType::f32);
      check_graph(str(impl, " matmul ", c.a, c.ta ? "^T" : "", " @ ", c.b, c.tb ? "^T" : ""), {a, b}, tol(DType::f32),
                  [&](const std::vector<Tensor>& v) { return matmul(as_view(v[0], c.ta), as_view(v[1], c.tb)); });
    }
    // Operands whose k stride is not 1: a strided column as a vector, a strided slice, and the
    // backward of a sum, whose upstream gradient is expanded with stride 0 in both dims.
    Tensor x3 = rnd({45, 3}, 70), w45 = rnd({45, 8}, 71), wide = rnd({7, 90}, 72);
    check_graph(str(impl, " matmul of a strided column"), {x3, w45}, tol(DType::f32),
                [](const std::vector<Tensor>& v) { return matmul(v[0].select(1, 0), v[1]); });
    check_graph(str(impl, " matmul @ a strided column"), {x3, w45}, tol(DType::f32),
                [](const std::vector<Tensor>& v) { return matmul(v[1].transpose(0, 1), v[0].select(1, 2)); });
    check_graph(str(impl, " matmul of a strided slice"), {wide, w45}, tol(DType::f32),
                [](const std::vector<Tensor>& v) { return matmul(v[0].slice(1, 0, 90, 2), v[1]); });
    // Negative strides (flip is a view): every row and column offset runs backwards.
    check_graph(str(impl, " matmul of flipped operands"), {rnd({37, 45}, 74), w45}, tol(DType::f32),
                [](const std::vector<Tensor>& v) {
                  return matmul(flip(v[0], {0, 1}), flip(v[1], {1}));
                });
    check_graph(str(impl, " sum of a matmul (stride-0 gradient)"), {rnd({33, 45}, 73), w45}, tol(DType::f32),
                [](const std::vector<Tensor>& v) { return sum(matmul(v[0], v[1])); });
    Tensor x = rnd({9, 31}, 63), w = rnd({17, 31}, 64), bias = rnd({17}, 65);
    check_graph(str(impl, " linear"), {x, w, bias}, tol(DType::f32),
                [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); });
  }
}

CUDA_TEST_CASE("cuda gemm: native against cuBLAS and the CPU, with alpha, beta and strided outputs") {
  cuda::ConfigGuard guard;
  cuda::set_allow_tf32(false);
  Backend& gpu = backend_for(kGpu);
  Backend& cpu = cpu_backend();
  for (auto [M, N, K] :
       std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {5, 3, 200}, {127, 129, 33}, {256, 128, 8}, {300, 257, 1000}}) {
    for (double beta : {0.0, 0.75}) {
      Tensor a = rnd({2, M, K}, 66), b = rnd({2, K, N}, 67), c0 = rnd({2, M, N}, 68);
      Tensor want = c0.clone();
      cpu.gemm(want, a, b, 1.5, beta);
      for (const char* impl : {"native", "cublas"}) {
        cuda::set_gemm_impl(impl);
        std::string w = str(impl, " ", M, "x", N, "x", K, " beta ", beta);
        Tensor c = beta == 0.0 ? full({2, M, N}, std::nan(""), TensorOptions(DType::f32, kGpu)) : c0.to(kGpu);
        gpu.gemm(c, a.to(kGpu), b.to(kGpu), 1.5, beta);
        expect_close(c.cpu(), want, tol(DType::f32), w);
        // The output as a transposed view (column-major storage).
        Tensor store = c0.transpose(1, 2).contiguous().to(kGpu);
        Tensor ct = store.transpose(1, 2);
        gpu.gemm(ct, a.to(kGpu), b.to(kGpu), 1.5, beta);
        expect_close(ct.cpu(), want, tol(DType::f32), w + " (column-major output)");
        // Operands with a broadcast batch (stride 0) and a transposed view.
        Tensor a1 = rnd({1, M, K}, 69);
        Tensor want2 = c0.clone();
        cpu.gemm(want2, a1.expand({2, M, K}), b.transpose(1, 2).contiguous().transpose(1, 2), 1.5, beta);
        Tensor c2 = beta == 0.0 ? full({2, M, N}, std::nan(""), TensorOptions(DType::f32, kGpu)) : c0.to(kGpu);
        Tensor bt = b.transpose(1, 2).contiguous().to(kGpu).transpose(1, 2);
        gpu.gemm(c2, a1.to(kGpu).expand({2, M, K}), bt, 1.5, beta);
        expect_close(c2.cpu(), want2, tol(DType::f32), w + " (broadcast batch, transposed B)");
      }
    }
  }
}

CUDA_TEST_CASE("cuda gemm on tensor cores: TF32 and bf16 (native wmma and cuBLAS)") {
  cuda::ConfigGuard guard;
  for (const char* impl : {"native", "cublas"}) {
    cuda::set_gemm_impl(impl);
    cuda::set_allow_tf32(true);
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{100, 70, 37}, {128, 128, 32}, {257, 129, 300}}) {
      Tensor a = rnd({M, K}, 71), b = rnd({K, N}, 72);
      check_graph(str(impl, " tf32 ", M, "x", N, "x", K), {a, b}, kTf32Tol,
                  [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); });
      check_graph(str(impl, " tf32 transposed ", M, "x", N, "x", K), {a, b}, kTf32Tol,
                  [](const std::vector<Tensor>& v) { return matmul(v[1].t(), v[0].t()); });
      Tensor ab = rnd({M, K}, 73, DType::bf16), bb = rnd({K, N}, 74, DType::bf16);
      check_graph(str(impl, " bf16 ", M, "x", N, "x", K), {ab, bb}, tol(DType::bf16),
                  [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); });
      Tensor bat = rnd({3, M, K}, 75, DType::bf16), bbt = rnd({3, N, K}, 76, DType::bf16);
      check_graph(str(impl, " bf16 batched, transposed ", M, "x", N, "x", K), {bat, bbt}, tol(DType::bf16),
                  [](const std::vector<Tensor>& v) { return matmul(v[0], v[1].transpose(1, 2)); });
    }
  }
  // With beta: the bf16 output is read, accumulated in float and rounded once.
  cuda::set_gemm_impl("native");
  Tensor a = rnd({1, 40, 50}, 77, DType::bf16), b = rnd({1, 50, 30}, 78, DType::bf16),
         c = rnd({1, 40, 30}, 79, DType::bf16);
  Tensor want = c.clone();
  cpu_backend().gemm(want, a, b, 0.5, 2.0);
  Tensor got = c.to(kGpu);
  backend_for(kGpu).gemm(got, a.to(kGpu), b.to(kGpu), 0.5, 2.0);
  expect_close(got.cpu(), want, tol(DType::bf16), "bf16 with alpha and beta");
}

CUDA_TEST_CASE("cuda gemm in float64") {
  cuda::ConfigGuard guard;
  for (const char* impl : {"native", "cublas"}) {
    cuda::set_gemm_impl(impl);
    Tensor a = rnd({37, 65}, 81, DType::f64), b = rnd({65, 23}, 82, DType::f64);
    check_graph(str(impl, " f64"), {a, b}, tol(DType::f64),
                [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); });
    check_graph(str(impl, " f64 transposed"), {a, b}, tol(DType::f64),
                [](const std::vector<Tensor>& v) { return matmul(v[1].t(), v[0].t()); });
  }
}

CUDA_TEST_CASE("cuda gemm: K = 0 and alpha = 0 scale the output by beta") {
  for (const char* impl : {"native", "cublas"}) {
    cuda::ConfigGuard guard;
    cuda::set_gemm_impl(impl);
    Tensor a = empty({1, 4, 0}, TensorOptions(DType::f32, kGpu)), b = empty({1, 0, 3}, TensorOptions(DType::f32, kGpu));
    Tensor c = full({1, 4, 3}, 2.0, TensorOptions(DType::f32, kGpu));
    backend_for(kGpu).gemm(c, a, b, 1.0, 0.5);
    expect_equal(c.cpu(), full({1, 4, 3}, 1.0), str(impl, " K = 0, beta = 0.5"));
    backend_for(kGpu).gemm(c, a, b, 1.0, 0.0);
    expect_equal(c.cpu(), zeros({1, 4, 3}), str(impl, " K = 0, beta = 0"));
  }
}

#endif  // MINIMA_HAS_CUDA
