// tests/core/test_gradcheck_nn.cpp: finite-difference gradient checks (float64) of the
// neural-network ops: conv2d in many configurations (gradients of input, weight and bias),
// max/avg/adaptive pooling, batch norm in training and evaluation mode, softmax/log_softmax and
// the losses (cross_entropy, nll_loss, binary_cross_entropy_with_logits, mse_loss).
#include <doctest/doctest.h>

#include "gradcheck.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

namespace {
struct ConvCase {
  const char* name;
  Shape x, w;
  Conv2dParams p;
  bool bias;
};
Conv2dParams params(int64_t stride, int64_t pad, int64_t dil = 1, int64_t groups = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dil_h = p.dil_w = dil;
  p.groups = groups;
  return p;
}
}  // namespace

TEST_CASE("gradcheck: conv2d") {
  Generator g(300);
  Conv2dParams asym;
  asym.stride_h = 2;
  asym.stride_w = 1;
  asym.pad_h = 0;
  asym.pad_w = 2;
  asym.dil_h = 1;
  asym.dil_w = 2;
  std::vector<ConvCase> cases = {
      {"3x3 pad 1", {2, 3, 5, 6}, {4, 3, 3, 3}, params(1, 1), true},
      {"3x3 no bias", {2, 3, 5, 6}, {4, 3, 3, 3}, params(1, 0), false},
      {"stride 2 pad 1", {2, 2, 7, 7}, {3, 2, 3, 3}, params(2, 1), true},
      {"dilation 2", {1, 2, 7, 6}, {3, 2, 3, 2}, params(1, 1, 2), true},
      {"groups 2", {2, 4, 5, 5}, {6, 2, 3, 3}, params(1, 1, 1, 2), true},
      {"depthwise", {2, 3, 5, 4}, {3, 1, 3, 3}, params(1, 1, 1, 3), false},
      {"1x1", {2, 5, 3, 4}, {3, 5, 1, 1}, params(1, 0), true},
      {"1x1 grouped", {2, 4, 3, 3}, {6, 2, 1, 1}, params(1, 0, 1, 2), true},
      {"1x1 stride 2", {1, 3, 5, 5}, {2, 3, 1, 1}, params(2, 0), true},
      {"asymmetric 2x3 kernel", {2, 2, 6, 5}, {3, 2, 2, 3}, asym, true},
      {"kernel as large as input", {2, 2, 3, 3}, {2, 2, 3, 3}, params(1, 0), true},
  };
  for (const auto& c : cases) {
    INFO("conv2d " << c.name);
    Tensor x = leaf(urand(c.x, g)), w = leaf(urand(c.w, g));
    Tensor b = c.bias ? leaf(urand({c.w[0]}, g)) : Tensor();
    Conv2dParams p = c.p;
    if (c.bias) {
      MINIMA_GRADCHECK([p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], p); }, {x, w, b});
    } else {
      MINIMA_GRADCHECK([p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), p); }, {x, w});
    }
  }
  // Non-contiguous input and weight, and only the weight requiring grad.
  Tensor xt = transposed_leaf(urand({2, 3, 5, 5}, g), 2, 3);
  Tensor ws = strided_leaf(urand({2, 3, 3, 3}, g), 0);
  Conv2dParams p = params(1, 1);
  MINIMA_GRADCHECK([p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), p); }, {xt, ws});
  Tensor xc = urand({2, 3, 5, 5}, g);
  MINIMA_GRADCHECK([p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), p); }, {xc, ws});
}

TEST_CASE("gradcheck: conv2d over a batch larger than the thread count") {
  // Enough images that the CPU kernels split the batch across threads (per-thread partial sums
  // of the weight gradient).
  Generator g(301);
  Tensor x = leaf(urand({9, 2, 4, 4}, g)), w = leaf(urand({3, 2, 3, 3}, g)), b = leaf(urand({3}, g));
  Conv2dParams p = params(1, 1);
  MINIMA_GRADCHECK([p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], p); }, {x, w, b});
}

TEST_CASE("gradcheck: max_pool2d (distinct values)") {
  Generator g(302);
  struct C {
    Shape x;
    int64_t k, s, p;
  };
  for (auto c : std::vector<C>{{{2, 3, 6, 6}, 2, 2, 0},
                               {{2, 2, 7, 5}, 3, 2, 1},
                               {{1, 2, 5, 5}, 3, 1, 1},
                               {{1, 3, 5, 7}, 2, 1, 0},
                               {{2, 1, 4, 4}, 4, 4, 2}}) {
    INFO("max_pool2d " << shape_str(c.x) << " k " << c.k << " s " << c.s << " p " << c.p);
    Tensor x = leaf(distinct(c.x, g));
    MINIMA_GRADCHECK([c](const std::vector<Tensor>& in) { return max_pool2d(in[0], c.k, c.s, c.p); }, {x});
  }
  Tensor xt = transposed_leaf(distinct({2, 2, 6, 5}, g), 2, 3);
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 2, 1); }, {xt});
}

TEST_CASE("gradcheck: avg_pool2d with padding and count_include_pad") {
  Generator g(303);
  struct C {
    Shape x;
    int64_t k, s, p;
  };
  for (auto c : std::vector<C>{{{2, 3, 6, 6}, 2, 2, 0},
                               {{2, 2, 7, 5}, 3, 2, 1},
                               {{1, 2, 5, 5}, 3, 1, 1},
                               {{1, 1, 6, 7}, 4, 3, 2}}) {
    for (bool include : {true, false}) {
      INFO("avg_pool2d " << shape_str(c.x) << " k " << c.k << " s " << c.s << " p " << c.p << " include " << include);
      Tensor x = leaf(urand(c.x, g));
      MINIMA_GRADCHECK([c,
                        include](const std::vector<Tensor>& in) { return avg_pool2d(in[0], c.k, c.s, c.p, include); },
                       {x});
    }
  }
  Tensor xs = strided_leaf(urand({2, 2, 5, 6}, g), 1);
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, 2, 1, false); }, {xs});
}

TEST_CASE("gradcheck: adaptive_avg_pool2d with sizes that do not divide") {
  Generator g(304);
  struct C {
    Shape x;
    int64_t oh, ow;
  };
  for (auto c : std::vector<C>{{{2, 3, 7, 5}, 3, 2},
                               {{1, 2, 5, 5}, 5, 5},
                               {{2, 2, 4, 6}, 3, 4},
                               {{1, 2, 3, 3}, 1, 1},
                               {{1, 1, 3, 2}, 5, 4}}) {
    INFO("adaptive_avg_pool2d " << shape_str(c.x) << " -> " << c.oh << "x" << c.ow);
    Tensor x = leaf(urand(c.x, g));
    MINIMA_GRADCHECK([c](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], c.oh, c.ow); }, {x});
  }
}

TEST_CASE("gradcheck: batch_norm in training mode") {
  Generator g(305);
  for (Shape s : {Shape{4, 3, 3, 2}, Shape{6, 4}, Shape{1, 2, 3, 3}, Shape{3, 2, 1, 1}}) {
    INFO("batch_norm train " << shape_str(s));
    int64_t C = s[1];
    Tensor x = leaf(urand(s, g, -2, 2));
    Tensor w = leaf(urand({C}, g, 0.5, 1.5)), b = leaf(urand({C}, g));
    Tensor rm = zeros({C}, f64()), rv = ones({C}, f64());
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true); },
                     {x, w, b});
    // No affine parameters, no running stats.
    MINIMA_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
        {x});
    // Only the weight (no bias), and only the bias.
    MINIMA_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], Tensor(), Tensor(), Tensor(), true); },
        {x, w});
    MINIMA_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), in[1], Tensor(), Tensor(), true); },
        {x, b});
  }
  // A non-contiguous input and parameters that do not require grad.
  Tensor xt = transposed_leaf(urand({3, 2, 4, 3}, g), 0, 3);
  Tensor w = urand({2}, g, 0.5, 1.5), b = urand({2}, g);
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return batch_norm(in[0], w, b, Tensor(), Tensor(), true); },
                   {xt});
}

TEST_CASE("gradcheck: batch_norm in evaluation mode") {
  Generator g(306);
  for (Shape s : {Shape{4, 3, 3, 2}, Shape{5, 3}}) {
    INFO("batch_norm eval " << shape_str(s));
    Tensor x = leaf(urand(s, g, -2, 2));
    Tensor w = leaf(urand({3}, g, 0.5, 1.5)), b = leaf(urand({3}, g));
    Tensor rm = urand({3}, g), rv = urand({3}, g, 0.5, 2.0);
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); },
                     {x, w, b});
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return batch_norm(in[0], w, b, rm, rv, false); }, {x});
    MINIMA_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), rm, rv, false); }, {x});
  }
}

TEST_CASE("gradcheck: log_softmax and softmax along each dim") {
  Generator g(307);
  for (Tensor x : {leaf(urand({3, 4, 5}, g, -3, 3)), transposed_leaf(urand({3, 4, 5}, g, -3, 3), 0, 2),
                   strided_leaf(urand({3, 4, 5}, g, -3, 3), 1)}) {
    for (int64_t d : {0, 1, 2, -1}) {
      INFO("dim " << d << " on " << x.str());
      MINIMA_GRADCHECK([d](const std::vector<Tensor>& in) { return log_softmax(in[0], d); }, {x});
      MINIMA_GRADCHECK([d](const std::vector<Tensor>& in) { return softmax(in[0], d); }, {x});
    }
  }
  Tensor one = leaf(urand({4, 1}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return log_softmax(in[0], 1); }, {one});
  // Large logits: the stable formulation keeps finite differences meaningful.
  Tensor big = leaf(urand({3, 6}, g, 200, 210));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return log_softmax(in[0], 1); }, {big});
}

TEST_CASE("gradcheck: losses") {
  Generator g(308);
  Tensor logits = leaf(urand({6, 5}, g, -3, 3));
  Tensor target = randint({6}, 5, g);
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], target); }, {logits});
  Tensor lt_ = transposed_leaf(urand({6, 5}, g, -3, 3));
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], target); }, {lt_});
  Tensor one = leaf(urand({1, 3}, g));
  Tensor t1 = full({1}, 2, TensorOptions(DType::i64));
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t1); }, {one});
  // nll_loss on arbitrary inputs (it is linear in them).
  Tensor lp = leaf(urand({6, 5}, g));
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return nll_loss(in[0], target); }, {lp});
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return nll_loss(log_softmax(in[0], 1), target); }, {lp});

  Tensor bx = leaf(urand({4, 3}, g, -4, 4)), by = urand({4, 3}, g, 0, 1);
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], by); }, {bx});
  Tensor byl = leaf(urand({4, 3}, g, 0, 1));  // the target is differentiable too
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], in[1]); },
                   {bx, byl});
  Tensor ma = leaf(urand({3, 4}, g)), mb = transposed_leaf(urand({3, 4}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); }, {ma, mb});
}
