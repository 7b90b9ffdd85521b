// tests/cuda/test_cuda_reduce.cpp: sum / mean / max / min / var / argmax / argmin along dims,
// against the CPU: odd shapes, strided inputs, NaNs and ties, reductions big enough to take the
// split (two-kernel) paths, and integer tensors.
#include <limits>

#include "tests/cuda/cuda_test_util.h"

using namespace minima;
using namespace cudatest;

#ifdef MINIMA_HAS_CUDA

CUDA_TEST_CASE("cuda sum / mean / max / min along dims, with gradients") {
  std::vector<std::vector<int64_t>> dim_sets = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    for (const Shape& s : {Shape{5, 7, 9}, Shape{3, 1, 300}, Shape{33, 2, 65}}) {
      Tensor x = rnd(s, 51, t);
      for (const auto& dims : dim_sets) {
        for (bool keep : {false, true}) {
          std::string w = str(dtype_name(t), " shape ", s, " dims ", dims, keep ? " keepdim" : "");
          check_graph("sum " + w, {x}, tol(t), [&](const std::vector<Tensor>& v) { return sum(v[0], dims, keep); });
          check_graph("mean " + w, {x}, tol(t), [&](const std::vector<Tensor>& v) { return mean(v[0], dims, keep); });
          check_graph("max " + w, {x}, tol(t), [&](const std::vector<Tensor>& v) { return max(v[0], dims, keep); });
          check_graph("min " + w, {x}, tol(t), [&](const std::vector<Tensor>& v) { return min(v[0], dims, keep); });
        }
      }
      // A permuted (non-contiguous) input.
      check_graph(str("sum of a permuted view ", dtype_name(t), " ", s), {x}, tol(t),
                  [&](const std::vector<Tensor>& v) {
                    return sum(v[0].permute({2, 0, 1}), {0, 2});
                  });
    }
  }
  // Max with ties: the gradient is shared among the tied elements.
  Tensor ties = mul(rnd({6, 40}, 52), 1.5).to(DType::i64).to(DType::f32);
  check_graph("max with ties", {ties}, tol(DType::f32), [](const std::vector<Tensor>& v) { return max(v[0], {1}); });
  check_graph("var", {rnd({40, 7}, 53)}, tol(DType::f32), [](const std::vector<Tensor>& v) { return var(v[0], {0}); });
}

CUDA_TEST_CASE("cuda argmax / argmin: first of ties, NaN wins") {
  Tensor ties = mul(rnd({7, 50, 3}, 54), 1.5).to(DType::i64).to(DType::f32);
  for (int64_t d : {0, 1, 2}) {
    INFO("dim ", d);
    expect_equal(argmax(ties.to(kGpu), d).cpu(), argmax(ties, d), "argmax with ties");
    expect_equal(argmin(ties.to(kGpu), d).cpu(), argmin(ties, d), "argmin with ties");
    expect_equal(argmax(ties.to(kGpu).transpose(0, 2), d).cpu(), argmax(ties.transpose(0, 2), d), "argmax strided");
  }
  float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor h = from_vector<float>({1, nan, 3, nan, 5, -1, 2, 9, 9}, {3, 3});
  expect_equal(argmax(h.to(kGpu), 1).cpu(), argmax(h, 1), "argmax with NaN");
  expect_equal(argmin(h.to(kGpu), 1).cpu(), argmin(h, 1), "argmin with NaN");
  expect_equal(argmax(h.to(kGpu), 0).cpu(), argmax(h, 0), "argmax with NaN, dim 0");
  expect_equal(max(h.to(kGpu), {1}).cpu(), max(h, {1}), "max propagates NaN");
  for (DType t : {DType::bf16, DType::f64, DType::i64, DType::u8}) {
    Tensor x = mul(rnd({9, 130}, 55), 20.0).to(t);
    expect_equal(argmax(x.to(kGpu), 1).cpu(), argmax(x, 1), str("argmax ", dtype_name(t)));
    expect_equal(argmin(x.to(kGpu), 0).cpu(), argmin(x, 0), str("argmin ", dtype_name(t)));
  }
  // 0-d input.
  Tensor s = scalar_tensor(3.0);
  expect_equal(argmax(s.to(kGpu), 0).cpu(), argmax(s, 0), "argmax of a 0-d tensor");
}

CUDA_TEST_CASE("cuda reductions large enough for the split paths") {
  struct Case {
    Shape s;
    std::vector<int64_t> dims;
  };
  std::vector<Case> cases = {{{1 << 22}, {0}},
                             {{3, 200003}, {1}},
                             {{200003, 3}, {0}},
                             {{1000, 1000}, {0}},
                             {{64, 32, 33, 17}, {0, 2, 3}},
                             {{2, 70000, 5}, {0, 1}}};
  for (const Case& c : cases) {
    Tensor x = rnd(c.s, 56);
    Tensor d = x.to(kGpu);
    std::string w = str(c.s, " dims ", c.dims);
    expect_close(sum(d, c.dims).cpu(), sum(x, c.dims), tol(DType::f32), "sum " + w);
    expect_equal(max(d, c.dims).cpu(), max(x, c.dims), "max " + w);
    expect_equal(min(d, c.dims).cpu(), min(x, c.dims), "min " + w);
    if (c.dims.size() == 1) {
      expect_equal(argmax(d, c.dims[0]).cpu(), argmax(x, c.dims[0]), "argmax " + w);
      expect_equal(argmin(d, c.dims[0]).cpu(), argmin(x, c.dims[0]), "argmin " + w);
    }
  }
}

CUDA_TEST_CASE("cuda reductions of integer tensors") {
  for (DType t : {DType::i64, DType::u8}) {
    Tensor x = mul(abs(rnd({17, 23}, 57)), 30.0).to(t);
    Tensor d = x.to(kGpu);
    INFO(dtype_name(t));
    expect_equal(sum(d, {1}).cpu(), sum(x, {1}), "sum");
    expect_equal(sum(d).cpu(), sum(x), "sum all");
    expect_equal(max(d, {0}).cpu(), max(x, {0}), "max");
    expect_equal(min(d, {1}).cpu(), min(x, {1}), "min");
  }
  Tensor logits = rnd({64, 10}, 58);
  Tensor target = argmax(rnd({64, 10}, 59), 1);
  CHECK(count_correct(logits.to(kGpu), target.to(kGpu)) == count_correct(logits, target));
}

#endif  // MINIMA_HAS_CUDA
