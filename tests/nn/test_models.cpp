// tests/nn/test_models.cpp: Module naming and modes, layer behaviour, the paper's parameter counts
// and every network's output shape on 1x28x28 and 3x32x32 inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <set>

#include "core/gradcheck.h"
#include "core/ops.h"
#include "nn/init.h"
#include "nn/models.h"

using namespace minima;
using namespace minima::nn;

TEST_CASE("parameter counts of the paper's networks (3x32x32, 10 classes)") {
  Generator g(0);
  auto count = [&](const std::string& arch, const Shape& in = {3, 32, 32}, int64_t k = 10) {
    return make_model(arch, in, k, g)->num_parameters();
  };
  CHECK(count("vgg16") == 14728266);
  CHECK(count("resnet18") == 11173962);
  CHECK(count("resnet50") == 23520842);
  CHECK(count("densenet40") == 176122);
  // Zhang et al. (28x28x3 inputs)
  CHECK(count("mlp1x512", {3, 28, 28}) == 1209866);
  CHECK(count("mlp3x512", {3, 28, 28}) == 1735178);
  CHECK(count("inception-small", {3, 28, 28}) == 1649402);
  CHECK(count("alexnet-small", {3, 28, 28}) == 1387786);
  // 784-512-512-10
  CHECK(count("mlp", {1, 28, 28}) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10);
  // mlp-bn adds a weight and a bias per hidden unit (the running statistics are buffers).
  CHECK(count("mlp-bn", {1, 28, 28}) == count("mlp", {1, 28, 28}) + 2 * (512 + 512));
  // classes change only the head: resnet18 with 100 classes adds 90 * (512 + 1)
  CHECK(count("resnet18", {3, 32, 32}, 100) == 11173962 + 90 * 513);
}

// One test case per network so each stays short.
// Train mode on 1x28x28, eval mode (no graph) on 3x32x32; one test case per network so each stays short.
static void check_shapes(const std::string& arch) {
  for (Shape in : {Shape{1, 28, 28}, Shape{3, 32, 32}}) {
    CAPTURE(shape_str(in));
    bool training = in[0] == 1;
    Generator g(1);
    auto m = make_model(arch, in, 7, g);
    m->train(training);
    Shape xs = in;
    xs.insert(xs.begin(), 2);
    Tensor x = randn(xs, g);
    std::optional<NoGradGuard> ng;
    if (!training) ng.emplace();
    Tensor y = (*m)(x);
    CHECK(y.shape() == Shape{2, 7});
    CHECK(y.requires_grad() == training);
    for (float v : y.to_vector<float>()) CHECK(std::isfinite(v));
  }
}
TEST_CASE("output shapes: mlp, mlp-bn, mlp1x512, mlp3x512, smallcnn") {
  for (const char* a : {"mlp", "mlp-bn", "mlp1x512", "mlp3x512", "smallcnn"}) {
    CAPTURE(a);
    check_shapes(a);
  }
}
TEST_CASE("output shapes: vgg16") { check_shapes("vgg16"); }
TEST_CASE("output shapes: resnet18") { check_shapes("resnet18"); }
TEST_CASE("output shapes: resnet50") { check_shapes("resnet50"); }
TEST_CASE("output shapes: densenet40") { check_shapes("densenet40"); }
TEST_CASE("output shapes: inception-small, alexnet-small") {
  for (const char* a : {"inception-small", "alexnet-small"}) {
    CAPTURE(a);
    check_shapes(a);
  }
}
TEST_CASE("modules refuse to hold themselves, indices past their end and batch-norm settings out of range") {
  auto s = std::make_shared<Sequential>();
  s->add(std::make_shared<ReLU>());
  // A module inside itself made every walk over the tree recurse until the stack overflowed.
  CHECK_THROWS_WITH_AS(s->add(s), doctest::Contains("a module cannot hold itself"), Error);
  auto outer = std::make_shared<Sequential>();
  outer->add(s);
  CHECK_THROWS_WITH_AS(s->add(outer), doctest::Contains("a module cannot hold itself"), Error);
  CHECK(s->named_parameters().empty());  // the failed adds left the tree as it was
  CHECK_THROWS_WITH_AS((*s)[3], doctest::Contains("index 3 is out of range for 1 modules"), Error);
  CHECK_THROWS_WITH_AS(BatchNorm2d(4, -1e-5), doctest::Contains("eps must be finite and >= 0"), Error);
  CHECK_THROWS_WITH_AS(BatchNorm2d(4, 1e-5, NAN), doctest::Contains("momentum must be in [0, 1]"), Error);
  CHECK_THROWS_WITH_AS(BatchNorm1d(4, 1e-5, 1.5), doctest::Contains("momentum must be in [0, 1]"), Error);
}

TEST_CASE("make_model refuses inputs too small for an architecture, and its check changes nothing") {
  Generator g(2);
  CHECK_THROWS_WITH_AS(make_model("densenet40", {1, 1, 1}, 10, g),
                       "densenet40 cannot take inputs of shape [1, 1, 1]: avg_pool2d: input of shape [1, 48, 1, 1] is "
                       "too small for kernel 2",
                       InputShapeError);
  CHECK_THROWS_AS(make_model("smallcnn", {1, 3, 3}, 10, g), InputShapeError);
  CHECK_NOTHROW(make_model("smallcnn", {1, 4, 4}, 10, g));
  // The check runs one image through the new network in eval mode: a network built directly, from
  // the same seed, has bitwise the same parameters and batch-norm statistics, and both train.
  Generator g1(7), g2(7);
  const Shape in{3, 20, 20};  // a shape no other test builds, so the check runs here
  auto checked = make_model("resnet18", in, 10, g1);
  ResNet direct(ResNet::Block::Basic, {2, 2, 2, 2}, in, 10, g2);
  CHECK(checked->is_training());
  const NamedTensors a = checked->state_dict(), b = direct.state_dict();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.to(DType::f64).to_vector<double>() == b[i].second.to(DType::f64).to_vector<double>());
  }
}

TEST_CASE("model_names lists the issue's architectures") {
  CHECK(model_names() == std::vector<std::string>{"mlp", "mlp-bn", "mlp1x512", "mlp3x512", "smallcnn", "vgg16",
                                                  "resnet18", "resnet50", "densenet40", "inception-small",
                                                  "alexnet-small"});
}

TEST_CASE("state_dict keys follow PyTorch naming and order") {
  Generator g(0);
  auto r = make_model("resnet18", {3, 32, 32}, 10, g);
  auto sd = r->state_dict();
  std::vector<std::string> head;
  head.reserve(8);
  for (size_t i = 0; i < 8; ++i) head.push_back(sd[i].first);
  CHECK(head == std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                         "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
                                         "layer1.0.bn1.weight"});
  std::set<std::string> keys;
  for (auto& [k, t] : sd) keys.insert(k);
  CHECK(keys.count("layer2.0.shortcut.0.weight") == 1);  // projection when the stride changes
  CHECK(keys.count("layer2.0.shortcut.1.running_var") == 1);
  CHECK(keys.count("layer1.0.shortcut.0.weight") == 0);  // identity otherwise
  CHECK(keys.count("linear.bias") == 1);
  CHECK(sd.back().first == "linear.bias");
  // buffers are not parameters; num_batches_tracked is an int64 scalar
  for (auto& [k, t] : r->named_parameters()) CHECK(k.find("running") == std::string::npos);
  for (auto& [k, t] : sd)
    if (k.find("num_batches_tracked") != std::string::npos) {
      CHECK(t.dtype() == DType::i64);
      CHECK(t.dim() == 0);
    }
  auto v = make_model("vgg16", {3, 32, 32}, 10, g);
  auto vs = v->state_dict();
  CHECK(vs[0].first == "features.0.weight");
  CHECK(vs[1].first == "features.0.bias");
  CHECK(vs[2].first == "features.1.weight");
  CHECK(vs.back().first == "classifier.bias");
  auto d = make_model("densenet40", {3, 32, 32}, 10, g);
  auto ds = d->state_dict();
  CHECK(ds[0].first == "conv1.weight");
  CHECK(ds[1].first == "dense1.0.bn1.weight");
  CHECK(ds.back().first == "linear.bias");
}

TEST_CASE("train/eval propagate, BatchNorm updates running stats only in training") {
  Generator g(3);
  auto m = make_model("smallcnn", {1, 12, 12}, 3, g);
  CHECK(m->is_training());
  m->eval();
  for (auto& [n, c] : m->named_children()) CHECK_FALSE(c->is_training());
  auto find = [&](const std::string& key) {
    for (auto& [k, t] : m->state_dict())
      if (k == key) return t;
    FAIL("missing ", key);
    return Tensor();
  };
  Tensor rm = find("features.1.running_mean"), nbt = find("features.1.num_batches_tracked");
  Tensor x = randn({4, 1, 12, 12}, g);
  (*m)(x);
  CHECK(rm.to_vector<float>() == std::vector<float>(32, 0.0f));
  CHECK(nbt.item() == 0);
  m->train();
  (*m)(x);
  (*m)(x);
  CHECK(nbt.item() == 2);
  double s = 0;
  for (float v : rm.to_vector<float>()) s += std::abs(v);
  CHECK(s > 0);
}

TEST_CASE("default initialization matches PyTorch's bounds and BN defaults") {
  Generator g(5);
  Linear lin(300, 50, g);
  double bound = 1.0 / std::sqrt(300.0);
  auto w = lin.weight.to_vector<float>();
  float mx = 0;
  double sq = 0;
  for (float v : w) {
    mx = std::max(mx, std::abs(v));
    sq += double(v) * v;
  }
  CHECK(mx <= bound);
  CHECK(mx > 0.95 * bound);
  // U(-b, b) has variance b^2/3
  CHECK(sq / w.size() == doctest::Approx(bound * bound / 3).epsilon(0.05));
  Conv2d conv(4, 8, 3, g);
  double cb = 1.0 / std::sqrt(36.0);
  for (float v : conv.bias.to_vector<float>()) CHECK(std::abs(v) <= cb);
  BatchNorm2d bn(6);
  CHECK(bn.weight.to_vector<float>() == std::vector<float>(6, 1.0f));
  CHECK(bn.bias.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(bn.running_var.to_vector<float>() == std::vector<float>(6, 1.0f));
  // DenseNet convs: He-normal on fan_out; linear bias zero
  Generator g2(7);
  auto d = make_model("densenet40", {3, 32, 32}, 10, g2);
  for (auto& [k, t] : d->named_parameters()) {
    if (k == "dense2.3.conv2.weight") {  // 48 -> 12, 3x3: std sqrt(2 / (9 * 12))
      auto vals = t.to_vector<float>();
      double ss = 0;
      for (float v : vals) ss += double(v) * v;
      CHECK(std::sqrt(ss / vals.size()) == doctest::Approx(std::sqrt(2.0 / 108.0)).epsilon(0.05));
    }
    if (k == "linear.bias") CHECK(t.to_vector<float>() == std::vector<float>(10, 0.0f));
  }
}

TEST_CASE("same seed, same weights, different seed, different weights") {
  Generator a(11), b(11), c(12);
  auto ma = make_model("mlp", {1, 8, 8}, 10, a), mb = make_model("mlp", {1, 8, 8}, 10, b),
       mc = make_model("mlp", {1, 8, 8}, 10, c);
  auto pa = ma->parameters(), pb = mb->parameters(), pc = mc->parameters();
  CHECK(pa[0].to_vector<float>() == pb[0].to_vector<float>());
  CHECK(pa[0].to_vector<float>() != pc[0].to_vector<float>());
}

TEST_CASE("zero_grad, num_parameters, backward reaches every parameter") {
  Generator g(2);
  auto m = make_model("resnet18", {1, 8, 8}, 4, g);
  Tensor x = randn({2, 1, 8, 8}, g);
  Tensor y = from_vector<int64_t>({1, 3}, {2}, DType::i64);
  cross_entropy((*m)(x), y).backward();
  for (auto& [name, p] : m->named_parameters()) {
    const std::string& k = name;  // CAPTURE's lambda may not capture a structured binding in C++17
    CAPTURE(k);
    REQUIRE(p.grad().defined());
    CHECK(p.grad().shape() == p.shape());
  }
  m->zero_grad();
  for (auto& [name, p] : m->named_parameters()) {
    const std::string& k = name;  // CAPTURE's lambda may not capture a structured binding in C++17
    CAPTURE(k);
    CHECK(sum(abs(p.grad())).item() == 0.0);
  }
}

TEST_CASE("errors name the layer and the shapes") {
  Generator g(0);
  Linear lin(5, 3, g);
  CHECK_THROWS_WITH_AS(lin(zeros({2, 4})), doctest::Contains("Linear(5, 3)"), Error);
  Conv2d conv(3, 4, 3, g);
  CHECK_THROWS_WITH_AS(conv(zeros({2, 1, 8, 8})), doctest::Contains("[2, 1, 8, 8]"), Error);
  CHECK_THROWS_WITH_AS(make_model("alexnet", {3, 32, 32}, 10, g), doctest::Contains("resnet18"), Error);
}

TEST_CASE("vgg16 works on 28x28 (fifth pool becomes identity) and the head is sized from the input") {
  Generator g(0);
  auto v = make_model("vgg16", {1, 28, 28}, 10, g);
  auto vs = v->state_dict();
  CHECK(vs.back().second.shape() == Shape{10});
  for (auto& [k, t] : vs)
    if (k == "classifier.weight") CHECK(t.shape() == Shape{10, 512});
  auto s = make_model("smallcnn", {1, 28, 28}, 10, g);
  for (auto& [k, t] : s->state_dict())
    if (k == "classifier.1.weight") CHECK(t.shape() == Shape{256, 3136});
}

TEST_CASE("LocalResponseNorm equals its formula, edges included, and has exact gradients") {
  Generator g(7);
  for (int64_t size : {1, 4, 5, 9}) {
    CAPTURE(size);
    const int64_t N = 2, C = 6, H = 3, W = 2;
    Tensor x = randn({N, C, H, W}, g, DType::f64) * 3.0;
    LocalResponseNorm lrn(size, 0.01, 0.75, 2.0);
    auto y = lrn(x).to_vector<double>();
    auto xv = x.to_vector<double>();
    auto at = [&](int64_t n, int64_t c, int64_t h, int64_t w) { return xv[size_t(((n * C + c) * H + h) * W + w)]; };
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            double s = 0;  // channels c - size/2 .. c + (size-1)/2 that exist
            for (int64_t j = c - size / 2; j <= c + (size - 1) / 2; ++j)
              if (j >= 0 && j < C) s += at(n, j, h, w) * at(n, j, h, w);
            double want = at(n, c, h, w) / std::pow(2.0 + 0.01 / double(size) * s, 0.75);
            CHECK(y[size_t(((n * C + c) * H + h) * W + w)] == doctest::Approx(want).epsilon(1e-12));
          }
    Tensor leaf = x.detach().requires_grad_();
    auto r = minima::testing::gradcheck([&](const std::vector<Tensor>& in) { return lrn(in[0]); }, {leaf});
    INFO(r.message);
    CHECK(r.ok);
  }
  {  // bfloat16 input: computed in float32 and rounded once, so within bfloat16's unit roundoff (2^-8)
    Tensor x = randn({2, 8, 3, 3}, g) * 2.0;
    LocalResponseNorm lrn(5, 0.01, 0.75, 1.0);
    Tensor yb = lrn(x.to(DType::bf16));
    CHECK(yb.dtype() == DType::bf16);
    auto got = yb.to(DType::f32).to_vector<float>(), want = lrn(x.to(DType::bf16).to(DType::f32)).to_vector<float>();
    for (size_t i = 0; i < got.size(); ++i)
      CHECK(std::abs(got[i] - want[i]) <= std::abs(want[i]) * (1.0 / 256) * 1.001);
  }
  CHECK_THROWS_WITH_AS(LocalResponseNorm(0), doctest::Contains("size must be at least 1"), Error);
  LocalResponseNorm lrn(5);
  CHECK_THROWS_WITH_AS(lrn(zeros({4, 3})), doctest::Contains("expected [N, C, ...]"), Error);
}
