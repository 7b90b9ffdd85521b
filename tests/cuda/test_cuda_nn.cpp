// tests/cuda/test_cuda_nn.cpp: pooling, batch norm, log_softmax / cross entropy, the indexing ops
// (and the accumulating kernels behind their gradients), Philox random fills (bitwise equal to
// the CPU), the fused optimizer updates, deterministic mode, and one small training step, each
// against the CPU backend.
#include <algorithm>
#include <functional>
#include <limits>
#include <random>

#include "kernels/cuda/bn_plan.h"
#include "nn/models.h"
#include "tests/cuda/cuda_test_util.h"

using namespace minima;
using namespace cudatest;

// Runs on any machine: the persistent batch-norm kernel's rounds and chunks (host arithmetic).
TEST_CASE("persistent batch norm plan: chunks fit a stage, cover every channel, and use at most the resident blocks") {
  // A worked case: 256x64x64x64 float32 on 264 blocks (2 per SM of an H200). A block's share of
  // the SM's 233,472 bytes, less the 1,024 the system reserves per block and its 512 bytes of static
  // arrays, is 115,200 bytes: two stages of 14,400 values in the forward, of 7,200 per input in the
  // backward. Forward: at least 73 chunks per channel, 4,672 chunks in 18 rounds of 264. Backward:
  // 146 chunks per channel in 36 rounds.
  cuda::BnPlan p;
  REQUIRE(cuda::plan_bn_persistent(256 * 64 * 64, 64, 264, 512, 14400, 4, p));
  CHECK(p.P == 73);
  CHECK(p.chunk == 14368);
  CHECK(p.B == 264);
  CHECK(p.rounds == 18);
  REQUIRE(cuda::plan_bn_persistent(256 * 64 * 64, 64, 264, 512, 7200, 4, p));
  CHECK(p.P == 146);
  CHECK(p.chunk == 7184);
  CHECK(p.rounds == 36);
  // All chunks fit in one round: spread over the idle blocks, one pack per thread at least.
  REQUIRE(cuda::plan_bn_persistent(8 * 64, 6, 264, 512, 14400, 4, p));
  CHECK(p.P == 1);  // 512 values: a pack for each of 128 threads only
  CHECK(p.B == 6);
  REQUIRE(cuda::plan_bn_persistent(64 * 32 * 32, 4, 264, 128, 14400, 4, p));
  CHECK(p.P == 66);  // 264 / 4 blocks per channel, chunks of 996 values >= 128 threads x 4
  CHECK(p.B == 264);
  CHECK(p.rounds == 1);
  // A channel larger than all the blocks' stages together does not fit.
  CHECK_FALSE(cuda::plan_bn_persistent(264 * 14400 + 1, 8, 264, 512, 14400, 4, p));
  CHECK(cuda::plan_bn_persistent(264 * 14400, 8, 264, 512, 14400, 4, p));
  CHECK_FALSE(cuda::plan_bn_persistent(100, 8, 264, 512, 14402, 4, p));  // a stage of whole packs only

  std::mt19937_64 rng(2024);
  int planned = 0;
  for (int i = 0; i < 20000; ++i) {
    const int64_t V = int64_t(1) << (rng() % 4);  // 1, 2, 4, 8 values per pack
    const int64_t blocks = 1 + int64_t(rng() % 600), threads = 32 << (rng() % 6);
    const int64_t stage = V * (1 + int64_t(rng() % 4000));
    const int64_t M = V * (1 + int64_t(rng() % 300000)), C = 1 + int64_t(rng() % 3000);
    INFO("M ", M, " C ", C, " blocks ", blocks, " threads ", threads, " stage ", stage, " V ", V);
    const bool fits = (M + stage - 1) / stage <= blocks;
    REQUIRE(cuda::plan_bn_persistent(M, C, blocks, threads, stage, V, p) == fits);
    if (!fits) continue;
    ++planned;
    REQUIRE(p.chunk % V == 0);
    REQUIRE(p.chunk > 0);
    REQUIRE(p.chunk <= stage);
    REQUIRE((p.P - 1) * p.chunk < M);  // every chunk holds values
    REQUIRE(p.P * p.chunk >= M);       // and together all of them
    REQUIRE(p.P <= p.B);               // a channel spans at most two rounds
    REQUIRE(p.B <= blocks);            // a cooperative launch needs them all resident
    REQUIRE(p.B <= C * p.P);
    REQUIRE(p.rounds * p.B >= C * p.P);
    REQUIRE((p.rounds - 1) * p.B < C * p.P);
    // A channel is split further than its stage requires only in a single round, and only into as
    // many chunks as give each thread a pack: never more than ceil(M / (threads * V)).
    const int64_t min_parts = (M + stage - 1) / stage;
    if (p.P > min_parts) {
      REQUIRE(p.rounds == 1);
      REQUIRE(p.P <= (M + threads * V - 1) / (threads * V));
    }
  }
  CHECK(planned > 10000);

  // The kernels' own partition (bn_chunk_of): over all rounds, the blocks' chunks hold every value
  // of every channel exactly once; each channel is held by exactly P chunks (the count its blocks
  // wait for) in one round or two consecutive ones (the deadlock argument in batchnorm.cu); and
  // every block has a chunk in every round but the last.
  for (int i = 0; i < 300; ++i) {
    const int64_t V = int64_t(1) << (rng() % 4), blocks = 1 + int64_t(rng() % 200);
    const int64_t M = V * (1 + int64_t(rng() % 600)), C = 1 + int64_t(rng() % 200);
    const int64_t stage = V * (1 + int64_t(rng() % 300));
    INFO("M ", M, " C ", C, " blocks ", blocks, " stage ", stage, " V ", V);
    if (!cuda::plan_bn_persistent(M, C, blocks, 64, stage, V, p)) continue;
    std::vector<int> held(size_t(C * M), 0), holders(size_t(C), 0), first_round(size_t(C), -1);
    for (int64_t r = 0; r <= p.rounds; ++r)    // one round past the last: nothing
      for (int64_t b = 0; b < p.B + 1; ++b) {  // one block past the grid: nothing
        const cuda::BnChunk k = cuda::bn_chunk_of(p, M, C, b, r);
        if (k.c < 0) {
          REQUIRE((r >= p.rounds - 1 || b == p.B));
          continue;
        }
        REQUIRE(r < p.rounds);
        REQUIRE(b < p.B);
        REQUIRE(k.c < C);
        REQUIRE(k.len > 0);
        REQUIRE(k.len <= stage);
        REQUIRE(k.len % V == 0);
        REQUIRE(k.j0 % V == 0);
        ++holders[size_t(k.c)];
        if (first_round[size_t(k.c)] == -1) first_round[size_t(k.c)] = int(r);
        REQUIRE(r - first_round[size_t(k.c)] <= 1);
        for (int64_t j = k.j0; j < k.j0 + k.len; ++j) ++held[size_t(k.c * M + j)];
      }
    CHECK(std::all_of(held.begin(), held.end(), [](int h) { return h == 1; }));
    CHECK(std::all_of(holders.begin(), holders.end(), [&](int h) { return h == p.P; }));
  }
}

#ifdef MINIMA_HAS_CUDA

CUDA_TEST_CASE("cuda pooling matches the CPU: max, avg (with and without padding), adaptive") {
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    Tensor x = rnd({2, 3, 11, 9}, 111, t);
    struct P {
      int64_t k, s, pad;
    };
    for (P p : {P{2, 2, 0}, P{3, 2, 1}, P{3, 1, 1}, P{2, 3, 1}, P{1, 1, 0}}) {
      std::string w = str(dtype_name(t), " k", p.k, " s", p.s, " p", p.pad);
      check_graph("max_pool2d " + w, {x}, tol(t),
                  [&](const std::vector<Tensor>& v) { return max_pool2d(v[0], p.k, p.s, p.pad); });
      check_graph("avg_pool2d " + w, {x}, tol(t),
                  [&](const std::vector<Tensor>& v) { return avg_pool2d(v[0], p.k, p.s, p.pad, true); });
      check_graph("avg_pool2d (count_include_pad off) " + w, {x}, tol(t),
                  [&](const std::vector<Tensor>& v) { return avg_pool2d(v[0], p.k, p.s, p.pad, false); });
    }
    for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 4}, {5, 3}, {11, 9}, {7, 2}}) {
      const int64_t oh = hw.first, ow = hw.second;  // (a lambda may not capture a structured binding in C++17)
      check_graph(str("adaptive_avg_pool2d ", dtype_name(t), " -> ", oh, "x", ow), {x}, tol(t),
                  [&](const std::vector<Tensor>& v) { return adaptive_avg_pool2d(v[0], oh, ow); });
    }
  }
  // Max pooling's recorded winners equal the CPU's (ties: the first; NaN: the NaN).
  Tensor ties = mul(rnd({2, 2, 8, 8}, 112), 1.2).to(DType::i64).to(DType::f32);
  check_graph("max_pool2d with ties", {ties}, tol(DType::f32),
              [](const std::vector<Tensor>& v) { return max_pool2d(v[0], 3, 2, 1); });
}

// Batch norm on one shape and dtype against the CPU: training with running statistics, training
// without affine parameters, evaluation (through autograd and the fused no-grad path).
static void check_batch_norm(const Shape& s, DType t) {
  int64_t C = s[1];
  Tensor x = add(mul(rnd(s, 113, t), 3.0), 10.0);  // mean far from 0
  Tensor w = rnd({C}, 114, t), b = rnd({C}, 115, t);
  Tensor rm_c = rnd({C}, 116, t), rv_c = rnd_pos({C}, 117, t);
  Tensor rm_g = rm_c.to(kGpu), rv_g = rv_c.to(kGpu);
  check_graph(str("batch_norm train ", dtype_name(t), " ", s), {x, w, b},
              {tol(t), true, t == DType::f32 ? 1e-4 : tol(t)}, [&](const std::vector<Tensor>& v) {
                bool cpu = v[0].device().is_cpu();
                return batch_norm(v[0], v[1], v[2], cpu ? rm_c : rm_g, cpu ? rv_c : rv_g, true, 0.1, 1e-5);
              });
  expect_close(rm_g.cpu(), rm_c, tol(t), "running mean");
  expect_close(rv_g.cpu(), rv_c, tol(t), "running var");
  check_graph(str("batch_norm train without affine ", dtype_name(t), " ", s), {x},
              {tol(t), true, t == DType::f32 ? 1e-4 : tol(t)}, [&](const std::vector<Tensor>& v) {
                return batch_norm(v[0], Tensor(), Tensor(), Tensor(), Tensor(), true);
              });
  check_graph(str("batch_norm eval ", dtype_name(t), " ", s), {x, w, b}, tol(t), [&](const std::vector<Tensor>& v) {
    bool cpu = v[0].device().is_cpu();
    return batch_norm(v[0], v[1], v[2], cpu ? rm_c : rm_g, cpu ? rv_c : rv_g, false);
  });
  NoGradGuard ng;  // evaluation without autograd: the fused kernel
  expect_close(batch_norm(x.to(kGpu), w.to(kGpu), b.to(kGpu), rm_g, rv_g, false).cpu(),
               batch_norm(x, w, b, rm_c, rv_c, false), tol(t), "batch_norm eval (fused)");
}

CUDA_TEST_CASE("cuda batch_norm: training (running stats) and evaluation, with gradients") {
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    // Planes of 64 values take the 16-byte statistics and normalize kernels (of 4: float32 and
    // float64 only, a bfloat16 pack holds 8); planes of 35, 1023 and 1 the scalar ones. 32x8x32x32
    // splits each channel's statistics over 16 blocks; 26x3x16x16 over 3, whose 6,656 values give
    // chunks of 2,224 (2,219 rounded up to whole packs) and a shorter last one.
    for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{16, 5}, Shape{2, 64, 33, 31}, Shape{64, 3, 1, 1}, Shape{8, 6, 8, 8},
                           Shape{5, 4, 2, 2}, Shape{32, 8, 32, 32}, Shape{26, 3, 16, 16}})
      check_batch_norm(s, t);
  }
}

CUDA_TEST_CASE("cuda batch_norm, persistent kernel (--bn persistent): matches the CPU in one or several rounds") {
  cuda::ConfigGuard guard;
  cuda::set_bn_impl("persistent");
  // Each direction must have run persistent exactly where it can, with the pipeline depth asked
  // for: planes of whole packs, and channels that the device's resident blocks hold. Every shape
  // below fits on an H200 or an H100, and all but the benchmark's (`device_sized`) on any device
  // that can run the path at all; on a device of fewer SMs, or a MIG slice, the benchmark's
  // channels take the passes, and the test says so.
  auto check = [](const Shape& s, DType t, int stages, bool device_sized = false) {
    const int64_t pack = 16 / int64_t(dtype_size(t));
    const cuda::BnPersistentStats before = cuda::batch_norm_persistent_stats();
    check_batch_norm(s, t);
    const cuda::BnPersistentStats after = cuda::batch_norm_persistent_stats();
    const bool whole_packs = (s[2] * s[3]) % pack == 0;
    const int64_t M = s[0] * s[2] * s[3];
    const bool forward = whole_packs && cuda::batch_norm_persistent_fits(M, s[1], t, false);
    const bool backward = whole_packs && cuda::batch_norm_persistent_fits(M, s[1], t, true);
    INFO(str(dtype_name(t), " ", s, ", ", stages, " stages: persistent expected forward ", forward, ", backward ",
             backward));
    if (!device_sized) {  // no fit may excuse these shapes
      CHECK(forward == whole_packs);
      CHECK(backward == whole_packs);
    }
    CHECK((after.forward_calls > before.forward_calls) == forward);
    CHECK((after.backward_calls > before.backward_calls) == backward);
    if (forward || backward) CHECK(after.stages == stages);
    if (whole_packs && !(forward && backward))
      MESSAGE(dtype_name(t), " ", s, ", ", stages, " stages: a channel is too long for this device's resident blocks ",
              forward    ? "backward"
              : backward ? "forward"
                         : "both ways",
              "; the passes ran it");
    return after;
  };
  for (int stages : {3, 2}) {
    cuda::set_bn_stages(stages);
    for (DType t : {DType::f32, DType::bf16, DType::f64}) {
      // One round with one chunk per channel (8x6x8x8); one channel (16x1x32x32); more channels
      // than resident blocks, so several rounds of one chunk each (2x300x4x4); channels of several
      // chunks each, in several rounds, with channels across two rounds, a short last round and a
      // short last chunk (64x64x32x32; in bfloat16 the backward only, so 128x64x32x32 adds a
      // forward across rounds); planes that do not hold whole packs fall back to the passes
      // (planes of 35; planes of 4 in bfloat16).
      for (const Shape& s : {Shape{8, 6, 8, 8}, Shape{16, 1, 32, 32}, Shape{2, 300, 4, 4}, Shape{64, 64, 32, 32},
                             Shape{4, 3, 5, 7}, Shape{5, 4, 2, 2}})
        check(s, t, stages);
    }
    check(Shape{128, 64, 32, 32}, DType::bf16, stages);
    // The benchmark's channel size (256x64x64). On an H200 (264 blocks), with two stages the
    // forward of 3 channels is one round and of 4 channels two, with the last channel across them,
    // and the backward of 3 channels two rounds with the middle channel across them; with three
    // stages (smaller chunks) the forwards take two rounds and the backwards three and four.
    for (const Shape& s : {Shape{256, 3, 64, 64}, Shape{256, 4, 64, 64}}) {
      const cuda::BnPersistentStats st = check(s, DType::f32, stages, true);
      MESSAGE(s, ", ", stages, " stages: forward ", st.forward.P, " chunks per channel in ", st.forward.rounds,
              " round(s) of ", st.forward.B, " blocks; backward ", st.backward.P, " in ", st.backward.rounds, " of ",
              st.backward.B, "; ", st.per_sm, " blocks per SM");
    }
    // Deterministic: the same chunks, summed in the same order, every run.
    Tensor x = rnd({32, 16, 16, 16}, 118), gy = rnd({32, 16, 16, 16}, 119);
    Tensor w = rnd({16}, 120).to(kGpu), b = rnd({16}, 121).to(kGpu);
    std::vector<Tensor> runs[2];
    for (auto& out : runs) {
      Tensor xg = x.to(kGpu).requires_grad_(true), wg = w.detach().requires_grad_(true);
      Tensor y = batch_norm(xg, wg, b, Tensor(), Tensor(), true);
      y.backward(gy.to(kGpu));
      out = {y.detach().cpu(), xg.grad().cpu(), wg.grad().cpu()};
    }
    for (size_t i = 0; i < runs[0].size(); ++i)
      expect_equal(runs[1][i], runs[0][i], str("persistent run ", i, ", ", stages, " stages"));
    // In place (y = x, then gx = gy), which batchnorm.cu's comment calls safe: bitwise the values
    // of the out-of-place calls, over several rounds with channels across two of them.
    Backend& be = backend_for(kGpu);
    const Shape s{64, 64, 32, 32};
    const TensorOptions o(DType::f32, kGpu);
    const Tensor xs = rnd(s, 132).to(kGpu), gys = rnd(s, 133).to(kGpu);
    Tensor y = empty(s, o), mean = empty({64}, o), invstd = empty({64}, o);
    be.batch_norm_forward_train(y, mean, invstd, xs, Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5);
    Tensor in_place = xs.clone(), mean2 = empty({64}, o), invstd2 = empty({64}, o);
    be.batch_norm_forward_train(in_place, mean2, invstd2, in_place, Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5);
    expect_equal(in_place.cpu(), y.cpu(), str("in-place forward, ", stages, " stages"));
    expect_equal(mean2.cpu(), mean.cpu(), str("in-place forward's mean, ", stages, " stages"));
    Tensor gx = empty(s, o), gy_in_place = gys.clone();
    be.batch_norm_backward(gx, Tensor(), Tensor(), gys, xs, Tensor(), mean, invstd);
    be.batch_norm_backward(gy_in_place, Tensor(), Tensor(), gy_in_place, xs, Tensor(), mean, invstd);
    expect_equal(gy_in_place.cpu(), gx.cpu(), str("in-place backward, ", stages, " stages"));
    // The saved statistics themselves against the CPU's (the graph checks see them only through
    // the gradients).
    const TensorOptions oc(DType::f32);
    Tensor yc = empty(s, oc), mean_c = empty({64}, oc), invstd_c = empty({64}, oc);
    cpu_backend().batch_norm_forward_train(yc, mean_c, invstd_c, xs.cpu(), Tensor(), Tensor(), Tensor(), Tensor(), 0.1,
                                           1e-5);
    expect_close(mean.cpu(), mean_c, 1e-5, str("saved mean, ", stages, " stages"));
    expect_close(invstd.cpu(), invstd_c, 1e-5, str("saved invstd, ", stages, " stages"));
    // A contiguous input 4 bytes past a 16-byte boundary (a view at an odd offset) cannot take the
    // 16-byte copies: the passes' scalar kernels run it, with the CPU's values.
    const int64_t n = numel_of(s);
    const Tensor shifted = rnd({n + 1}, 134).to(kGpu).narrow(0, 1, n).view(s);
    const cuda::BnPersistentStats before = cuda::batch_norm_persistent_stats();
    Tensor ys = empty(s, o), mean_s = empty({64}, o), invstd_s = empty({64}, o), gxs = empty(s, o);
    be.batch_norm_forward_train(ys, mean_s, invstd_s, shifted, Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5);
    be.batch_norm_backward(gxs, Tensor(), Tensor(), gys, shifted, Tensor(), mean_s, invstd_s);
    const cuda::BnPersistentStats after = cuda::batch_norm_persistent_stats();
    CHECK(after.forward_calls == before.forward_calls);
    CHECK(after.backward_calls == before.backward_calls);
    cpu_backend().batch_norm_forward_train(yc, mean_c, invstd_c, shifted.cpu(), Tensor(), Tensor(), Tensor(), Tensor(),
                                           0.1, 1e-5);
    Tensor gxc = empty(s, oc);
    cpu_backend().batch_norm_backward(gxc, Tensor(), Tensor(), gys.cpu(), shifted.cpu(), Tensor(), mean_c, invstd_c);
    expect_close(ys.cpu(), yc, 2e-5, "batch_norm forward of a view at an odd offset");
    expect_close(gxs.cpu(), gxc, 1e-4, "batch_norm backward of a view at an odd offset");
  }
}

CUDA_TEST_CASE(
    "cuda batch_norm, persistent kernel (--bn persistent): channels too long for its blocks take the passes") {
  cuda::ConfigGuard guard;
  cuda::set_bn_impl("persistent");
  // A channel too long for every resident block's stages together (8,388,608 values; an H200
  // holds at most 264 x 14,400 float32 values at once) takes the passes both ways. Float64
  // channels of 1,048,576 values fit forward but not backward on an H200 (the backward streams two
  // inputs, so its chunks are half as long), and each direction then chooses for itself. The
  // values match the CPU's either way.
  for (const Shape& s : {Shape{2048, 1, 64, 64}, Shape{256, 2, 64, 64}}) {
    const DType t = s[0] == 2048 ? DType::f32 : DType::f64;
    const cuda::BnPersistentStats before = cuda::batch_norm_persistent_stats();
    check_batch_norm(s, t);
    const cuda::BnPersistentStats after = cuda::batch_norm_persistent_stats();
    if (t == DType::f32) {
      CHECK(after.forward_calls == before.forward_calls);
      CHECK(after.backward_calls == before.backward_calls);
    }
    MESSAGE(dtype_name(t), " ", s, ": persistent forwards ", after.forward_calls - before.forward_calls, ", backwards ",
            after.backward_calls - before.backward_calls);
  }
}

CUDA_TEST_CASE("cuda batch_norm, persistent kernel: whole channels per chunk, in one round and in several") {
  // Small enough for compute-sanitizer's racecheck and synccheck (scripts/gpu-check.sh): each
  // channel is one chunk, so no block waits for another's sums, and 2x300x4x4 (more channels than
  // resident blocks) reuses every pipeline stage over several rounds.
  cuda::ConfigGuard guard;
  cuda::set_bn_impl("persistent");
  for (int stages : {3, 2}) {
    cuda::set_bn_stages(stages);
    for (const Shape& s : {Shape{8, 6, 8, 8}, Shape{2, 300, 4, 4}}) {
      INFO(str(s, ", ", stages, " stages"));
      const cuda::BnPersistentStats before = cuda::batch_norm_persistent_stats();
      check_batch_norm(s, DType::f32);
      const cuda::BnPersistentStats after = cuda::batch_norm_persistent_stats();
      CHECK(after.forward_calls > before.forward_calls);
      CHECK(after.backward_calls > before.backward_calls);
      CHECK(after.forward.P == 1);
      CHECK(after.backward.P == 1);
    }
  }
}

CUDA_TEST_CASE("cuda log_softmax, softmax, cross_entropy and nll_loss, with gradients") {
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    for (const Shape& s : {Shape{7, 10}, Shape{3, 2000}, Shape{130, 1}, Shape{4, 5, 6}}) {
      Tensor x = mul(rnd(s, 121, t), 4.0);
      for (int64_t d = 0; d < int64_t(s.size()); ++d) {
        check_graph(str("log_softmax ", dtype_name(t), " ", s, " dim ", d), {x}, tol(t),
                    [&](const std::vector<Tensor>& v) { return log_softmax(v[0], d); });
        check_graph(str("log_softmax of a transposed view ", dtype_name(t), " ", s, " dim ", d), {x}, tol(t),
                    [&](const std::vector<Tensor>& v) { return log_softmax(v[0].transpose(0, -1), d); });
      }
      check_graph(str("softmax ", dtype_name(t), " ", s), {x}, tol(t),
                  [&](const std::vector<Tensor>& v) { return softmax(v[0], -1); });
    }
    for (int64_t C : {10, 100, 1500}) {
      Tensor logits = mul(rnd({33, C}, 122, t), 3.0);
      Tensor target = argmax(rnd({33, C}, 123), 1);
      check_graph(str("cross_entropy ", dtype_name(t), " C=", C), {logits, target}, tol(t),
                  [&](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1]); });
      check_graph(str("nll_loss ", dtype_name(t), " C=", C), {logits, target}, tol(t),
                  [&](const std::vector<Tensor>& v) { return nll_loss(log_softmax(v[0], 1), v[1]); });
    }
  }
  // Rows whose maximum dwarfs log(sum): both kernels (a row per group, and rows along a strided
  // dim) must give -log 2 to the tied maxima, as the CPU does.
  for (DType t : {DType::f32, DType::f64}) {
    Tensor big = from_vector<double>({1e30, 1.0, -1.0, 1e30, 3.0, 1e8, 1e8, 2.0}, {2, 4}, TensorOptions(t));
    for (int64_t d : {0, 1}) {
      Tensor b = d == 0 ? big.t().contiguous() : big;
      const std::vector<double> got = log_softmax(b.to(Device::cuda()), d).to(Device::cpu()).to_vector<double>();
      const std::vector<double> want = log_softmax(b, d).to_vector<double>();
      CAPTURE(dtype_name(t));
      CAPTURE(d);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));
      CHECK(want[0] == doctest::Approx(-std::log(2.0)).epsilon(1e-6));
    }
  }
  Tensor x = rnd({20, 10}, 124), y = mul(abs(rnd({20, 10}, 125)), 0.3);
  check_graph("binary_cross_entropy_with_logits", {x, y}, tol(DType::f32),
              [](const std::vector<Tensor>& v) { return binary_cross_entropy_with_logits(v[0], v[1]); });
  check_graph("mse_loss", {x, y}, tol(DType::f32), [](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1]); });
}

CUDA_TEST_CASE("cuda bad targets and indices raise the CPU backend's errors") {
  Tensor logits = rnd({4, 5}, 126).to(kGpu);
  Tensor bad = from_vector<int64_t>({0, 4, 5, 1}, {4}).to(kGpu);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, bad), doctest::Contains("target 5 at position 2 is out of range for 5"),
                       Error);
  Tensor good = from_vector<int64_t>({0, 4, 3, 1}, {4}).to(kGpu);
  CHECK_NOTHROW(cross_entropy(logits, good));  // the error state was cleared
  {
    // Trusted targets skip the read-back and give the same loss; the guard's end restores checks.
    TrustedTargetsGuard trusted;
    expect_close(cross_entropy(logits, good).cpu(), cross_entropy(logits.cpu(), good.cpu()), tol(DType::f32),
                 "trusted targets");
  }
  CHECK_THROWS_WITH_AS(cross_entropy(logits, bad), doctest::Contains("target 5 at position 2"), Error);
  Tensor x = rnd({6, 3}, 127).to(kGpu);
  Tensor idx = from_vector<int64_t>({1, -1, 2}, {3}).to(kGpu);
  CHECK_THROWS_WITH_AS(index_select(x, 0, idx), doctest::Contains("index -1 at position 1 is out of range for dim 0"),
                       Error);
  Tensor gidx = from_vector<int64_t>({0, 1, 2, 0, 7, 1}, {2, 3}).to(kGpu);
  CHECK_THROWS_WITH_AS(gather(x, 0, gidx), doctest::Contains("index 7 at position 4"), Error);
  CHECK_NOTHROW(index_select(x, 0, from_vector<int64_t>({5, 0}, {2}).to(kGpu)));
  // Several bad values: the GPU names the same (first) one as the CPU, whichever thread meets one first.
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Tensor many = from_vector<int64_t>({2, 9, 0, -1, 7, 1, 8, 3}, {8});
  Tensor xc = x.cpu();
  std::string want = message([&] { index_select(xc, 0, many); });
  CHECK(want.find("position 1") != std::string::npos);
  for (int rep = 0; rep < 5; ++rep) CHECK(message([&] { index_select(x, 0, many.to(kGpu)); }) == want);
  // The accumulating ops check the whole index first: a bad one leaves the output as it was.
  for (bool det : {false, true}) {
    cuda::ConfigGuard guard;
    cuda::set_deterministic(det);
    Tensor acc = rnd({6, 5}, 129).to(kGpu), before = acc.cpu();
    Tensor src = rnd({2, 5}, 130).to(kGpu);
    Tensor bad2 = from_vector<int64_t>({1, 9}, {2}).to(kGpu);
    CHECK_THROWS_WITH_AS(backend_for(kGpu).index_add(acc, 0, bad2, src),
                         doctest::Contains("index 9 at position 1 is out of range for dim 0 of size 6"), Error);
    expect_equal(acc.cpu(), before, "index_add output after a bad index");
    Tensor sidx = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 0, 1, 2, 3}, {2, 5}).to(kGpu);
    CHECK_THROWS_WITH_AS(backend_for(kGpu).scatter_add(acc, 1, sidx, src), doctest::Contains("index 5 at position 5"),
                         Error);
    expect_equal(acc.cpu(), before, "scatter_add output after a bad index");
  }
  // An empty result still checks its index.
  CHECK_THROWS_WITH_AS(index_select(zeros({0, 5}, TensorOptions(DType::f32, kGpu)), 1,
                                    from_vector<int64_t>({7}, {1}).to(kGpu)),
                       doctest::Contains("index 7 at position 0"), Error);
  Tensor many_t = from_vector<int64_t>({0, 4, 5, 1, 6, 2, 7, 3}, {8});
  Tensor lg = rnd({8, 5}, 128);
  want = message([&] { cross_entropy(lg, many_t); });
  CHECK(message([&] { cross_entropy(lg.to(kGpu), many_t.to(kGpu)); }) == want);
}

CUDA_TEST_CASE("cuda index_select / gather and their accumulating gradients (index_add, scatter_add)") {
  for (bool det : {false, true}) {
    cuda::ConfigGuard guard;
    cuda::set_deterministic(det);
    for (DType t : {DType::f32, DType::bf16, DType::f64}) {
      Tensor x = rnd({5, 7, 4}, 131, t);
      Tensor idx = from_vector<int64_t>({3, 0, 3, 3, 6, 1, 0}, {7});  // repeated indices
      std::string m = str(dtype_name(t), det ? " deterministic" : " atomics");
      check_graph("index_select dim 1 " + m, {x, idx}, tol(t),
                  [&](const std::vector<Tensor>& v) { return index_select(v[0], 1, v[1]); });
      Tensor idx0 = from_vector<int64_t>({4, 4, 0, 2}, {4});
      check_graph("index_select dim 0 " + m, {x, idx0}, tol(t),
                  [&](const std::vector<Tensor>& v) { return index_select(v[0], 0, v[1]); });
      check_graph("index_select of a strided view " + m, {x, idx0}, tol(t),
                  [&](const std::vector<Tensor>& v) { return index_select(v[0].transpose(0, 2), 2, v[1]); });
      // Every row of the index repeats one position: gather's gradient adds into it six times. With
      // bfloat16 atomics each add rounds to bfloat16 in whatever order the hardware applies them,
      // so the sum may differ from the CPU's in-order sum by a few bfloat16 steps (up to 2.7x the
      // usual tolerance over all 720 orders of this case's values).
      Tensor gidx = argmax(rnd({5, 7, 4}, 132), 1).unsqueeze(1).expand({5, 6, 4}).contiguous();
      const double gather_grad_tol = t == DType::bf16 && !det ? 6e-2 : tol(t);
      check_graph("gather dim 1 " + m, {x, gidx}, {tol(t), true, gather_grad_tol},
                  [&](const std::vector<Tensor>& v) { return gather(v[0], 1, v[1]); });
      Tensor gidx2 = argmax(rnd({3, 7, 4}, 133), 0).unsqueeze(0).expand({2, 7, 4}).contiguous();
      check_graph("gather dim 0 " + m, {x, gidx2}, tol(t),
                  [&](const std::vector<Tensor>& v) { return gather(v[0], 0, v[1]); });
    }
    // Integer tensors take the ordered path whatever the mode.
    Tensor xi = mul(rnd({6, 5}, 134), 10.0).to(DType::i64);
    Tensor ii = from_vector<int64_t>({2, 2, 5, 0}, {4});
    expect_equal(index_select(xi.to(kGpu), 0, ii.to(kGpu)).cpu(), index_select(xi, 0, ii), "i64 index_select");
    Tensor gi = zeros({6, 5}, TensorOptions(DType::i64)), gg = zeros({6, 5}, TensorOptions(DType::i64, kGpu));
    Tensor src = mul(rnd({4, 5}, 135), 10.0).to(DType::i64);
    cpu_backend().index_add(gi, 0, ii, src);
    backend_for(kGpu).index_add(gg, 0, ii.to(kGpu), src.to(kGpu));
    expect_equal(gg.cpu(), gi, "i64 index_add with repeats");
    // Integer accumulation wraps modulo 2^64 on both backends (compared as int64, not double).
    const int64_t mx = std::numeric_limits<int64_t>::max();
    Tensor wi = from_vector<int64_t>({mx, 0, mx}, {3}), wg = wi.to(kGpu);
    Tensor widx = from_vector<int64_t>({0, 2, 0}, {3}), wsrc = from_vector<int64_t>({1, 5, mx}, {3});
    cpu_backend().index_add(wi, 0, widx, wsrc);
    backend_for(kGpu).index_add(wg, 0, widx.to(kGpu), wsrc.to(kGpu));
    CHECK(wg.cpu().to_vector<int64_t>() == wi.to_vector<int64_t>());
    wi = from_vector<int64_t>({mx, 0, mx}, {3}), wg = wi.to(kGpu);
    cpu_backend().scatter_add(wi, 0, widx, wsrc);
    backend_for(kGpu).scatter_add(wg, 0, widx.to(kGpu), wsrc.to(kGpu));
    CHECK(wg.cpu().to_vector<int64_t>() == wi.to_vector<int64_t>());
  }
}

CUDA_TEST_CASE("cuda random fills are bitwise equal to the CPU's") {
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    for (int64_t n : {1, 7, 1000, 300001}) {
      Generator gc(2024), gg(2024);
      Tensor a = rand({n}, gc, TensorOptions(t)), b = rand({n}, gg, TensorOptions(t, kGpu));
      Tensor c = randn({n}, gc, TensorOptions(t)), d = randn({n}, gg, TensorOptions(t, kGpu));
      Tensor e = uniform({n}, -3.0, 2.0, gc, TensorOptions(t)), f = uniform({n}, -3.0, 2.0, gg, TensorOptions(t, kGpu));
      Tensor g = normal({n}, 1.5, 0.25, gc, TensorOptions(t)), h = normal({n}, 1.5, 0.25, gg, TensorOptions(t, kGpu));
      std::string w = str(dtype_name(t), " n=", n);
      if (t == DType::f64) {  // the device's log/cos may differ from the host's in the last bit
        expect_equal(b.cpu(), a, "rand " + w);
        expect_close(d.cpu(), c, 1e-14, "randn " + w);
        expect_close(f.cpu(), e, 1e-15, "uniform " + w);
        expect_close(h.cpu(), g, 1e-14, "normal " + w);
      } else {
        expect_equal(b.cpu(), a, "rand " + w);
        // Bitwise, although the draws pass through double log/cos: on the H200 (nvcc 13) every
        // float32 and bfloat16 draw matched the CPU's in every run.
        expect_equal(d.cpu(), c, "randn " + w);
        expect_equal(f.cpu(), e, "uniform " + w);
        expect_equal(h.cpu(), g, "normal " + w);
      }
      CHECK(gc.offset() == gg.offset());
    }
  }
  Generator gc(7), gg(7);
  Tensor x = rnd({64, 33}, 136);
  expect_equal(dropout(x.to(kGpu), 0.3, true, gg).cpu(), dropout(x, 0.3, true, gc), "dropout mask and scale");
}

CUDA_TEST_CASE("cuda fused SGD and Adam updates match the CPU") {
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    int64_t n = 10007;
    Tensor p = rnd({n}, 141, t), g = rnd({n}, 142, t), m = rnd({n}, 143, t), v = rnd_pos({n}, 144, t);
    struct Sgd {
      double mom, damp, wd;
      bool nesterov, first;
    };
    for (Sgd s : {Sgd{0, 0, 0, false, false}, Sgd{0.9, 0, 5e-4, false, true}, Sgd{0.9, 0.1, 5e-4, false, false},
                  Sgd{0.9, 0, 1e-3, true, false}}) {
      Tensor pc = p.clone(), bc = m.clone(), pg = p.to(kGpu), bg = m.to(kGpu);
      cpu_backend().sgd_update(pc, g, bc, 0.05, s.mom, s.damp, s.wd, s.nesterov, s.first);
      backend_for(kGpu).sgd_update(pg, g.to(kGpu), bg, 0.05, s.mom, s.damp, s.wd, s.nesterov, s.first);
      std::string w = str(dtype_name(t), " momentum ", s.mom, " nesterov ", s.nesterov);
      expect_close(pg.cpu(), pc, tol(t), "sgd param " + w);
      expect_close(bg.cpu(), bc, tol(t), "sgd buffer " + w);
    }
    for (double wd : {0.0, 1e-2}) {
      Tensor pc = p.clone(), mc = m.clone(), vc = v.clone();
      Tensor pg = p.to(kGpu), mg = m.to(kGpu), vg = v.to(kGpu);
      cpu_backend().adam_update(pc, g, mc, vc, 1e-3, 0.9, 0.999, 1e-8, wd, 3);
      backend_for(kGpu).adam_update(pg, g.to(kGpu), mg, vg, 1e-3, 0.9, 0.999, 1e-8, wd, 3);
      std::string w = str(dtype_name(t), " wd ", wd);
      expect_close(pg.cpu(), pc, tol(t), "adam param " + w);
      expect_close(mg.cpu(), mc, tol(t), "adam m " + w);
      expect_close(vg.cpu(), vc, tol(t), "adam v " + w);
    }
  }
}

namespace {
// A small CNN step whose backward uses every accumulating kernel: overlapping max pooling,
// index_select (index_add), gather (scatter_add), conv weight gradients, batch norm.
std::vector<Tensor> cnn_step(Device dev) {
  Tensor x = rnd({8, 3, 12, 12}, 151).to(dev);
  Tensor w1 = rnd({6, 3, 3, 3}, 152).to(dev), w2 = rnd({10, 6 * 3 * 3}, 153).to(dev);
  Tensor gamma = ones({6}, TensorOptions(DType::f32, dev)), beta = zeros({6}, TensorOptions(DType::f32, dev));
  Tensor table = rnd({20, 6}, 154).to(dev);
  for (Tensor* t : {&w1, &w2, &gamma, &beta, &table}) t->requires_grad_(true);
  Tensor target = from_vector<int64_t>({0, 3, 9, 1, 1, 7, 2, 5}, {8}).to(dev);
  Tensor ids = from_vector<int64_t>({3, 3, 7, 0, 19, 3, 7, 7}, {8}).to(dev);
  Tensor h = relu(
      batch_norm(conv2d(x, w1, Tensor(), Conv2dParams{1, 1, 1, 1, 1, 1, 1}), gamma, beta, Tensor(), Tensor(), true));
  h = max_pool2d(h, 3, 2, 1);                   // [8, 6, 6, 6]
  h = adaptive_avg_pool2d(h, 3, 3).flatten(1);  // [8, 54]
  Tensor emb = index_select(table, 0, ids);     // [8, 6]
  Tensor cols = from_vector<int64_t>({0, 3, 5, 1, 1, 2, 2, 5}, {8, 1}).to(dev);
  Tensor picked = gather(emb, 1, cols);  // [8, 1]
  // The picked value is weighted per class: a term added equally to every logit would leave the
  // softmax unchanged and give table a gradient that is zero up to rounding.
  Tensor logits = add(matmul(h, w2.t()), mul(picked, arange(10, TensorOptions(DType::f32, dev))));
  Tensor loss = cross_entropy(logits, target);
  loss.backward();
  return {loss.detach(), w1.grad(), w2.grad(), gamma.grad(), beta.grad(), table.grad()};
}
}  // namespace

CUDA_TEST_CASE("cuda deterministic mode: repeated runs are bitwise equal") {
  cuda::ConfigGuard guard;
  cuda::set_deterministic(true);
  for (const char* conv : {"native", "cudnn"}) {
    if (std::string(conv) == "cudnn" && !cuda::have_cudnn()) continue;
    cuda::set_conv_impl(conv);
    std::vector<Tensor> a = cnn_step(kGpu), b = cnn_step(kGpu);
    for (size_t i = 0; i < a.size(); ++i) expect_equal(b[i].cpu(), a[i].cpu(), str(conv, " result ", i));
    std::vector<Tensor> c = cnn_step(Device::cpu());
    for (size_t i = 0; i < a.size(); ++i) expect_close(a[i].cpu(), c[i], 1e-4, str(conv, " against the CPU ", i));
  }
}

CUDA_TEST_CASE("cuda a training step of a small network matches the CPU") {
  cuda::ConfigGuard guard;
  std::vector<Tensor> g = cnn_step(kGpu), c = cnn_step(Device::cpu());
  for (size_t i = 0; i < g.size(); ++i) expect_close(g[i].cpu(), c[i], 1e-4, str("step output ", i));
}

// Whole networks, forward and backward, in float64 so that no ReLU or max-pool choice can flip on
// rounding (in float32 one pre-activation near zero moves a gradient by percents; see the PyTorch
// crosscheck of inception-small): non-affine batch norm, concatenated branches and padded pooling
// (inception-small), local response normalization (alexnet-small), residual blocks (resnet18).
CUDA_TEST_CASE("cuda float64 training-step logits and gradients of whole networks match the CPU") {
  cuda::ConfigGuard guard;
  for (const char* arch : {"inception-small", "alexnet-small", "resnet18"}) {
    std::vector<Tensor> out[2];
    for (int k = 0; k < 2; ++k) {
      Device dev = k ? Device::cpu() : kGpu;
      Generator g(17);
      auto m = nn::make_model(arch, {3, 12, 12}, 10, g);
      m->to(DType::f64);
      m->to(dev);
      m->train();
      Tensor x = rnd({4, 3, 12, 12}, 171, DType::f64).to(dev);
      Tensor y = from_vector<int64_t>({0, 3, 9, 1}, {4}).to(dev);
      Tensor logits = (*m)(x);
      cross_entropy(logits, y).backward();
      out[k].push_back(logits.detach());
      for (auto& [name, p] : m->named_parameters()) out[k].push_back(p.grad());
    }
    REQUIRE(out[0].size() == out[1].size());
    // Some gradients are zero up to rounding (the bias of a convolution that a batch norm follows:
    // the normalization removes any per-channel constant), so differences are also allowed up to
    // 1e-9 of the mean gradient magnitude of the whole network.
    double sum_abs = 0, count = 0;
    for (size_t i = 1; i < out[1].size(); ++i) {
      for (double v : out[1][i].to_vector<double>()) sum_abs += std::fabs(v);
      count += double(out[1][i].numel());
    }
    const double atol = 1e-9 * sum_abs / std::max(count, 1.0);
    for (size_t i = 0; i < out[0].size(); ++i)
      expect_close(out[0][i].cpu(), out[1][i], 1e-9,
                   str(arch, i ? " gradient " : " logits", i ? std::to_string(i) : ""), i ? atol : 0.0);
  }
}

#endif  // MINIMA_HAS_CUDA
