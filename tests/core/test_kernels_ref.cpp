// tests/core/test_kernels_ref.cpp: forward results of the CPU kernels against naive reference
// loops written here: GEMM (odd shapes, strided operands and outputs, alpha/beta, batches),
// conv2d (forward and both backward kernels), pooling, adaptive pooling, batch norm (training
// statistics, running-stat update with PyTorch's conventions, evaluation), float32 exp, log_softmax, the
// reductions, the elementwise math, gather, and the fused optimizer updates.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>

#include "core/backend.h"
#include "core/ops.h"
#include "core/random.h"
#include "exp_hard_cases.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/exp.h"
#include "kernels/cpu/lane_sum.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

namespace {

constexpr double kU32 = 5.960464477539063e-08;   // 2^-24, unit roundoff of float32
constexpr double kU64 = 1.1102230246251565e-16;  // 2^-53

double unit_roundoff(DType t) { return t == DType::f32 ? kU32 : kU64; }

// Naive C = A @ B in double with the matching error bound K * u * sum |a||b| per element.
void naive_matmul(const Tensor& a, const Tensor& b, std::vector<double>& c, std::vector<double>& bound, double u) {
  int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  c.assign(size_t(M * N), 0.0);
  bound.assign(size_t(M * N), 0.0);
  std::vector<double> av = values(a), bv = values(b);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      double x = av[size_t(i * K + k)];
      for (int64_t j = 0; j < N; ++j) {
        c[size_t(i * N + j)] += x * bv[size_t(k * N + j)];
        bound[size_t(i * N + j)] += std::abs(x * bv[size_t(k * N + j)]);
      }
    }
  for (auto& e : bound) e = 2.0 * double(K + 2) * u * e + 1e-300;
}

// x's values as every other column of a wider tensor (the columns between hold 1e6): a strided
// operand, which the GEMM packs one value at a time.
Tensor every_other_column(const Tensor& x) {
  Tensor w = full({x.size(0), 2 * x.size(1)}, 1e6, TensorOptions(x.dtype())).slice(1, 0, 2 * x.size(1), 2);
  w.copy_(x);
  return w;
}

// Puts back the GEMM instruction set a test case started with.
// Sets OpenMP's thread count for one scope.
struct ScopedThreads {
  int was = omp_get_max_threads();
  explicit ScopedThreads(int n) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(was); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
};

struct RestoreGemmIsa {
  cpu::GemmIsa was = cpu::gemm_isa();
  ~RestoreGemmIsa() { cpu::set_gemm_isa(was); }
};

void check_within(const std::vector<double>& got, const std::vector<double>& want, const std::vector<double>& bound) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= bound[i])) {
      if (!bad) first = i;
      ++bad;
    }
  CHECK_MESSAGE(bad == 0, bad << " elements outside the bound; first: element " << first << " got " << got[first]
                              << " want " << want[first] << " bound " << bound[first]);
}

}  // namespace

TEST_CASE("kernels: GEMM on odd shapes in float32 and float64") {
  Generator g(400);
  struct S {
    int64_t M, K, N;
  };
  for (DType t : {DType::f32, DType::f64})
    for (S s :
         std::vector<S>{{1, 1, 1}, {7, 13, 5}, {97, 131, 259}, {300, 17, 513}, {1, 300, 1}, {5, 1, 9}, {2, 600, 3}}) {
      INFO(std::string(dtype_name(t)) << " M=" << s.M << " K=" << s.K << " N=" << s.N);
      Tensor a = urand({s.M, s.K}, g, -1, 1, t), b = urand({s.K, s.N}, g, -1, 1, t);
      std::vector<double> want, bound;
      naive_matmul(a, b, want, bound, unit_roundoff(t));
      Tensor c = matmul(a, b);
      CHECK(c.dtype() == t);
      CHECK(c.shape() == Shape{s.M, s.N});
      check_within(values(c), want, bound);
      // The same product from transposed operand views: A = (A^T)^T, B = (B^T)^T.
      Tensor at_ = a.t().contiguous().t(), bt = b.t().contiguous().t();
      CHECK_FALSE((s.M > 1 && s.K > 1 && at_.is_contiguous()));
      check_within(values(matmul(at_, bt)), want, bound);
      check_within(values(matmul(at_, b)), want, bound);
      // Strided (every other column) operands.
      check_within(values(matmul(every_other_column(a), bt)), want, bound);
    }
}

TEST_CASE("kernels: GEMM alpha and beta into strided outputs") {
  Generator g(401);
  for (DType t : {DType::f32, DType::f64}) {
    int64_t B = 2, M = 19, K = 300, N = 23;  // K spans two K-blocks: beta must apply once
    Tensor a = urand({B, M, K}, g, -1, 1, t), b = urand({B, K, N}, g, -1, 1, t);
    Tensor c0 = urand({B, N, M}, g, -1, 1, t);
    Tensor c = c0.clone().transpose(1, 2);  // a non-contiguous [B, M, N] output
    double alpha = 0.75, beta = -1.5;
    cpu_backend().gemm(c, a, b, alpha, beta);
    for (int64_t bi = 0; bi < B; ++bi) {
      std::vector<double> want, bound;
      naive_matmul(a.select(0, bi), b.select(0, bi), want, bound, unit_roundoff(t));
      Tensor c0t = c0.select(0, bi).t();
      std::vector<double> prev = values(c0t), got = values(c.select(0, bi));
      for (size_t i = 0; i < want.size(); ++i) {
        want[i] = alpha * want[i] + beta * prev[i];
        bound[i] = bound[i] + 4 * unit_roundoff(t) * (std::abs(want[i]) + std::abs(prev[i]));
      }
      check_within(got, want, bound);
    }
    // beta = 0 ignores whatever the output held (even NaN).
    Tensor cn = full({B, M, N}, std::numeric_limits<double>::quiet_NaN(), TensorOptions(t));
    cpu_backend().gemm(cn, a, b, 1.0, 0.0);
    for (double v : values(cn)) REQUIRE_FALSE(std::isnan(v));
  }
}

TEST_CASE("kernels: the AVX2 and AVX-512 GEMM micro-kernels agree bitwise") {
  using cpu::GemmIsa;
  if (!cpu::gemm_isa_supported(GemmIsa::avx512)) {
    MESSAGE("skipped: this CPU has no AVX-512, only the AVX2 micro-kernel can run (the tests above cover it)");
    return;
  }
  const RestoreGemmIsa restore;
  Generator g(402);
  struct S {
    int64_t M, K, N;
  };
  // Edges of every blocking: tails of both register tiles (6/12 rows, 16/32 columns), more
  // than one K block (256), M block (144) and N block (1024).
  for (DType t : {DType::f32, DType::f64})
    for (S s : std::vector<S>{{1, 1, 1}, {13, 7, 33}, {145, 257, 47}, {30, 600, 1030}, {289, 520, 97}}) {
      INFO(std::string(dtype_name(t)) << " M=" << s.M << " K=" << s.K << " N=" << s.N);
      Tensor a = urand({s.M, s.K}, g, -1, 1, t), b = urand({s.K, s.N}, g, -1, 1, t);
      Tensor bt = b.t().contiguous().t();  // a strided B: packing takes the slow path
      Tensor c0 = urand({s.M, s.N}, g, -1, 1, t);
      std::vector<std::vector<double>> got;
      for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
        cpu::set_gemm_isa(isa);
        REQUIRE(cpu::gemm_isa() == isa);
        Tensor c = c0.clone();
        cpu_backend().gemm(c.unsqueeze(0), a.unsqueeze(0), bt.unsqueeze(0), 0.5, -2.0);
        got.push_back(values(c));
        got.push_back(values(matmul(a, b)));
      }
      std::vector<double> want, bound;
      naive_matmul(a, b, want, bound, unit_roundoff(t));
      check_within(got[1], want, bound);
      CHECK(got[0] == got[2]);
      CHECK(got[1] == got[3]);
    }
}

TEST_CASE("kernels: packing contiguous rows of A or columns of B through register tiles is bitwise a strided copy") {
  // Packing only moves values, so a product over contiguous lines (transposed into the packed
  // strips a vector tile at a time, in row groups of 8 and 4 floats or 4 and 2 doubles, then one
  // value at a time) must equal, bit for bit, the product over the same operand read with a
  // stride (packed one value at a time). Every row count up to two 12-row strips and a few more,
  // K not a multiple of any tile, on both instruction sets.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  Generator g(407);
  std::vector<GemmIsa> isas = {GemmIsa::avx2};
  if (cpu::gemm_isa_supported(GemmIsa::avx512)) isas.push_back(GemmIsa::avx512);
  int64_t cases = 0;
  for (GemmIsa isa : isas) {
    cpu::set_gemm_isa(isa);
    for (DType t : {DType::f32, DType::f64})
      for (int64_t K : {1, 3, 9, 37})
        for (int64_t M = 1; M <= 29; ++M) {
          INFO(cpu::gemm_isa_name(isa) << " " << dtype_name(t) << " M=" << M << " K=" << K);
          const int64_t N = 40;
          Tensor a = urand({M, K}, g, -1, 1, t), b = urand({K, N}, g, -1, 1, t);
          // A's rows contiguous against strided; then a.t() as B, whose M columns are contiguous.
          REQUIRE(values(matmul(a, b)) == values(matmul(every_other_column(a), b)));
          Tensor bt = b.t().contiguous();
          REQUIRE(values(matmul(bt, a.t())) == values(matmul(bt, every_other_column(a).t())));
          ++cases;
        }
  }
  CHECK(cases == int64_t(isas.size()) * 2 * 4 * 29);
}

TEST_CASE("kernels: gemm_in_place counts the runs a vector meets as a walk over its columns does") {
  // A vector of VL columns starts at a multiple of VL; counted here column by column over every
  // start a run length allows, against the closed form the GEMM uses.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    const int64_t bytes = isa == GemmIsa::avx512 ? 64 : 32;
    auto walk = [](int64_t run, int64_t vl) {
      int64_t most = 0;
      for (int64_t start = 0; start < run * vl; start += vl) {
        int64_t runs = 1;
        for (int64_t j = start + 1; j < start + vl; ++j) runs += j % run == 0 ? 1 : 0;
        most = std::max(most, runs);
      }
      return most;
    };
    for (int64_t run = 1; run <= 100; ++run) {
      INFO(cpu::gemm_isa_name(isa) << ", runs of " << run);
      CHECK(cpu::gemm_in_place_pieces<float>(run) == walk(run, bytes / 4));
      CHECK(cpu::gemm_in_place_pieces<double>(run) == walk(run, bytes / 8));
    }
    CHECK(cpu::gemm_in_place_pieces<float>(1000000) == 1);
    CHECK(cpu::gemm_in_place_pieces<float>(1000001) == 2);
  }
}

TEST_CASE("kernels: gemm_row_runs is bitwise gemm_strided over the rows its runs pick") {
  // For each shift s, C[:, s * c_shift + j] += sum over runs of A[:, k + t] * B[row + t * step +
  // shift, j]: A and B packed once. The reference stores the picked rows, padded with columns up to
  // a multiple of 32 so that it runs on whole-width tiles only, and multiplies them with beta 1.
  // Runs of random lengths (crossing the 256-column K blocks), rows apart by 1 or 2, row and column
  // tails of both register tiles, A taller than one M block (144), each dtype and instruction set.
  const RestoreGemmIsa restore;
  Generator g(411);
  std::mt19937 rng(4111);
  struct S {
    int64_t M, K, N, step;
    std::vector<int64_t> shifts;
  };
  for (cpu::GemmIsa isa : {cpu::GemmIsa::avx2, cpu::GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (DType t : {DType::f32, DType::f64})
      for (const S& s : std::vector<S>{{13, 600, 40, 1, {0, 7, 19, 20}},
                                       {150, 90, 5, 2, {3, 10}},
                                       {20, 300, 57, 1, {0, 5}},
                                       {1, 1, 1, 1, {0}}}) {
        INFO(cpu::gemm_isa_name(isa) << " " << dtype_name(t) << " M=" << s.M << " K=" << s.K << " N=" << s.N);
        // Runs of 1 to 40 columns, each starting at a random row; B is tall enough for all of them.
        std::vector<cpu::RowRun> runs;
        int64_t rows = 0;
        for (int64_t k = 0; k < s.K;) {
          const int64_t len = std::min<int64_t>(s.K - k, std::uniform_int_distribution<int64_t>(1, 40)(rng));
          const int64_t row = std::uniform_int_distribution<int64_t>(0, 50)(rng);
          runs.push_back(cpu::RowRun{k, len, row});
          rows = std::max(rows, row + (len - 1) * s.step + 1);
          k += len;
        }
        rows += *std::max_element(s.shifts.begin(), s.shifts.end());
        const int64_t ns = int64_t(s.shifts.size()), c_shift = s.N + 3;  // 3 columns between shifts
        Tensor a = urand({s.M, s.K}, g, -1, 1, t), b = urand({rows, s.N}, g, -1, 1, t);
        Tensor c0 = urand({s.M, ns * c_shift}, g, -1, 1, t);
        auto run = [&](auto tag) {
          using T = decltype(tag);
          const T* ap = a.data<T>();
          const T* bp = b.data<T>();
          cpu::PackedA<T> pa;
          cpu::PackedB<T> pb;
          cpu::pack_a<T>(pa, s.M, s.K, ap, s.K, 1);
          auto strips = [&](int64_t j0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
            for (int64_t k = 0; k < kc; ++k)
              for (int j = 0; j < R; ++j) out[k * R + j] = j < n ? bp[(pc + k) * s.N + j0 + j] : T(0);
          };
          cpu::pack_b<T>(pb, rows, s.N, cpu::StripPacker<T>(strips));
          Tensor got = c0.clone();
          cpu::gemm_row_runs<T>(pa, pb, runs.data(), int64_t(runs.size()), s.step, s.shifts.data(), ns, got.data<T>(),
                                ns * c_shift, c_shift);
          const int64_t nw = (s.N + 31) / 32 * 32;  // the reference's width: whole tiles
          std::vector<T> picked(size_t(s.K * nw), T(0));
          for (int64_t w = 0; w < ns; ++w) {
            for (const cpu::RowRun& r : runs)
              for (int64_t i = 0; i < r.len; ++i)
                std::copy_n(bp + (r.row + i * s.step + s.shifts[size_t(w)]) * s.N, s.N, picked.data() + (r.k + i) * nw);
            Tensor want = full({s.M, nw}, 0.0, TensorOptions(t));
            want.slice(1, 0, s.N, 1).copy_(c0.slice(1, w * c_shift, w * c_shift + s.N, 1));
            cpu::gemm_strided<T>(s.M, nw, s.K, T(1), ap, s.K, 1, picked.data(), nw, 1, T(1), want.data<T>(), nw, 1);
            CHECK(values(got.slice(1, w * c_shift, w * c_shift + s.N, 1)) == values(want.slice(1, 0, s.N, 1)));
            // The columns between shifts are not C's: left as they were.
            const int64_t gap_end = std::min<int64_t>((w + 1) * c_shift, ns * c_shift);
            CHECK(values(got.slice(1, w * c_shift + s.N, gap_end, 1)) ==
                  values(c0.slice(1, w * c_shift + s.N, gap_end, 1)));
          }
          // Rows past B, runs that do not cover A's columns in order, and shifts sharing columns: refused.
          const int64_t past = rows;
          CHECK_THROWS_WITH(cpu::gemm_row_runs<T>(pa, pb, runs.data(), int64_t(runs.size()), s.step, &past, 1,
                                                  got.data<T>(), ns * c_shift, c_shift),
                            doctest::Contains("reads rows outside B's"));
          if (runs.size() > 1)
            CHECK_THROWS_WITH(cpu::gemm_row_runs<T>(pa, pb, runs.data() + 1, int64_t(runs.size()) - 1, s.step,
                                                    s.shifts.data(), 1, got.data<T>(), ns * c_shift, c_shift),
                              doctest::Contains("covers A's columns"));
          if (ns > 1)
            CHECK_THROWS_WITH(cpu::gemm_row_runs<T>(pa, pb, runs.data(), int64_t(runs.size()), s.step, s.shifts.data(),
                                                    2, got.data<T>(), ns * c_shift, s.N - 1),
                              doctest::Contains("columns of C overlap"));
        };
        if (t == DType::f32)
          run(float{});
        else
          run(double{});
      }
  }
}

TEST_CASE("kernels: matrix-vector products are bitwise the columns and rows of the blocked GEMM") {
  // A product with one column (or one row) takes the unpacked matrix-vector path; with two it
  // takes the blocked one. Column 0 (row 0) must not depend on which: the same sums in the same
  // order. Shapes cross the row tiles (one vector of rows: 4 to 16) and the 256-wide K blocks, with
  // k tails of every length; A row-major (its tiles transposed in registers) and column-major, a
  // strided vector, alpha and beta into an output that already holds values; each instruction set.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  Generator g(403);
  auto check = [&](GemmIsa isa, DType t, int64_t M, int64_t K) {
    INFO(cpu::gemm_isa_name(isa) << " " << dtype_name(t) << " M=" << M << " K=" << K);
    Tensor a = urand({M, K}, g, -1, 1, t), b = urand({K, 2}, g, -1, 1, t), c0 = urand({M, 2}, g, -1, 1, t);
    for (bool col_major : {false, true}) {
      Tensor aa = col_major ? a.t().contiguous().t() : a;
      Tensor two = c0.clone(), one = c0.slice(1, 0, 1, 1).clone();
      cpu_backend().gemm(two.unsqueeze(0), aa.unsqueeze(0), b.unsqueeze(0), 0.5, -2.0);
      cpu_backend().gemm(one.unsqueeze(0), aa.unsqueeze(0), b.slice(1, 0, 1, 1).unsqueeze(0), 0.5, -2.0);
      CHECK(values(one) == values(two.slice(1, 0, 1, 1)));
      if (M == 1) continue;
      // One row: row 0 of b^T a^T against a two-row product (b^T: a strided [1, K] view).
      Tensor rows2 = c0.t().clone(), row1 = c0.t().slice(0, 0, 1, 1).clone();
      cpu_backend().gemm(rows2.unsqueeze(0), b.t().unsqueeze(0), aa.t().unsqueeze(0), 1.0, 0.0);
      cpu_backend().gemm(row1.unsqueeze(0), b.t().slice(0, 0, 1, 1).unsqueeze(0), aa.t().unsqueeze(0), 1.0, 0.0);
      CHECK(values(row1) == values(rows2.slice(0, 0, 1, 1)));
    }
    std::vector<double> want, bound;
    Tensor v = b.slice(1, 0, 1, 1);
    naive_matmul(a, v, want, bound, unit_roundoff(t));
    check_within(values(matmul(a, v)), want, bound);
  };
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (DType t : {DType::f32, DType::f64})
      for (int64_t M : {1, 7, 16, 33, 1000})
        for (int64_t K : {1, 15, 255, 256, 257, 1300}) check(isa, t, M, K);
  }
}

TEST_CASE("kernels: a product with few columns, run transposed, is bitwise those columns of a wider one") {
  // [M, K] x [K, N] with N far below the micro-kernel's column tile runs as C^T = B^T A^T (a
  // classifier layer's product); with 64 columns it does not. The first N columns must agree
  // bitwise: the same products, summed in the same k order. Row-major and transposed operands,
  // alpha and beta into an output that already holds values, K tails and blocks, each
  // instruction set.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  Generator g(404);
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (DType t : {DType::f32, DType::f64})
      for (int64_t M : {128, 301})
        for (int64_t N : {2, 10, 17})
          for (int64_t K : {255, 513}) {
            INFO(cpu::gemm_isa_name(isa) << " " << dtype_name(t) << " M=" << M << " N=" << N << " K=" << K);
            Tensor a = urand({M, K}, g, -1, 1, t), b = urand({K, 64}, g, -1, 1, t), c0 = urand({M, 64}, g, -1, 1, t);
            for (bool transposed_views : {false, true}) {
              Tensor aa = transposed_views ? a.t().contiguous().t() : a;
              Tensor bb = transposed_views ? b.t().contiguous().t() : b;
              Tensor wide = c0.clone(), narrow = c0.slice(1, 0, N, 1).clone();
              cpu_backend().gemm(wide.unsqueeze(0), aa.unsqueeze(0), bb.unsqueeze(0), 0.5, -2.0);
              cpu_backend().gemm(narrow.unsqueeze(0), aa.unsqueeze(0), bb.slice(1, 0, N, 1).unsqueeze(0), 0.5, -2.0);
              CHECK(values(narrow) == values(wide.slice(1, 0, N, 1)));
            }
            std::vector<double> want, bound;
            naive_matmul(a, b.slice(1, 0, N, 1), want, bound, unit_roundoff(t));
            check_within(values(matmul(a, b.slice(1, 0, N, 1))), want, bound);
          }
  }
}

TEST_CASE("kernels: a product with few rows is bitwise those rows of a taller one") {
  // Up to 144 rows (the A block), a product packs all of A once and runs each B strip against
  // every A strip while it is in L1; a taller one takes the general blocked loops. Rows [0, M)
  // must agree bitwise: the same K blocks summed in the same order with the same epilogue.
  // Row tails of the 6/12-row tile, K tails and blocks, more than one N block (1024), strided
  // operands, alpha and beta into an output that already holds values, each instruction set; on
  // one thread, and on three, where each thread packs a copy of A for itself once it has enough
  // B strips (N = 1100: 35 or 69 strips).
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  Generator g(405);
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (DType t : {DType::f32, DType::f64})
      for (int64_t M : {5, 12, 37, 144})
        for (int64_t K : {255, 700})
          for (int64_t N : {33, 1100}) {
            INFO(cpu::gemm_isa_name(isa) << " " << dtype_name(t) << " M=" << M << " K=" << K << " N=" << N);
            Tensor a = urand({300, K}, g, -1, 1, t), b = urand({K, N}, g, -1, 1, t), c0 = urand({300, N}, g, -1, 1, t);
            for (bool transposed_views : {false, true}) {
              Tensor aa = transposed_views ? a.t().contiguous().t() : a;
              Tensor bb = transposed_views ? b.t().contiguous().t() : b;
              Tensor tall = c0.clone();
              cpu_backend().gemm(tall.unsqueeze(0), aa.unsqueeze(0), bb.unsqueeze(0), 0.5, -2.0);
              for (int threads : {1, 3}) {
                const ScopedThreads scoped(threads);
                Tensor few = c0.slice(0, 0, M, 1).clone();
                cpu_backend().gemm(few.unsqueeze(0), aa.slice(0, 0, M, 1).unsqueeze(0), bb.unsqueeze(0), 0.5, -2.0);
                CHECK_MESSAGE(values(few) == values(tall.slice(0, 0, M, 1)), threads, " threads");
              }
            }
            std::vector<double> want, bound;
            naive_matmul(a.slice(0, 0, M, 1), b, want, bound, unit_roundoff(t));
            check_within(values(matmul(a.slice(0, 0, M, 1), b)), want, bound);
          }
  }
}

TEST_CASE("kernels: the GEMM's vector stores are bitwise its general epilogue") {
  // Whole-width tiles into unit-stride rows with alpha 1 and beta 0 or 1 are stored a vector at
  // a time; any other stride, alpha or beta goes through the general epilogue. C as a row-major
  // matrix and as the transpose of a column-major one (the same product, other strides) must
  // agree bitwise, with one K block and several (beta 1 after the first), row and column tails,
  // few rows and many, each instruction set.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  Generator g(407);
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (DType t : {DType::f32, DType::f64})
      for (int64_t M : {30, 301})
        for (int64_t K : {40, 600})
          for (int64_t N : {64, 75})
            for (double beta : {0.0, 1.0}) {
              INFO(cpu::gemm_isa_name(isa)
                   << " " << dtype_name(t) << " M=" << M << " K=" << K << " N=" << N << " beta=" << beta);
              Tensor a = urand({M, K}, g, -1, 1, t), b = urand({K, N}, g, -1, 1, t), c0 = urand({M, N}, g, -1, 1, t);
              Tensor rows = c0.clone(), cols = c0.t().contiguous().t();  // same values, column-major
              REQUIRE(cols.stride(1) != 1);
              cpu_backend().gemm(rows.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), 1.0, beta);
              cpu_backend().gemm(cols.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), 1.0, beta);
              CHECK(values(rows) == values(cols));
              std::vector<double> want, bound;
              naive_matmul(a, b, want, bound, unit_roundoff(t));
              if (beta == 1.0) {
                const std::vector<double> c0v = values(c0);
                for (size_t i = 0; i < want.size(); ++i) {
                  want[i] += c0v[i];
                  bound[i] += 2.0 * unit_roundoff(t) * std::abs(want[i]);
                }
              }
              check_within(values(rows), want, bound);
            }
  }
}

TEST_CASE("kernels: a GEMM over an A packed beforehand is bitwise the GEMM over A") {
  // conv2d packs its weights once per call (pack_a) and multiplies every chunk of images by them
  // (gemm_prepacked). That must be bitwise gemm_strided over the unpacked A, with B strided or
  // given by a packer: few rows (A packed whole either way) and more than one 144-row A block,
  // row tails of the 6/12-row strip, K tails and blocks, more than one N block, a transposed A,
  // alpha and beta into an output that already holds values, K = 0, each dtype and instruction
  // set. An A packed by a row packer must equal the strided packing of the same values.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  Generator g(408);
  auto run = [&](GemmIsa isa, DType t, int64_t M, int64_t K, int64_t N, auto tag) {
    using T = decltype(tag);
    INFO(cpu::gemm_isa_name(isa) << " " << dtype_name(t) << " M=" << M << " K=" << K << " N=" << N);
    Tensor a = urand({M, K}, g, -1, 1, t), b = urand({K, N}, g, -1, 1, t), c0 = urand({M, N}, g, -1, 1, t);
    const Tensor at = a.t().contiguous();  // A as the transpose of a row-major [K, M]
    const T alpha = T(0.5), beta = T(-2);
    Tensor want = c0.clone(), got_strided_b = c0.clone(), got_packer_b = c0.clone();
    cpu::gemm_strided<T>(M, N, K, alpha, a.data<T>(), K, 1, b.data<T>(), N, 1, beta, want.data<T>(), N, 1);
    cpu::PackedA<T> pa, pa_t, pa_rows;
    cpu::pack_a<T>(pa, M, K, a.data<T>(), K, 1);
    cpu::pack_a<T>(pa_t, M, K, at.data<T>(), 1, M);
    const T* ap = a.data<T>();
    auto rows = [&](int64_t i0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t i = 0; i < R; ++i) out[k * R + i] = i < n ? ap[(i0 + i) * K + pc + k] : T(0);
    };
    cpu::pack_a<T>(pa_rows, M, K, cpu::StripPacker<T>(rows));
    CHECK(pa_t.data == pa.data);
    CHECK(pa_rows.data == pa.data);
    CHECK(pa.mr == (isa == GemmIsa::avx512 ? 12 : 6));
    const T* bp = b.data<T>();
    auto cols = [&](int64_t j0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = 0; j < R; ++j) out[k * R + j] = j < n ? bp[(pc + k) * N + j0 + j] : T(0);
    };
    cpu::gemm_prepacked<T>(N, alpha, pa_t, bp, N, 1, beta, got_strided_b.data<T>(), N, 1);
    cpu::gemm_prepacked<T>(N, alpha, pa_rows, cpu::StripPacker<T>(cols), beta, got_packer_b.data<T>(), N, 1);
    CHECK(values(got_strided_b) == values(want));
    CHECK(values(got_packer_b) == values(want));
  };
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (int64_t M : {5, 37, 144, 301})
      for (int64_t K : {0, 255, 700})
        for (int64_t N : {33, 1100}) {
          run(isa, DType::f32, M, K, N, float{});
          run(isa, DType::f64, M, K, N, double{});
        }
  }
  if (cpu::gemm_isa_supported(GemmIsa::avx512)) {  // packed for 12-row strips, run with 6
    cpu::set_gemm_isa(GemmIsa::avx512);
    Tensor a = urand({20, 30}, g, -1, 1, DType::f32), b = urand({30, 40}, g, -1, 1, DType::f32);
    Tensor c = zeros({20, 40}, TensorOptions(DType::f32));
    cpu::PackedA<float> pa;
    cpu::pack_a<float>(pa, 20, 30, a.data<float>(), 30, 1);
    cpu::set_gemm_isa(GemmIsa::avx2);
    CHECK_THROWS_WITH_AS(cpu::gemm_prepacked<float>(40, 1.f, pa, b.data<float>(), 40, 1, 0.f, c.data<float>(), 40, 1),
                         doctest::Contains("instruction set changed"), Error);
  }
}

TEST_CASE("kernels: batched matmul with broadcasting against per-matrix products") {
  Generator g(402);
  for (DType t : {DType::f32, DType::f64}) {
    // Many small products (one per thread) and a broadcast batch.
    Tensor a = urand({8, 7, 13}, g, -1, 1, t), b = urand({8, 13, 5}, g, -1, 1, t);
    Tensor c = matmul(a, b);
    for (int64_t i = 0; i < 8; ++i) {
      std::vector<double> want, bound;
      naive_matmul(a.select(0, i), b.select(0, i), want, bound, unit_roundoff(t));
      check_within(values(c.select(0, i)), want, bound);
    }
    Tensor p = urand({3, 1, 4, 6}, g, -1, 1, t), q = urand({2, 6, 5}, g, -1, 1, t);
    Tensor r = matmul(p, q);
    CHECK(r.shape() == Shape{3, 2, 4, 5});
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        std::vector<double> want, bound;
        naive_matmul(p.select(0, i).select(0, 0), q.select(0, j), want, bound, unit_roundoff(t));
        check_within(values(r.select(0, i).select(0, j)), want, bound);
      }
  }
  // bfloat16 operands compute in float32 and round once.
  Tensor a = urand({9, 33}, g, -1, 1, DType::bf16), b = urand({33, 7}, g, -1, 1, DType::bf16);
  Tensor c = matmul(a, b);
  CHECK(c.dtype() == DType::bf16);
  std::vector<double> want, bound;
  naive_matmul(a, b, want, bound, kU32);
  std::vector<double> got = values(c);
  for (size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= bound[i] + 0.0079 * std::abs(want[i]));
}

// ---------------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------------
namespace {
struct ConvGeom {
  int64_t N, C, H, W, O, KH, KW, OH, OW, G;
  Conv2dParams p;
};
ConvGeom conv_geom(const Shape& x, const Shape& w, const Conv2dParams& p) {
  ConvGeom g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, p.groups, p};
  g.OH = (g.H + 2 * p.pad_h - p.dil_h * (g.KH - 1) - 1) / p.stride_h + 1;
  g.OW = (g.W + 2 * p.pad_w - p.dil_w * (g.KW - 1) - 1) / p.stride_w + 1;
  return g;
}
// A named conv2d geometry: input and weight shapes, parameters.
struct ConvCase {
  const char* name;
  Shape x, w;
  Conv2dParams p;
};
// check(case, geometry, dtype, T{}) for every case, in both float dtypes, with each GEMM
// instruction set the CPU has (the caller restores the one in use); failures name all three.
template <class F>
void for_each_isa_and_dtype(const std::vector<ConvCase>& cases, const F& check) {
  for (cpu::GemmIsa isa : {cpu::GemmIsa::avx2, cpu::GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    for (const ConvCase& c : cases) {
      const ConvGeom g = conv_geom(c.x, c.w, c.p);
      INFO(cpu::gemm_isa_name(isa) << " " << c.name);
      check(c, g, DType::f32, float{});
      check(c, g, DType::f64, double{});
    }
  }
}
// The receptive fields of image n, group gi, unrolled: col[k * ld + oh * OW + ow] for row
// k = (cg * KH + kh) * KW + kw, zero where the window reaches into the padding.
template <class T>
void unroll_image(const ConvGeom& g, const T* xp, int64_t n, int64_t gi, T* col, int64_t ld) {
  const int64_t Cg = g.C / g.G;
  for (int64_t cg = 0, k = 0; cg < Cg; ++cg)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw, ++k)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            const int64_t ih = oh * g.p.stride_h - g.p.pad_h + kh * g.p.dil_h;
            const int64_t iw = ow * g.p.stride_w - g.p.pad_w + kw * g.p.dil_w;
            const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
            col[k * ld + oh * g.OW + ow] = in ? xp[((n * g.C + gi * Cg + cg) * g.H + ih) * g.W + iw] : T(0);
          }
}
// Visits every (n, o, oh, ow, c, kh, kw) term of the convolution sum that hits the input.
template <class F>
void conv_terms(const ConvGeom& g, F&& f) {
  int64_t Cg = g.C / g.G, Og = g.O / g.G;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow)
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t kh = 0; kh < g.KH; ++kh)
              for (int64_t kw = 0; kw < g.KW; ++kw) {
                int64_t ih = oh * g.p.stride_h - g.p.pad_h + kh * g.p.dil_h;
                int64_t iw = ow * g.p.stride_w - g.p.pad_w + kw * g.p.dil_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                int64_t c = (o / Og) * Cg + cg;
                f(((n * g.O + o) * g.OH + oh) * g.OW + ow, ((n * g.C + c) * g.H + ih) * g.W + iw,
                  ((o * Cg + cg) * g.KH + kh) * g.KW + kw);
              }
}
}  // namespace

TEST_CASE("kernels: conv2d forward and backward against naive loops") {
  Generator gen(403);
  std::vector<ConvCase> cases = {
      {"3x3 pad 1", {2, 3, 8, 7}, {5, 3, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"stride 2", {3, 4, 9, 9}, {6, 4, 3, 3}, Conv2dParams::of(2, 2, 1, 1, 1, 1, 1)},
      {"dilation 2", {2, 2, 9, 8}, {3, 2, 3, 3}, Conv2dParams::of(1, 1, 2, 2, 2, 2, 1)},
      {"groups 2", {2, 4, 6, 6}, {6, 2, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 2)},
      {"depthwise", {2, 6, 5, 7}, {6, 1, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 6)},
      {"1x1", {2, 8, 5, 5}, {4, 8, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      {"1x1 grouped", {2, 8, 5, 5}, {4, 4, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 2)},
      {"1x1 stride 2 padded", {1, 3, 6, 6}, {4, 3, 1, 1}, Conv2dParams::of(2, 2, 1, 1, 1, 1, 1)},
      {"5x5 asymmetric", {1, 2, 11, 9}, {3, 2, 5, 3}, Conv2dParams::of(2, 1, 2, 0, 1, 2, 1)},
      // Small maps and several images per thread: images are batched into one GEMM (chunks of
      // several images, the last one partial), for plain, pointwise and grouped convs.
      {"batch of 17", {17, 3, 6, 6}, {4, 3, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"1x1 batch of 9", {9, 8, 5, 5}, {4, 8, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      {"groups 2 batch of 11", {11, 4, 6, 6}, {6, 2, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 2)},
      {"1x1 grouped stride 2 batch of 7", {7, 6, 7, 7}, {9, 2, 1, 1}, Conv2dParams::of(2, 2, 0, 0, 1, 1, 3)},
      // Stride 1 with at least 32 input channels per group: the input gradient runs as a forward
      // conv of gy with the flipped kernel, padded by dil*(K-1) - pad (here 1, 2, 3 and (2, 2)).
      {"input grad as forward: 3x3 pad 1", {3, 40, 7, 6}, {5, 40, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"input grad as forward: unpadded", {2, 32, 6, 5}, {3, 32, 3, 3}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      {"input grad as forward: dilation 2", {2, 33, 9, 8}, {4, 33, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 2, 2, 1)},
      {"input grad as forward: groups 2, 5x3", {2, 64, 6, 7}, {6, 32, 5, 3}, Conv2dParams::of(1, 1, 2, 0, 1, 1, 2)},
      {"input grad as forward: batch of 17", {17, 32, 4, 4}, {3, 32, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      // Few output channels: the weight gradient reads its input rows in place, a chunk of images
      // at a time (here with a partial strip of 40 channels, dilation, groups and batches spread
      // over the threads).
      {"weight grad by row runs: 3x3 pad 1", {5, 40, 9, 10}, {8, 40, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"weight grad by row runs: dilation 2, groups 2",
       {7, 64, 11, 8},
       {12, 32, 3, 3},
       Conv2dParams::of(1, 1, 2, 1, 2, 1, 2)},
      {"weight grad by row runs: 5x5, batch of 9", {9, 33, 6, 7}, {5, 33, 5, 5}, Conv2dParams::of(1, 1, 2, 2, 1, 1, 1)},
      // No input channels: y is the bias, gx and gw are empty (the GEMMs have K = 0 or N = 0).
      {"no input channels", {2, 0, 5, 5}, {3, 0, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
  };
  // Random geometries (fixed seed) mixing all of the above: kernels of 1 to 4 taps a side,
  // strides 1 to 3, padding 0 to 3 (beyond the kernel too), dilation 1 or 2, 1 to 3 groups, few
  // input channels per group or 32 and more, batches of 1 to 9.
  std::mt19937 rng(4031);
  auto pick = [&](int lo, int hi) { return int64_t(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  for (int i = 0; i < 60; ++i) {
    const int64_t G = pick(1, 3), Cg = pick(0, 3) == 0 ? pick(32, 40) : pick(1, 6), Og = pick(1, 12);
    const int64_t KH = pick(1, 4), KW = pick(1, 4), sh = pick(1, 3), sw = pick(1, 3), dh = pick(1, 2), dw = pick(1, 2);
    const int64_t ph = pick(0, 3), pw = pick(0, 3), N = pick(1, 9);
    const int64_t H = std::max<int64_t>(1, dh * (KH - 1) + 1 - 2 * ph) + pick(0, 9);
    const int64_t W = std::max<int64_t>(1, dw * (KW - 1) + 1 - 2 * pw) + pick(0, 9);
    cases.push_back({"random", {N, G * Cg, H, W}, {G * Og, Cg, KH, KW}, Conv2dParams::of(sh, sw, ph, pw, dh, dw, G)});
  }
  for (DType t : {DType::f32, DType::f64})
    for (const auto& c : cases) {
      INFO(std::string(dtype_name(t)) << " conv2d " << std::string(c.name) << " x " << c.x << " w " << c.w << " stride "
                                      << c.p.stride_h << "," << c.p.stride_w << " pad " << c.p.pad_h << "," << c.p.pad_w
                                      << " dilation " << c.p.dil_h << "," << c.p.dil_w << " groups " << c.p.groups);
      ConvGeom g = conv_geom(c.x, c.w, c.p);
      Tensor x = urand(c.x, gen, -1, 1, t), w = urand(c.w, gen, -1, 1, t), b = urand({c.w[0]}, gen, -1, 1, t);
      std::vector<double> xv = values(x), wv = values(w), bv = values(b);
      // Forward.
      Tensor y = conv2d(x, w, b, c.p);
      REQUIRE(y.shape() == Shape{g.N, g.O, g.OH, g.OW});
      std::vector<double> want(size_t(y.numel()), 0.0), bound(size_t(y.numel()), 0.0);
      for (int64_t i = 0; i < y.numel(); ++i) want[size_t(i)] = bv[size_t((i / (g.OH * g.OW)) % g.O)];
      conv_terms(g, [&](int64_t yi, int64_t xi, int64_t wi) {
        want[size_t(yi)] += xv[size_t(xi)] * wv[size_t(wi)];
        bound[size_t(yi)] += std::abs(xv[size_t(xi)] * wv[size_t(wi)]);
      });
      int64_t K = (c.x[1] / c.p.groups) * g.KH * g.KW + 1;
      for (size_t i = 0; i < bound.size(); ++i)
        bound[i] =
            2.0 * double(K + 2) * unit_roundoff(t) * (bound[i] + std::abs(bv[(i / size_t(g.OH * g.OW)) % size_t(g.O)]));
      check_within(values(y), want, bound);
      // Backward kernels for a random upstream gradient.
      Tensor gy = urand(y.shape(), gen, -1, 1, t);
      std::vector<double> gyv = values(gy);
      std::vector<double> gx_want(xv.size(), 0.0), gx_b(xv.size(), 0.0), gw_want(wv.size(), 0.0), gw_b(wv.size(), 0.0);
      conv_terms(g, [&](int64_t yi, int64_t xi, int64_t wi) {
        gx_want[size_t(xi)] += gyv[size_t(yi)] * wv[size_t(wi)];
        gx_b[size_t(xi)] += std::abs(gyv[size_t(yi)] * wv[size_t(wi)]);
        gw_want[size_t(wi)] += gyv[size_t(yi)] * xv[size_t(xi)];
        gw_b[size_t(wi)] += std::abs(gyv[size_t(yi)] * xv[size_t(xi)]);
      });
      double kx = 2.0 * double(g.O * g.KH * g.KW + 2) * unit_roundoff(t);
      double kw = 2.0 * double(g.N * g.OH * g.OW + 2) * unit_roundoff(t);
      for (auto& e : gx_b) e = kx * e + 1e-300;
      for (auto& e : gw_b) e = kw * e + 1e-300;
      Tensor gx = full(x.shape(), 1e30, TensorOptions(t));  // poisoned: every element must be written
      Tensor gw = full(w.shape(), 1e30, TensorOptions(t));
      cpu_backend().conv2d_backward_input(gx, gy, w, c.p);
      cpu_backend().conv2d_backward_weight(gw, gy, x, c.p);
      check_within(values(gx), gx_want, gx_b);
      check_within(values(gw), gw_want, gw_b);
    }
}

TEST_CASE("kernels: conv2d forward and weight gradient are bitwise GEMMs over a stored im2col") {
  // The CPU conv2d never stores its unrolled receptive fields ("col"): the GEMMs' packers read
  // them from the (padded) input. The result must be bitwise that of gemm_strided over a col
  // unrolled here: per group, y = W @ col, and for one image gw = gy @ col^T. Cases cover
  // padding, stride, dilation, groups, a padded 1x1, runs of output pixels that wrap across output
  // rows within a packed strip, col with more than one K block (256 rows), few output channels
  // (one A block) and more than 144 (the general loops), pointwise products too thin to pack the
  // weights for, each dtype and instruction set.
  const RestoreGemmIsa restore;
  Generator gen(406);
  const std::vector<ConvCase> cases = {
      {"3x3 pad 1, 13x11 map, two K blocks", {3, 40, 13, 11}, {20, 40, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"stride 2, 150 outputs", {2, 12, 17, 15}, {150, 12, 3, 3}, Conv2dParams::of(2, 2, 1, 1, 1, 1, 1)},
      {"dilation 2, asymmetric", {2, 5, 12, 14}, {7, 5, 3, 5}, Conv2dParams::of(1, 2, 2, 1, 2, 2, 1)},
      {"groups 3, 5x5 map", {9, 9, 5, 5}, {6, 3, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 3)},
      {"1x1 stride 2 padded", {4, 7, 9, 9}, {5, 7, 1, 1}, Conv2dParams::of(2, 2, 1, 1, 1, 1, 1)},
      // A row stride with taps along the row: the padded copy splits rows into column phases.
      {"stride 3 (2 down), dilation 2, unpadded: 3 phases",
       {5, 6, 14, 31},
       {7, 6, 2, 4},
       Conv2dParams::of(2, 3, 0, 0, 2, 2, 1)},
      {"stride 2 along rows only, padding 2, odd width",
       {3, 5, 9, 17},
       {4, 5, 3, 3},
       Conv2dParams::of(1, 2, 2, 2, 1, 1, 1)},
      {"1x1, 4x4 map, batched images", {12, 33, 4, 4}, {9, 33, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      // Maps whose pixels do not fill whole strips: more images per product than
      // images_per_chunk gives (14x14: one image is 196 columns, four are 784 = 24.5 strips).
      {"14x14 map, images batched to fuller strips",
       {8, 6, 14, 14},
       {10, 6, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"1x1, 7x7 map, images batched to fuller strips",
       {12, 20, 7, 7},
       {12, 20, 1, 1},
       Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      // Strips of 32 columns over output rows of 7 and of 5 pixels, images batched: runs of
      // every length from 1 to 7 pixels, which the packer moves in overlapping pieces.
      {"7x7 map, runs of 1 to 7 pixels", {6, 5, 7, 7}, {8, 5, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"4x5 map, runs of 1 to 5 pixels", {9, 4, 4, 5}, {6, 4, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      // 8x8 with more strips of weights than pay for blends: packed with AVX-512, every run a
      // whole row of 8 floats (a single 32-byte move).
      {"8x8 map, 100 outputs, runs of whole rows", {3, 6, 8, 8}, {100, 6, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      // Output rows of whole vectors (16 or 8 values): the GEMM reads col in place, without
      // packing it. Two K blocks with dilation, a split stride-2 copy, a last strip of half a
      // tile, and an A too large to stay in L2 (its K blocks become the outer loop).
      {"in place: 3x3 pad 1, 16x16 map", {2, 20, 16, 16}, {30, 20, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"in place: rows of 32, dilation 2, two K blocks",
       {2, 40, 10, 34},
       {14, 40, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 2, 2, 1)},
      {"in place: stride 2 from a split copy, rows of 16",
       {2, 8, 9, 32},
       {10, 8, 3, 3},
       Conv2dParams::of(2, 2, 1, 1, 1, 1, 1)},
      {"in place: rows of 8, images batched", {6, 12, 8, 8}, {20, 12, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"in place: rows of 8, 24 columns", {1, 12, 3, 8}, {7, 12, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      // Output rows that a vector crosses: it is loaded in two or three pieces, each reaching
      // past its row (into the room around the padded copy at the batch's ends); without padding
      // there is no copy and no room, so such a map is packed as before.
      {"in place: 28x28 map, one channel, vectors in two pieces",
       {2, 1, 28, 28},
       {8, 1, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"in place: rows of 10, vectors in three pieces",
       {3, 6, 10, 10},
       {5, 6, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"in place: one 14x14 image, 196 columns",
       {1, 40, 14, 14},
       {20, 40, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"unpadded rows of 12: no room around x, packed",
       {2, 5, 14, 14},
       {6, 5, 3, 3},
       Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      {"in place: groups 2, 160 outputs, K blocks outer",
       {1, 356, 3, 16},
       {320, 178, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 2)},
      // Thin pointwise products (one image per chunk, under 32 pixels): weights as stored.
      {"1x1, 3x3 map, two images", {2, 40, 3, 3}, {150, 40, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      {"1x1, 1x1 map, one image", {1, 300, 1, 1}, {20, 300, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      // Few output channels: the weight gradient reads its input rows in place (no unrolling),
      // with runs of output rows that cross K blocks, dilated taps, partial channel strips.
      {"weight grad by row runs: 3x3 pad 1, 20x18 map",
       {1, 32, 20, 18},
       {20, 32, 3, 3},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"weight grad by row runs: dilation 2 and 1, 3x5, padding 1 and 2",
       {1, 64, 25, 23},
       {13, 64, 3, 5},
       Conv2dParams::of(1, 1, 1, 2, 2, 1, 1)},
      {"weight grad by row runs: 40 channels, groups 2",
       {1, 80, 12, 21},
       {16, 40, 3, 3},
       Conv2dParams::of(1, 1, 0, 1, 1, 1, 2)},
      {"weight grad by row runs: 3 channels, one output channel",
       {1, 3, 9, 9},
       {1, 3, 2, 2},
       Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
  };
  auto check = [&](const ConvCase& c, const ConvGeom& g, DType t, auto tag) {
    using T = decltype(tag);
    INFO(dtype_name(t));
    const int64_t Cg = g.C / g.G, Og = g.O / g.G, ck = Cg * g.KH * g.KW, ohw = g.OH * g.OW;
    Tensor x = urand(c.x, gen, -1, 1, t), w = urand(c.w, gen, -1, 1, t);
    Tensor y = full({g.N, g.O, g.OH, g.OW}, 1e30, TensorOptions(t));
    cpu_backend().conv2d_forward(y, x, w, Tensor(), c.p);
    const Tensor x1 = x.slice(0, 0, 1, 1).contiguous();
    Tensor gy1 = urand({1, g.O, g.OH, g.OW}, gen, -1, 1, t), gw = full(w.shape(), 1e30, TensorOptions(t));
    cpu_backend().conv2d_backward_weight(gw, gy1, x1, c.p);
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    std::vector<T> col(size_t(ck * ohw)), want_y(size_t(y.numel())), want_gw(size_t(w.numel()));
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t gi = 0; gi < g.G; ++gi) {
        unroll_image(g, xp, n, gi, col.data(), ohw);
        cpu::gemm_strided<T>(Og, ohw, ck, T(1), wp + gi * Og * ck, ck, 1, col.data(), ohw, 1, T(0),
                             want_y.data() + (n * g.O + gi * Og) * ohw, ohw, 1);
        if (n == 0)
          cpu::gemm_strided<T>(Og, ck, ohw, T(1), gy1.data<T>() + gi * Og * ohw, ohw, 1, col.data(), 1, ohw, T(0),
                               want_gw.data() + gi * Og * ck, ck, 1);
      }
    CHECK(values(y) == std::vector<double>(want_y.begin(), want_y.end()));
    CHECK(values(gw) == std::vector<double>(want_gw.begin(), want_gw.end()));
  };
  for_each_isa_and_dtype(cases, check);
}

TEST_CASE("kernels: conv2d's stride-1 input gradient is bitwise the forward conv of gy with the flipped kernel") {
  // With stride 1 (and 32 or more input channels per group) the input gradient runs as a forward
  // conv of gy, its weights packed straight from W, flipped and with in/out channels swapped. It
  // must be bitwise conv2d_forward with that kernel stored (built here), padded by
  // dil*(K-1) - pad: asymmetric kernels and padding, dilation, groups, more than one K block
  // (Og*KH*KW > 256) and more than one 144-row A block, each dtype and instruction set.
  const RestoreGemmIsa restore;
  Generator gen(409);
  const std::vector<ConvCase> cases = {
      {"3x3 pad 1, two K blocks", {3, 40, 9, 7}, {30, 40, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"3x5, pad 0 and 2, dilation 2", {2, 33, 12, 14}, {7, 33, 3, 5}, Conv2dParams::of(1, 1, 0, 2, 2, 2, 1)},
      {"groups 2", {2, 64, 6, 6}, {10, 32, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 2)},
      {"150 input channels, 4x4 maps", {9, 150, 4, 4}, {20, 150, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"16x16 maps, gy read in place", {2, 40, 16, 16}, {24, 40, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"14x14 maps, gy read in two pieces", {3, 32, 14, 14}, {16, 32, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
  };
  auto check = [&](const ConvCase& c, const ConvGeom& g, DType t, auto tag) {
    using T = decltype(tag);
    INFO(dtype_name(t));
    const int64_t Cg = g.C / g.G, Og = g.O / g.G;
    Tensor w = urand(c.w, gen, -1, 1, t), gy = urand({g.N, g.O, g.OH, g.OW}, gen, -1, 1, t);
    Tensor gx = full(c.x, 1e30, TensorOptions(t));
    cpu_backend().conv2d_backward_input(gx, gy, w, c.p);
    Tensor flipped = empty({g.C, Og, g.KH, g.KW}, TensorOptions(t));
    const T* wp = w.data<T>();
    T* fp = flipped.data<T>();
    for (int64_t gi = 0; gi < g.G; ++gi)
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t ci = 0; ci < Cg; ++ci)
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw)
              fp[(((gi * Cg + ci) * Og + o) * g.KH + kh) * g.KW + kw] =
                  wp[(((gi * Og + o) * Cg + ci) * g.KH + g.KH - 1 - kh) * g.KW + g.KW - 1 - kw];
    Conv2dParams fwd = c.p;
    fwd.pad_h = c.p.dil_h * (g.KH - 1) - c.p.pad_h;
    fwd.pad_w = c.p.dil_w * (g.KW - 1) - c.p.pad_w;
    Tensor want = full(c.x, -1e30, TensorOptions(t));
    cpu_backend().conv2d_forward(want, gy, flipped, Tensor(), fwd);
    CHECK(values(gx) == values(want));
  };
  for_each_isa_and_dtype(cases, check);
}

TEST_CASE("kernels: conv2d on non-contiguous inputs and bfloat16") {
  Generator gen(404);
  Conv2dParams p = Conv2dParams::of(1, 1, 1, 1, 1, 1, 1);
  Tensor x = urand({2, 3, 6, 5}, gen), w = urand({4, 3, 3, 3}, gen);
  Tensor ref = conv2d(x, w, Tensor(), p);
  Tensor xt = x.transpose(2, 3).contiguous().transpose(2, 3);
  MINIMA_CHECK_CLOSE(values(conv2d(xt, w, Tensor(), p)), values(ref), 1e-14, 1e-14);
  // bf16: compare with the f32 conv of the same (rounded) values, to bf16 precision.
  Tensor xb = x.to(DType::bf16), wb = w.to(DType::bf16);
  Tensor yb = conv2d(xb, wb, Tensor(), p);
  CHECK(yb.dtype() == DType::bf16);
  Tensor yf = conv2d(xb.to(DType::f32), wb.to(DType::f32), Tensor(), p);
  MINIMA_CHECK_CLOSE(values(yb), values(yf), 1e-2, 8e-3);
}

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------
namespace {
std::vector<double> naive_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, bool is_max, bool include_pad,
                               int64_t& OH, int64_t& OW) {
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  OH = (H + 2 * p - k) / s + 1;
  OW = (W + 2 * p - k) / s + 1;
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int64_t cnt = 0, padded = 0;
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              int64_t h = oh * s - p + i, w = ow * s - p + j;
              // PyTorch counts padded positions inside [-p, H + p) only.
              if (h < H + p && w < W + p) ++padded;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              double v = at(x, {n, c, h, w});
              best = std::max(best, v);
              sum += v;
              ++cnt;
            }
          out.push_back(is_max ? best : sum / double(include_pad ? padded : cnt));
        }
  return out;
}
}  // namespace

TEST_CASE("kernels: max and avg pooling against naive loops") {
  Generator g(405);
  struct C {
    Shape x;
    int64_t k, s, p;
  };
  for (DType t : {DType::f32, DType::f64})
    for (auto c : std::vector<C>{{{2, 3, 8, 8}, 2, 2, 0},
                                 {{2, 2, 7, 9}, 3, 2, 1},
                                 {{1, 2, 5, 5}, 3, 1, 1},
                                 {{1, 1, 6, 7}, 4, 3, 2},
                                 {{3, 2, 5, 4}, 5, 5, 2},
                                 {{1, 1, 1, 1}, 1, 1, 0}}) {
      INFO(std::string(dtype_name(t)) << " pool " << shape_str(c.x) << " k " << c.k << " s " << c.s << " p " << c.p);
      Tensor x = urand(c.x, g, -1, 1, t);
      int64_t OH, OW;
      std::vector<double> want = naive_pool(x, c.k, c.s, c.p, true, true, OH, OW);
      Tensor y = max_pool2d(x, c.k, c.s, c.p);
      CHECK(y.shape() == Shape{c.x[0], c.x[1], OH, OW});
      CHECK(values(y) == want);
      for (bool inc : {true, false}) {
        std::vector<double> aw = naive_pool(x, c.k, c.s, c.p, false, inc, OH, OW);
        MINIMA_CHECK_CLOSE(values(avg_pool2d(x, c.k, c.s, c.p, inc)), aw, 4 * unit_roundoff(t) * c.k * c.k, 0.0);
      }
    }
  // The default stride is the kernel size.
  Tensor x = urand({1, 1, 6, 6}, g);
  CHECK(values(max_pool2d(x, 3)) == values(max_pool2d(x, 3, 3)));
}

namespace {
// avg_pool2d as the CPU kernel defines it, in A (float for float32 and bfloat16, double for
// float64): each output the sum of its window, rows then columns, from a zero, over the divisor;
// each input's gradient the sum, from a zero, of the shares gy / divisor of the outputs whose
// windows hold it, in output order. Results are rounded to dtype t.
template <class A>
void avg_pool_definition(const std::vector<double>& xv, const std::vector<double>& gyv, const Shape& shape, int64_t k,
                         int64_t s, int64_t p, bool include_pad, DType t, std::vector<double>& y,
                         std::vector<double>& gx) {
  const int64_t NC = shape[0] * shape[1], H = shape[2], W = shape[3];
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  auto rounded = [&](A v) { return t == DType::bf16 ? double(float(bf16(float(v)))) : double(v); };
  y.assign(size_t(NC * OH * OW), 0.0);
  std::vector<A> acc(size_t(NC * H * W), A(0));
  for (int64_t pl = 0; pl < NC; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t h0 = oh * s - p, w0 = ow * s - p;
        const int64_t h1 = std::min(h0 + k, H + p), w1 = std::min(w0 + k, W + p);
        const int64_t c0 = std::max<int64_t>(h0, 0), c1 = std::min(h1, H), d0 = std::max<int64_t>(w0, 0),
                      d1 = std::min(w1, W);
        const A div = A(std::max<int64_t>(include_pad ? (h1 - h0) * (w1 - w0) : (c1 - c0) * (d1 - d0), 1));
        const size_t o = size_t((pl * OH + oh) * OW + ow);
        A sum = 0;
        for (int64_t h = c0; h < c1; ++h)
          for (int64_t w = d0; w < d1; ++w) sum += A(xv[size_t((pl * H + h) * W + w)]);
        y[o] = rounded(sum / div);
        const A share = A(gyv[o]) / div;
        for (int64_t h = c0; h < c1; ++h)
          for (int64_t w = d0; w < d1; ++w) acc[size_t((pl * H + h) * W + w)] += share;
      }
  gx.resize(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) gx[i] = rounded(acc[i]);
}
}  // namespace

TEST_CASE("kernels: avg_pool2d sums windows and shares in the definition's order, bitwise") {
  // The kernel takes the windows inside the plane's columns a row at a time, window position by
  // window position (2x2 stride-2 windows in one pass), and the clipped ones at the edges one at
  // a time; it must still round as the plain loop does. Random values, whose float sums depend on
  // their order; rows wide enough for the vectorized loops; overlapping windows, whose input
  // gradients add several shares; padding with and without count_include_pad.
  Generator g(20261130);
  struct C {
    Shape x;
    int64_t k, s, p;
  };
  for (DType t : {DType::f32, DType::f64, DType::bf16})
    for (auto c : std::vector<C>{{{2, 3, 8, 40}, 2, 2, 0},
                                 {{1, 2, 9, 41}, 2, 2, 1},
                                 {{1, 2, 7, 37}, 2, 1, 0},
                                 {{1, 2, 7, 45}, 3, 2, 1},
                                 {{1, 1, 6, 50}, 3, 1, 1},
                                 {{1, 2, 8, 43}, 3, 3, 1},
                                 {{1, 1, 9, 41}, 5, 2, 2},
                                 {{1, 1, 10, 39}, 4, 1, 2},
                                 {{2, 1, 5, 5}, 4, 3, 2}})
      for (bool include_pad : {true, false}) {
        INFO(dtype_name(t), " avg_pool2d ", shape_str(c.x), " k ", c.k, " s ", c.s, " p ", c.p, " include_pad ",
             include_pad);
        Tensor x = urand(c.x, g, -1, 1, t);
        x.requires_grad_(true);
        Tensor y = avg_pool2d(x, c.k, c.s, c.p, include_pad);
        Tensor gy = urand(y.shape(), g, -1, 1, t);
        y.backward(gy);
        std::vector<double> want_y, want_gx;
        if (t == DType::f64)
          avg_pool_definition<double>(values(x), values(gy), c.x, c.k, c.s, c.p, include_pad, t, want_y, want_gx);
        else
          avg_pool_definition<float>(values(x), values(gy), c.x, c.k, c.s, c.p, include_pad, t, want_y, want_gx);
        CHECK(values(y) == want_y);
        CHECK(values(x.grad()) == want_gx);
      }
}

TEST_CASE("kernels: max_pool2d picks the first maximum, or the first NaN, as PyTorch does") {
  // Values drawn from a few levels (many ties), with NaN and -inf sprinkled in; every window
  // shape the kernel treats apart: 2x2 stride 2 (its vectorized rows), 3x3, others, padding, and
  // rows wide enough for the vectorized loop over windows that lie inside the plane.
  // The output must be the window's first maximum in (h, w) order, or its first NaN, and the
  // gradient must reach exactly that element.
  Generator g(20261201);
  struct C {
    Shape x;
    int64_t k, s, p;
    bool wide = false;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (DType t : {DType::f32, DType::f64, DType::bf16})
    for (auto c : std::vector<C>{{{2, 3, 8, 10}, 2, 2, 0},
                                 {{2, 2, 9, 7}, 2, 2, 0},
                                 {{1, 3, 9, 9}, 3, 2, 1},
                                 {{2, 1, 7, 8}, 3, 3, 0},
                                 {{1, 2, 6, 9}, 4, 3, 2},
                                 {{1, 2, 5, 6}, 2, 1, 1},
                                 // Wide rows, so the row-at-once loop over windows inside the
                                 // plane runs its vectorized body: 3x3, 3x3 stride 1, 5x5.
                                 {{1, 2, 7, 45}, 3, 2, 1, true},
                                 {{1, 1, 6, 50}, 3, 1, 0, true},
                                 {{1, 1, 9, 41}, 5, 2, 2, true},
                                 // Stride 2 on float planes: eight outputs in vector lanes, whole
                                 // blocks and a last one gathered lane by lane, with and without
                                 // padding; 2x2 windows that are not the plain unpadded ones.
                                 {{2, 2, 11, 70}, 3, 2, 1, true},
                                 {{1, 3, 9, 64}, 3, 2, 0, true},
                                 {{1, 2, 8, 33}, 2, 2, 1, true}}) {
      INFO(std::string(dtype_name(t)), " pool ", shape_str(c.x), " k ", c.k, " s ", c.s, " p ", c.p);
      const int64_t n = numel_of(c.x);
      std::vector<double> xv(static_cast<size_t>(n), 0.0);
      for (auto& v : xv) {
        const uint64_t r = g.below(20);
        v = r == 0 ? nan : r == 1 ? -inf : double(int64_t(g.below(4)) - 2);  // -2, -1, 0, 1
      }
      Tensor x = from_vector<double>(xv, c.x, TensorOptions(DType::f64)).to(t);
      x.requires_grad_(true);
      Tensor y = max_pool2d(x, c.k, c.s, c.p);
      const int64_t H = c.x[2], W = c.x[3], OH = y.size(2), OW = y.size(3);
      // Distinct upstream gradients, so a gradient routed to the wrong element shows. bfloat16's
      // integers are exact only up to 256, so for the wide rows, whose 105 to 192 outputs
      // overlap, its gradients are random values 1 to 7 instead: their sums stay exact.
      Tensor gy = t == DType::bf16 && c.wide ? add(randint(y.shape(), 7, g).to(t), 1.0)
                                             : add(randperm(y.numel(), g).to(t).reshape(y.shape()), 1.0);
      y.backward(gy);
      std::vector<double> yv = values(y), gyv = values(gy), want_g(size_t(n), 0.0);
      bool all_ok = true;
      for (int64_t pl = 0; pl < c.x[0] * c.x[1]; ++pl)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            double best = 0;
            int64_t at = -1;
            for (int64_t h = std::max<int64_t>(0, oh * c.s - c.p); h < std::min(H, oh * c.s - c.p + c.k); ++h)
              for (int64_t w = std::max<int64_t>(0, ow * c.s - c.p); w < std::min(W, ow * c.s - c.p + c.k); ++w) {
                const double v = xv[size_t((pl * H + h) * W + w)];
                if (at >= 0 && std::isnan(best)) continue;  // the first NaN stays
                if (at < 0 || std::isnan(v) || v > best) {
                  best = v;
                  at = (pl * H + h) * W + w;
                }
              }
            const double got = yv[size_t((pl * OH + oh) * OW + ow)];
            all_ok = all_ok && (std::isnan(best) ? std::isnan(got) : got == best);
            want_g[size_t(at)] += gyv[size_t((pl * OH + oh) * OW + ow)];
          }
      CHECK(all_ok);
      CHECK(values(x.grad()) == want_g);
    }
}

namespace {
// max_pool2d's input gradient as the CPU kernel defines it, in A (float for float32 and
// bfloat16, double for float64): each input's gradient the sum, from a zero and in output order,
// of the gradients of the outputs whose window maximum (the first in window order) it is,
// rounded to dtype t. Windows k x k, stride s, padding p, on [N, C, H, W].
template <class A>
std::vector<double> max_pool_grad_definition(const Tensor& x, const Tensor& gy, int64_t k, int64_t s, int64_t p,
                                             DType t) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = gy.size(2), OW = gy.size(3);
  std::vector<A> acc(size_t(x.numel()), A(0));
  const std::vector<double> gyv = values(gy);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double best = -1e300;
          int64_t bi = -1;
          for (int64_t h = std::max<int64_t>(0, oh * s - p); h < std::min<int64_t>(H, oh * s - p + k); ++h)
            for (int64_t w = std::max<int64_t>(0, ow * s - p); w < std::min<int64_t>(W, ow * s - p + k); ++w)
              if (at(x, {n, c, h, w}) > best) {
                best = at(x, {n, c, h, w});
                bi = ((n * C + c) * H + h) * W + w;
              }
          acc[size_t(bi)] += A(gyv[size_t(((n * C + c) * OH + oh) * OW + ow)]);
        }
  std::vector<double> out(acc.size());
  for (size_t i = 0; i < acc.size(); ++i)
    out[i] = t == DType::bf16 ? double(float(bf16(float(acc[i])))) : double(acc[i]);
  return out;
}
}  // namespace

TEST_CASE("kernels: max_pool2d backward routes each gradient to its window's maximum, bitwise") {
  // Overlapping windows (3x3, stride 2 and stride 1), so that an input may win several outputs
  // (up to nine) and its gradient is a sum whose rounding depends on its order; float32 and
  // float64 sum in the gradient's own memory, bf16 in float.
  Generator g(406);
  for (DType t : {DType::f32, DType::f64, DType::bf16})
    for (int64_t stride : {2, 1}) {
      INFO(dtype_name(t), " stride ", stride);
      Tensor x = distinct({2, 2, 5, 6}, g, t);
      x.requires_grad_(true);
      Tensor y = max_pool2d(x, 3, stride, 1);
      Tensor gy = urand(y.shape(), g, -1, 1, t);
      y.backward(gy);
      const std::vector<double> want = t == DType::f64 ? max_pool_grad_definition<double>(x, gy, 3, stride, 1, t)
                                                       : max_pool_grad_definition<float>(x, gy, 3, stride, 1, t);
      CHECK(values(x.grad()) == want);
    }
}

TEST_CASE("kernels: adaptive_avg_pool2d against naive loops") {
  Generator g(407);
  struct C {
    Shape x;
    int64_t oh, ow;
  };
  for (DType t : {DType::f32, DType::f64})
    for (auto c : std::vector<C>{{{2, 3, 7, 5}, 3, 2},
                                 {{1, 2, 10, 10}, 3, 3},
                                 {{1, 1, 5, 5}, 5, 5},
                                 {{2, 2, 4, 6}, 1, 1},
                                 {{1, 1, 3, 2}, 5, 4},
                                 {{1, 2, 13, 11}, 4, 6}}) {
      INFO(std::string(dtype_name(t)) << " adaptive " << shape_str(c.x) << " -> " << c.oh << "x" << c.ow);
      Tensor x = urand(c.x, g, -1, 1, t);
      int64_t H = c.x[2], W = c.x[3];
      std::vector<double> want;
      for (int64_t n = 0; n < c.x[0]; ++n)
        for (int64_t ch = 0; ch < c.x[1]; ++ch)
          for (int64_t i = 0; i < c.oh; ++i)
            for (int64_t j = 0; j < c.ow; ++j) {
              // Window [floor(i*H/oh), ceil((i+1)*H/oh)), computed in floating point here.
              int64_t h0 = int64_t(std::floor(double(i) * H / c.oh)), h1 = int64_t(std::ceil(double(i + 1) * H / c.oh));
              int64_t w0 = int64_t(std::floor(double(j) * W / c.ow)), w1 = int64_t(std::ceil(double(j + 1) * W / c.ow));
              double s = 0;
              for (int64_t h = h0; h < h1; ++h)
                for (int64_t w = w0; w < w1; ++w) s += at(x, {n, ch, h, w});
              want.push_back(s / double((h1 - h0) * (w1 - w0)));
            }
      Tensor y = adaptive_avg_pool2d(x, c.oh, c.ow);
      CHECK(y.shape() == Shape{c.x[0], c.x[1], c.oh, c.ow});
      MINIMA_CHECK_CLOSE(values(y), want, 1e-300, 8 * unit_roundoff(t) * double(H * W));
    }
}

// ---------------------------------------------------------------------------------------------
// Batch norm
// ---------------------------------------------------------------------------------------------
TEST_CASE("kernels: batch_norm training statistics and running-stat update (PyTorch conventions)") {
  Generator g(408);
  for (DType t : {DType::f32, DType::f64})
    for (Shape s : {Shape{4, 3, 5, 2}, Shape{7, 5}, Shape{2, 2, 1, 3}}) {
      INFO(std::string(dtype_name(t)) << " batch_norm " << shape_str(s));
      int64_t N = s[0], C = s[1], S = s.size() == 4 ? s[2] * s[3] : 1, M = N * S;
      Tensor x = urand(s, g, -2, 3, t);
      Tensor w = urand({C}, g, 0.5, 1.5, t), b = urand({C}, g, -1, 1, t);
      Tensor rm0 = urand({C}, g, -1, 1, t), rv0 = urand({C}, g, 0.5, 2, t);
      Tensor rm = rm0.clone(), rv = rv0.clone();
      const double momentum = 0.1, eps = 1e-5;
      Tensor y = batch_norm(x, w, b, rm, rv, true);  // default momentum and eps
      std::vector<double> xv = values(x.reshape({N, C, S})), yv = values(y.reshape({N, C, S}));
      std::vector<double> wv = values(w), bv = values(b), rm0v = values(rm0), rv0v = values(rv0);
      std::vector<double> rmv = values(rm), rvv = values(rv);
      double tol = t == DType::f32 ? 2e-5 : 1e-12;
      for (int64_t c = 0; c < C; ++c) {
        double mean = 0, ss = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < S; ++i) mean += xv[size_t((n * C + c) * S + i)];
        mean /= double(M);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < S; ++i) ss += std::pow(xv[size_t((n * C + c) * S + i)] - mean, 2);
        double biased = ss / double(M), unbiased = ss / double(M - 1);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < S; ++i) {
            size_t k = size_t((n * C + c) * S + i);
            double want = (xv[k] - mean) / std::sqrt(biased + eps) * wv[size_t(c)] + bv[size_t(c)];
            CHECK(yv[k] == doctest::Approx(want).epsilon(tol).scale(1.0));
          }
        CHECK(rmv[size_t(c)] ==
              doctest::Approx((1 - momentum) * rm0v[size_t(c)] + momentum * mean).epsilon(tol).scale(1.0));
        CHECK(rvv[size_t(c)] ==
              doctest::Approx((1 - momentum) * rv0v[size_t(c)] + momentum * unbiased).epsilon(tol).scale(1.0));
      }
      // The saved statistics of the kernel: batch mean and 1 / sqrt(biased var + eps).
      Tensor x4 = x.reshape({N, C, s.size() == 4 ? s[2] : 1, s.size() == 4 ? s[3] : 1}).contiguous();
      DType st = t == DType::f64 ? DType::f64 : DType::f32;
      Tensor sm = empty({C}, TensorOptions(st)), si = empty({C}, TensorOptions(st)), yk = empty_like(x4);
      cpu_backend().batch_norm_forward_train(yk, sm, si, x4, w, b, Tensor(), Tensor(), 0.3, 1e-3);
      std::vector<double> smv = values(sm), siv = values(si);
      for (int64_t c = 0; c < C; ++c) {
        double mean = 0, ss = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < S; ++i) mean += xv[size_t((n * C + c) * S + i)];
        mean /= double(M);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < S; ++i) ss += std::pow(xv[size_t((n * C + c) * S + i)] - mean, 2);
        CHECK(smv[size_t(c)] == doctest::Approx(mean).epsilon(tol).scale(1.0));
        CHECK(siv[size_t(c)] == doctest::Approx(1.0 / std::sqrt(ss / double(M) + 1e-3)).epsilon(tol));
      }
    }
}

TEST_CASE("kernels: batch_norm running stats converge to the data's statistics") {
  // Repeated training steps on batches from one distribution: running_mean -> mean,
  // running_var -> variance (the unbiased estimate makes it unbiased on average).
  Generator g(409);
  Tensor rm = zeros({2}, f64()), rv = ones({2}, f64());
  for (int step = 0; step < 200; ++step) {
    Tensor x = add(mul(randn({16, 2, 2, 2}, g, f64()), 3.0), 5.0);  // mean 5, var 9
    batch_norm(x, Tensor(), Tensor(), rm, rv, true, 0.1);
  }
  for (double m : values(rm)) CHECK(m == doctest::Approx(5.0).epsilon(0.05));
  for (double v : values(rv)) CHECK(v == doctest::Approx(9.0).epsilon(0.25));
}

TEST_CASE("kernels: batch_norm evaluation uses the running statistics") {
  Generator g(410);
  for (DType t : {DType::f32, DType::f64}) {
    Tensor x = urand({3, 4, 2, 3}, g, -2, 2, t);
    Tensor w = urand({4}, g, 0.5, 1.5, t), b = urand({4}, g, -1, 1, t);
    Tensor rm = urand({4}, g, -1, 1, t), rv = urand({4}, g, 0.5, 2, t);
    std::vector<double> rmb = values(rm), rvb = values(rv);
    double tol = t == DType::f32 ? 1e-5 : 1e-12;
    for (bool affine : {true, false}) {
      Tensor y = batch_norm(x, affine ? w : Tensor(), affine ? b : Tensor(), rm, rv, false);
      std::vector<double> wv = values(w), bv = values(b);
      for (int64_t i = 0; i < x.numel(); ++i) {
        auto idx = unravel(i, x.shape());
        size_t c = size_t(idx[1]);
        double want = (at(x, idx) - rmb[c]) / std::sqrt(rvb[c] + 1e-5);
        if (affine) want = want * wv[c] + bv[c];
        CHECK(at(y, idx) == doctest::Approx(want).epsilon(tol).scale(1.0));
      }
    }
    CHECK(values(rm) == rmb);  // evaluation never touches the running stats
    CHECK(values(rv) == rvb);
    // With autograd on, the composed path gives the same values as the fused kernel.
    Tensor xl = x.clone();
    xl.requires_grad_(true);
    MINIMA_CHECK_CLOSE(values(batch_norm(xl, w, b, rm, rv, false)), values(batch_norm(x, w, b, rm, rv, false)), 1e-6,
                       1e-5);
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax family, reductions, elementwise math, gather
// ---------------------------------------------------------------------------------------------
TEST_CASE("kernels: log_softmax against a naive log-sum-exp") {
  Generator g(411);
  for (DType t : {DType::f32, DType::f64})
    for (double scale : {1.0, 50.0})
      for (int64_t d : {0, 1, 2}) {
        INFO(std::string(dtype_name(t)) << " dim " << d << " scale " << scale);
        Tensor x = urand({4, 7, 5}, g, -scale, scale, t);
        if (scale > 10) x = add(x, 300.0);  // large offsets must not overflow
        Tensor y = log_softmax(x, d);
        std::vector<double> want(size_t(x.numel()));
        for (int64_t i = 0; i < x.numel(); ++i) {
          auto idx = unravel(i, x.shape());
          double m = -1e300;
          for (int64_t k = 0; k < x.size(d); ++k) {
            auto j = idx;
            j[size_t(d)] = k;
            m = std::max(m, at(x, j));
          }
          double s = 0;
          for (int64_t k = 0; k < x.size(d); ++k) {
            auto j = idx;
            j[size_t(d)] = k;
            s += std::exp(at(x, j) - m);
          }
          want[size_t(i)] = at(x, idx) - m - std::log(s);
        }
        double tol = t == DType::f32 ? 2e-6 * (1 + scale) : 1e-13 * (1 + scale);
        MINIMA_CHECK_CLOSE(values(y), want, tol, 0.0);
        // softmax sums to one along the dim.
        for (double v : values(sum(softmax(x, d), {d})))
          CHECK(v == doctest::Approx(1.0).epsilon(t == DType::f32 ? 1e-5 : 1e-12));
      }
}

TEST_CASE("kernels: log_softmax keeps log(sum) against a maximum far larger than it") {
  // x - (m + log s) rounds log s away once m is large: two tied logits of 1e30 gave
  // log-probabilities 0 and probabilities 1, summing to 2. (x - m) - log s, as PyTorch computes it,
  // gives -log 2 and 1/2 exactly; so do logits of 1e8, where float32's ulp is 8.
  for (DType t : {DType::f32, DType::f64})
    for (double big : {1e30, 1e8}) {
      CAPTURE(dtype_name(t));
      CAPTURE(big);
      Tensor x = from_vector<double>({big, 1.0, -1.0, big, big - 1e-3 * big}, {1, 5}, TensorOptions(t));
      const std::vector<double> y = values(log_softmax(x, 1)), p = values(softmax(x, 1));
      CHECK(y[0] == doctest::Approx(-std::log(2.0)).epsilon(1e-6));
      CHECK(y[3] == y[0]);
      CHECK(p[0] == doctest::Approx(0.5).epsilon(1e-6));
      CHECK(p[0] + p[1] + p[2] + p[3] + p[4] == doctest::Approx(1.0).epsilon(1e-6));
    }
}

namespace {
// exp_f32's reference: the double exp rounded to float. `exp_matches` asks for the same bits, or
// NaN for NaN.
float want_exp(float t) { return float(std::exp(double(t))); }
bool exp_matches(float got, float want) {
  uint32_t g, w;
  std::memcpy(&g, &got, sizeof g);
  std::memcpy(&w, &want, sizeof w);
  return std::isnan(want) ? std::isnan(got) : g == w;
}
}  // namespace

TEST_CASE("kernels: exp of float32 is the exponential in double rounded once") {
  // The vector loop (AVX2 and AVX-512) and the portable code against std::exp in double rounded
  // to float: they must agree bit for bit, and with the reference exactly (over every one of the
  // 2^32 floats they do: the skipped test below). Special values, both ends of the float range,
  // the 128 hardest cases to round, random bit patterns and random values inside the range.
  std::mt19937 rng(4201);
  std::vector<float> x = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          1e-45f,
                          -1e-45f,
                          1e-30f,
                          0.5f,
                          -0.5f,
                          88.72283935546875f,
                          std::nextafter(88.72283935546875f, 100.0f),
                          88.7f,
                          89.0f,
                          100.0f,
                          -87.33654f,
                          -100.0f,
                          -103.97208f,
                          -103.9721f,
                          -104.0f,
                          -110.0f,
                          1e30f,
                          -1e30f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::lowest(),
                          std::numeric_limits<float>::denorm_min()};
  x.insert(x.end(), std::begin(testing::kExpHardCases), std::end(testing::kExpHardCases));
  for (int i = 0; i < 100000; ++i) {
    const uint32_t u = uint32_t(rng());
    float f;
    std::memcpy(&f, &u, sizeof f);
    x.push_back(f);
    x.push_back(std::uniform_real_distribution<float>(-105.0f, 90.0f)(rng));
  }
  RestoreGemmIsa restore;  // exp_f32 runs AVX-512 or AVX2 as the GEMM does
  for (cpu::GemmIsa isa : {cpu::GemmIsa::avx2, cpu::GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) {
      MESSAGE("skipped ", cpu::gemm_isa_name(isa), ": this CPU lacks it");
      continue;
    }
    cpu::set_gemm_isa(isa);
    INFO(cpu::gemm_isa_name(isa));
    for (float shift : {0.0f, 0.75f, -3.5f, 80.0f}) {
      INFO("shift " << shift);
      std::vector<float> y(x.size());
      cpu::exp_f32(x.data(), shift, y.data(), int64_t(x.size()));
      int64_t wrong = 0, portable_differs = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        const float t = x[i] - shift;
        wrong += !exp_matches(y[i], want_exp(t));
        portable_differs += !exp_matches(y[i], cpu::exp_f32_portable(t));
      }
      CHECK(wrong == 0);
      CHECK(portable_differs == 0);
    }
    // Every tail length, at every alignment: the values past n stay as they were.
    for (int64_t off = 0; off < 16; ++off)
      for (int64_t n = 0; n <= 33; ++n) {
        std::vector<float> y(64, 7.0f);
        cpu::exp_f32(x.data() + 30 + off, 0.0f, y.data() + off, n);
        int64_t wrong = 0;
        for (int64_t i = 0; i < 64; ++i) {
          const bool inside = i >= off && i < off + n;
          wrong += !exp_matches(y[size_t(i)], inside ? want_exp(x[size_t(30 + i)]) : 7.0f);
        }
        CHECK_MESSAGE(wrong == 0, "offset ", off, ", ", n, " values");
      }
    // In place.
    std::vector<float> z(x.begin(), x.begin() + 1001);
    cpu::exp_f32(z.data(), 0.0f, z.data(), int64_t(z.size()));
    int64_t wrong = 0;
    for (size_t i = 0; i < z.size(); ++i) wrong += !exp_matches(z[i], want_exp(x[i]));
    CHECK(wrong == 0);
  }
}

// Every float, for the claim in kernels/cpu/exp.h: about 25 s an instruction set and 30 s for
// the portable form on two cores, so it is skipped unless asked for:
//   build/test_core -tc="kernels: exp of every float*" --no-skip
TEST_CASE("kernels: exp of every float32 is the exponential in double rounded once" * doctest::skip(true)) {
  auto check_all = [](auto&& exp_chunk) {
    constexpr int64_t kChunk = int64_t(1) << 16;
    int64_t wrong = 0;
    float first_wrong = std::numeric_limits<float>::quiet_NaN();  // one wrong input, for the message
#pragma omp parallel for reduction(+ : wrong) schedule(dynamic, 16)
    for (int64_t c = 0; c < (int64_t(1) << 32) / kChunk; ++c) {
      std::vector<float> x(kChunk), y(kChunk);
      for (int64_t i = 0; i < kChunk; ++i) {
        const uint32_t u = uint32_t(c * kChunk + i);
        std::memcpy(&x[size_t(i)], &u, sizeof u);
      }
      exp_chunk(x.data(), y.data(), kChunk);
      for (int64_t i = 0; i < kChunk; ++i) {
        if (exp_matches(y[size_t(i)], want_exp(x[size_t(i)]))) continue;
        ++wrong;
#pragma omp critical
        if (std::isnan(first_wrong)) first_wrong = x[size_t(i)];
      }
    }
    char hex[32];
    std::snprintf(hex, sizeof hex, "%a", double(first_wrong));  // exact, to paste into a test
    CHECK_MESSAGE(wrong == 0, wrong, " floats wrong, one of them ", hex);
  };
  RestoreGemmIsa restore;
  for (cpu::GemmIsa isa : {cpu::GemmIsa::avx2, cpu::GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    INFO(cpu::gemm_isa_name(isa));
    check_all([](const float* x, float* y, int64_t n) { cpu::exp_f32(x, 0.0f, y, n); });
  }
  INFO("portable");
  check_all([](const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = cpu::exp_f32_portable(x[i]);
  });
}

TEST_CASE("kernels: log_softmax gives the same bits along rows and along a strided dim") {
  // A contiguous dim takes exp_f32's vector loop in chunks, a strided one value by value: the
  // two must agree bitwise, forward and backward, on rows shorter and longer than a chunk.
  Generator g(4202);
  for (DType t : {DType::f32, DType::bf16, DType::f64})
    for (int64_t D : {1, 7, 8, 255, 256, 257, 1000}) {
      INFO(std::string(dtype_name(t)) << " D " << D);
      const int64_t N = D < 100 ? 300 : 5;  // short rows share exp calls: several calls' worth
      Tensor x = urand({N, D}, g, -20, 20, t);
      Tensor gy = urand({N, D}, g, -1, 1, t);
      Tensor xr = x.clone(), xc = x.t().contiguous();  // xc: [D, N], the same values down columns
      xr.requires_grad_(true);
      xc.requires_grad_(true);
      Tensor yr = log_softmax(xr, 1), yc = log_softmax(xc, 0);
      CHECK(values(yr) == values(yc.t()));
      yr.backward(gy);
      yc.backward(gy.t().contiguous());
      CHECK(values(xr.grad()) == values(xc.grad().t()));
      // And both near the log-sum-exp in double.
      if (t == DType::bf16) continue;
      const std::vector<double> xv = values(x), yv = values(yr);
      for (int64_t i = 0; i < N; ++i) {
        double m = -1e300, s = 0;
        for (int64_t d = 0; d < D; ++d) m = std::max(m, xv[size_t(i * D + d)]);
        for (int64_t d = 0; d < D; ++d) s += std::exp(xv[size_t(i * D + d)] - m);
        for (int64_t d = 0; d < D; ++d) {
          const double want = xv[size_t(i * D + d)] - m - std::log(s);
          CHECK(yv[size_t(i * D + d)] == doctest::Approx(want).epsilon(t == DType::f32 ? 2e-6 : 1e-13).scale(1.0));
        }
      }
    }
}

TEST_CASE("kernels: cross_entropy and nll_loss against naive formulas") {
  Generator g(412);
  for (DType t : {DType::f32, DType::f64}) {
    Tensor logits = urand({9, 6}, g, -4, 4, t);
    Tensor target = randint({9}, 6, g);
    std::vector<int64_t> tv = target.to_vector<int64_t>();
    double want = 0;
    for (int64_t i = 0; i < 9; ++i) {
      double m = -1e300, s = 0;
      for (int64_t c = 0; c < 6; ++c) m = std::max(m, at(logits, {i, c}));
      for (int64_t c = 0; c < 6; ++c) s += std::exp(at(logits, {i, c}) - m);
      want += -(at(logits, {i, tv[size_t(i)]}) - m - std::log(s));
    }
    want /= 9;
    double tol = t == DType::f32 ? 1e-5 : 1e-13;
    CHECK(cross_entropy(logits, target).item() == doctest::Approx(want).epsilon(tol));
    CHECK(nll_loss(log_softmax(logits, 1), target).item() == doctest::Approx(want).epsilon(tol));
    CHECK(count_correct(logits, target) >= 0);
    Tensor bx = urand({5, 3}, g, -30, 30, t), by = urand({5, 3}, g, 0, 1, t);
    double bce = 0;
    for (int64_t i = 0; i < 15; ++i) {
      auto idx = unravel(i, {5, 3});
      double x = at(bx, idx), y = at(by, idx);
      bce += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
    }
    CHECK(binary_cross_entropy_with_logits(bx, by).item() == doctest::Approx(bce / 15).epsilon(tol));
    Tensor ma = urand({4, 5}, g, -1, 1, t), mb = urand({4, 5}, g, -1, 1, t);
    double mse = 0;
    std::vector<double> av = values(ma), bv = values(mb);
    for (size_t i = 0; i < av.size(); ++i) mse += (av[i] - bv[i]) * (av[i] - bv[i]);
    CHECK(mse_loss(ma, mb).item() == doctest::Approx(mse / 20).epsilon(tol));
  }
}

TEST_CASE("kernels: count_correct counts argmax hits") {
  Tensor logits = from_vector<float>({0.1f, 0.9f, 0.0f, 2.0f, 1.0f, 0.5f, 0.2f, 0.3f, 0.4f}, {3, 3}, f32());
  CHECK(count_correct(logits, from_vector<int64_t>({1, 0, 2}, {3}, TensorOptions(DType::i64))) == 3);
  CHECK(count_correct(logits, from_vector<int64_t>({0, 0, 1}, {3}, TensorOptions(DType::i64))) == 1);
}

TEST_CASE("kernels: reductions against naive loops on strided inputs") {
  Generator g(413);
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}};
  for (DType t : {DType::f32, DType::f64}) {
    Tensor base = urand({5, 6, 7}, g, -1, 1, t);
    for (Tensor x : {base, base.permute({2, 0, 1}), base.slice(1, 1, 6, 2)}) {
      for (const auto& dims : dim_sets) {
        INFO(std::string(dtype_name(t)) << " shape " << shape_str(x.shape()) << " dims " << shape_str(dims));
        std::vector<bool> red(3, dims.empty());
        for (int64_t d : dims) red[size_t(d)] = true;
        Shape os;
        for (int64_t d = 0; d < 3; ++d) os.push_back(red[size_t(d)] ? 1 : x.size(d));
        int64_t on = numel_of(os);
        std::vector<double> s(size_t(on), 0.0), mx(size_t(on), -1e300), mn(size_t(on), 1e300), sq(size_t(on), 0.0);
        std::vector<int64_t> cnt(size_t(on), 0);
        for (int64_t i = 0; i < x.numel(); ++i) {
          auto idx = unravel(i, x.shape());
          auto oi = idx;
          for (int64_t d = 0; d < 3; ++d)
            if (red[size_t(d)]) oi[size_t(d)] = 0;
          int64_t o = (oi[0] * os[1] + oi[1]) * os[2] + oi[2];
          double v = at(x, idx);
          s[size_t(o)] += v;
          mx[size_t(o)] = std::max(mx[size_t(o)], v);
          mn[size_t(o)] = std::min(mn[size_t(o)], v);
          ++cnt[size_t(o)];
        }
        std::vector<double> avg(s);
        for (size_t i = 0; i < avg.size(); ++i) avg[i] /= double(cnt[i]);
        for (int64_t i = 0; i < x.numel(); ++i) {
          auto idx = unravel(i, x.shape());
          for (int64_t d = 0; d < 3; ++d)
            if (red[size_t(d)]) idx[size_t(d)] = 0;
          int64_t o = (idx[0] * os[1] + idx[1]) * os[2] + idx[2];
          sq[size_t(o)] += std::pow(at(x, unravel(i, x.shape())) - avg[size_t(o)], 2);
        }
        std::vector<double> vr(sq);
        for (size_t i = 0; i < vr.size(); ++i) vr[i] /= double(cnt[i] - 1);
        double tol = t == DType::f32 ? 1e-6 : 1e-13;
        Tensor rs = sum(x, dims, true);
        CHECK(rs.shape() == os);
        MINIMA_CHECK_CLOSE(values(rs), s, tol, tol);
        MINIMA_CHECK_CLOSE(values(mean(x, dims, true)), avg, tol, tol);
        CHECK(values(max(x, dims, true)) == mx);
        CHECK(values(min(x, dims, true)) == mn);
        MINIMA_CHECK_CLOSE(values(var(x, dims, true)), vr, 10 * tol, 10 * tol);
        // keepdim = false drops exactly the reduced dims.
        Shape dropped;
        for (int64_t d = 0; d < 3; ++d)
          if (!red[size_t(d)]) dropped.push_back(x.size(d));
        CHECK(sum(x, dims).shape() == dropped);
      }
      // argmax / argmin along each dim.
      for (int64_t d = 0; d < 3; ++d) {
        Tensor am = argmax(x, d), an = argmin(x, d);
        CHECK(am.dtype() == DType::i64);
        std::vector<int64_t> amv = am.to_vector<int64_t>(), anv = an.to_vector<int64_t>();
        Shape rest = x.shape();
        rest.erase(rest.begin() + d);
        for (int64_t i = 0; i < numel_of(rest); ++i) {
          auto r = unravel(i, rest);
          std::vector<int64_t> idx = r;
          idx.insert(idx.begin() + d, 0);
          int64_t best = 0, worst = 0;
          for (int64_t k = 1; k < x.size(d); ++k) {
            idx[size_t(d)] = k;
            double v = at(x, idx);
            auto bi = idx, wi = idx;
            bi[size_t(d)] = best;
            wi[size_t(d)] = worst;
            if (v > at(x, bi)) best = k;
            if (v < at(x, wi)) worst = k;
          }
          CHECK(amv[size_t(i)] == best);
          CHECK(anv[size_t(i)] == worst);
        }
      }
    }
  }
  // Integer sums are exact and give int64.
  Tensor iv = from_vector<int64_t>({(int64_t(1) << 40), 3, -5, 7}, {2, 2}, TensorOptions(DType::i64));
  CHECK(sum(iv).dtype() == DType::i64);
  CHECK(sum(iv).to_vector<int64_t>()[0] == (int64_t(1) << 40) + 5);
  Tensor u = full({300}, 255, TensorOptions(DType::u8));
  CHECK(sum(u).to_vector<int64_t>()[0] == 300 * 255);
}

namespace {
// The definition of a CPU float sum (kernels/cpu/lane_sum.h), written out: the terms in order go
// round-robin to 16 double accumulators, combined by a pairwise tree.
double lane_sum(const std::vector<double>& terms) {
  double lane[16] = {};
  for (size_t m = 0; m < terms.size(); ++m) lane[m % 16] += terms[m];
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lane[j] = lane[j] + lane[j + w];
  return lane[0];
}
// How the kernel stores a sum: double -> the accumulate type (float for bf16) -> the dtype.
double round_sum(double v, DType t) {
  return values(full({1}, t == DType::f64 ? v : double(float(v)), TensorOptions(t)))[0];
}
}  // namespace

TEST_CASE("kernels: LaneSum's vector loop over floats is bitwise its add, on either instruction set") {
  // add_floats (and lane_sum_of, add_values) keep the lanes in registers through intrinsics; the
  // lanes must end as add() leaves them, whatever lane a run starts at and however long it is.
  // Terms of mixed magnitude, so that every lane's sum rounds.
  using cpu::GemmIsa;
  const RestoreGemmIsa restore;
  std::mt19937 rng(20261202);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-30, 30), len(0, 150), coin(0, 1);
  std::vector<float> v(600);
  for (float& x : v) x = std::ldexp(coin(rng) ? mant(rng) : -mant(rng), expo(rng));
  for (GemmIsa isa : {GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    cpu::set_gemm_isa(isa);
    INFO(cpu::gemm_isa_name(isa));
    for (int trial = 0; trial < 200; ++trial) {
      cpu::LaneSum a, b;
      int64_t at = 0;
      for (int run = 0; run < 4; ++run) {
        const int64_t n = std::min<int64_t>(len(rng), int64_t(v.size()) - at);
        const float* p = v.data() + at;
        a.add(n, [&](int64_t i) { return double(p[i]); });
        b.add_floats(p, n);
        at += n;
      }
      for (int64_t j = 0; j < cpu::kLanes; ++j) {  // the lanes' bits (finite sums: == and the sign)
        CHECK(a.lane[j] == b.lane[j]);
        CHECK(std::signbit(a.lane[j]) == std::signbit(b.lane[j]));
      }
      CHECK(a.next == b.next);
      CHECK(a.total() == b.total());
    }
    for (int64_t n = 0; n <= 70; ++n)
      CHECK(cpu::lane_sum_of(v.data() + 3, n) == cpu::lane_sum(n, [&](int64_t i) { return double(v[size_t(3 + i)]); }));
    // Rows side by side (row_lane_sums: groups of four, pairs with AVX2, and what is left), each
    // row bitwise its own lane sum; rows overlap and start anywhere in v.
    for (int64_t count : {1, 2, 3, 4, 5, 7, 9})
      for (int64_t n : {0, 1, 15, 16, 17, 33, 100, 131}) {
        INFO("rows ", count, " of ", n);
        std::vector<const float*> rows(static_cast<size_t>(count));
        for (int64_t r = 0; r < count; ++r) rows[size_t(r)] = v.data() + (r * 37) % 400;
        std::vector<double> sums(static_cast<size_t>(count), 0.0);
        cpu::row_lane_sums(rows.data(), count, n, sums.data());
        for (int64_t r = 0; r < count; ++r)
          CHECK(sums[size_t(r)] == cpu::lane_sum(n, [&](int64_t i) { return double(rows[size_t(r)][i]); }));
      }
    // Through sum(): a contiguous float block along the last dim takes row_lane_sums.
    Generator g(1202);
    for (int64_t n : {5, 16, 1000}) {
      Tensor x = urand({11, n}, g, -1, 3, DType::f32);
      const std::vector<double> xv = values(x), got = values(sum(x, {1}));
      for (int64_t r = 0; r < 11; ++r)
        CHECK(got[size_t(r)] == double(float(cpu::lane_sum(n, [&](int64_t i) { return xv[size_t(r * n + i)]; }))));
    }
  }
}

TEST_CASE("kernels: float sums are 16-lane sums in row-major order, whatever the strides") {
  // The definition (lane_sum above): the reduced block's values in row-major order go round-robin
  // to 16 double accumulators, combined by a pairwise tree. Each output must match it bitwise, and
  // a strided view must sum bitwise like its contiguous copy.
  Generator g(20261129);
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    INFO(dtype_name(t));
    // [7, 9, 53] stored as a permutation of a [53, 7, 9] tensor: every dim is strided.
    Tensor base = urand({53, 7, 9}, g, -1, 3, t);
    Tensor x = base.permute({1, 2, 0});
    REQUIRE(!x.is_contiguous());
    std::vector<double> xv = values(x);  // row-major order of x's logical shape
    auto round = [&](double v) { return round_sum(v, t); };
    // All dims: one block of 3339 values.
    CHECK(values(sum(x))[0] == round(lane_sum(xv)));
    // The last dim: 63 blocks of 53, each a row of x.
    std::vector<double> want;
    want.reserve(63);
    for (size_t r = 0; r < 63; ++r)
      want.push_back(round(lane_sum({xv.begin() + long(r * 53), xv.begin() + long(r * 53 + 53)})));
    CHECK(values(sum(x, {2})) == want);
    // Dims 0 and 2 (as a convolution's bias gradient sums over N, H, W): per j, the values
    // x[i, j, k] in (i, k) order.
    want.clear();
    for (size_t j = 0; j < 9; ++j) {
      std::vector<double> terms;
      for (size_t i = 0; i < 7; ++i)
        for (size_t k = 0; k < 53; ++k) terms.push_back(xv[(i * 9 + j) * 53 + k]);
      want.push_back(round(lane_sum(terms)));
    }
    CHECK(values(sum(x, {0, 2})) == want);
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}})
      CHECK(values(sum(x, dims)) == values(sum(x.contiguous(), dims)));
    // A reduced dim of size 1 adds no term and leaves the order alone.
    CHECK(values(sum(x.unsqueeze(1), {0, 1, 3})) == values(sum(x, {0, 2})));
    CHECK(values(sum(x.unsqueeze(3), {0, 2, 3})) == values(sum(x, {0, 2})));
  }
}

TEST_CASE("kernels: float sums over leading dims and over long runs keep the 16-lane definition") {
  // Two loop orders of reduce.cpp beside the one above: outputs a row at a time when x's innermost
  // kept dim is contiguous (a bias gradient's sum over the batch), in tasks of at most 256
  // columns, some of them threaded; and long contiguous runs added in chunks while the lines
  // ahead are prefetched. Each output must still be the lane sum of its block in row-major order.
  Generator g(20261130);
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    INFO(dtype_name(t));
    auto round = [&](double v) { return round_sum(v, t); };
    // [A, B, C] contiguous; want(keep) lists, for every kept (a, b, c) in row-major order, the lane
    // sum of the x[a, b, c] over the others, in row-major order.
    for (const Shape& shape : {Shape{37, 300}, Shape{5, 6, 300}, Shape{300, 1000}, Shape{6, 4, 700}, Shape{3, 1, 5}}) {
      INFO(shape_str(shape));
      // Thirds fill a double's mantissa, so that float64 sums depend on their order (sums of
      // values drawn as floats would be exact in any order).
      Tensor x = (urand(shape, g, -1, 3, DType::f64) / 3.0).to(t);
      const std::vector<double> xv = values(x);
      const int64_t rank = int64_t(shape.size());
      std::vector<std::vector<int64_t>> dim_sets = {{0}, {rank - 1}};
      if (rank == 3) dim_sets.insert(dim_sets.end(), {{0, 1}, {0, 2}, {1}});
      for (const std::vector<int64_t>& dims : dim_sets) {
        INFO("dims " << dims[0] << (dims.size() > 1 ? "," + std::to_string(dims[1]) : ""));
        std::vector<bool> reduced(size_t(rank), false);
        for (int64_t d : dims) reduced[size_t(d)] = true;
        // Walk x in row-major order; an element's output index counts only the kept dims.
        std::vector<std::vector<double>> terms;
        std::vector<int64_t> idx(size_t(rank), 0);
        for (size_t flat = 0; flat < xv.size(); ++flat) {
          int64_t o = 0;
          for (int64_t d = 0; d < rank; ++d)
            if (!reduced[size_t(d)]) o = o * shape[size_t(d)] + idx[size_t(d)];
          if (size_t(o) >= terms.size()) terms.resize(size_t(o) + 1);
          terms[size_t(o)].push_back(xv[flat]);
          for (int64_t d = rank - 1; d >= 0 && ++idx[size_t(d)] == shape[size_t(d)]; --d) idx[size_t(d)] = 0;
        }
        std::vector<double> want;
        want.reserve(terms.size());
        for (const auto& ts : terms) want.push_back(round(lane_sum(ts)));
        CHECK(values(sum(x, dims)) == want);
      }
      CHECK(values(sum(x))[0] == round(lane_sum(xv)));
    }
  }
  // The backend called directly with empty dims (the front-end answers those itself): no output
  // to write is no work, and an empty reduced dim sums to 0 in every output.
  Backend& cpu = cpu_backend();
  Tensor no_out = full({1, 0}, std::nan(""));
  cpu.reduce(ReduceOp::Sum, no_out, zeros({3, 0}), {0});
  CHECK(no_out.numel() == 0);
  Tensor zero_terms = full({1, 4}, std::nan(""));
  cpu.reduce(ReduceOp::Sum, zero_terms, zeros({0, 4}), {0});
  CHECK(values(zero_terms) == std::vector<double>(4, 0.0));
}

namespace {
// A block of more than 2^20 terms, by the definition: pieces of 2^20 terms in order (the last one
// shorter), each a lane sum, and the pieces' totals lane-summed in order.
double piece_sum(const std::vector<double>& terms) {
  const size_t piece = size_t(1) << 20;
  if (terms.size() <= piece) return lane_sum(terms);
  std::vector<double> totals;
  for (size_t t0 = 0; t0 < terms.size(); t0 += piece)
    totals.push_back(lane_sum({terms.begin() + long(t0), terms.begin() + long(std::min(terms.size(), t0 + piece))}));
  return lane_sum(totals);
}
}  // namespace

TEST_CASE("kernels: a sum of more than 2^20 terms is summed in pieces, the same on any thread count") {
  // Each output's block goes in pieces of 2^20 terms, which threads share; the result must be
  // piece_sum of the block in row-major order on 1 and on 3 threads alike, in both loop orders of
  // reduce.cpp, with piece boundaries inside runs, and in a strided view.
  Generator g(20261201);
  for (DType t : {DType::f32, DType::f64}) {
    INFO(dtype_name(t));
    auto round = [&](double v) { return round_sum(v, t); };
    // Thirds fill a double's mantissa, so that float64 sums depend on their order.
    auto thirds = [&](const Shape& shape) { return (urand(shape, g, -1, 3, DType::f64) / 3.0).to(t); };
    // Every value: 2 full pieces and one of 12345 terms. The first piece holds 12345 values times
    // 2^20, then zeros, and the last piece their negatives, so the totals are a, b and exactly -a:
    // the lane tree's (a + c) + b gives b, and a plain (a + b) + c would lose b's low bits.
    const size_t piece = size_t(1) << 20, tail = 12345;
    std::vector<double> av = values(thirds({int64_t(2 * piece + tail)}));
    for (size_t i = 0; i < piece; ++i) av[i] = i < tail ? av[i] * 0x1p20 : 0.0;
    for (size_t i = 0; i < tail; ++i) av[2 * piece + i] = -av[i];
    Tensor all = from_vector<double>(av, {int64_t(av.size())}, TensorOptions(DType::f64)).to(t);
    const std::vector<double> want_all = {round(piece_sum(values(all)))};
    // [2, 1500, 701] over dims 1 and 2: two outputs of 1,051,500 terms, a piece boundary 589
    // terms into a run of 701, by output; then the same values as a [1500, 701, 2] view whose
    // innermost kept dim is contiguous (a row of outputs at a time).
    Tensor rows = thirds({2, 1500, 701});
    Tensor cols = rows.permute({1, 2, 0}).contiguous();
    const std::vector<double> rv = values(rows);
    const size_t n = rv.size() / 2;
    const std::vector<double> want_rows = {round(piece_sum({rv.begin(), rv.begin() + long(n)})),
                                           round(piece_sum({rv.begin() + long(n), rv.end()}))};
    // [1500, 701, 3] taken from a [701, 1500, 3] tensor: the two reduced dims cannot merge, so the
    // runs are 701 long with a stride of 4500.
    Tensor strided = thirds({701, 1500, 3}).permute({1, 0, 2});
    const std::vector<double> sv = values(strided);
    std::vector<double> want_strided;
    for (size_t c = 0; c < 3; ++c) {
      std::vector<double> terms;
      for (size_t i = c; i < sv.size(); i += 3) terms.push_back(sv[i]);
      want_strided.push_back(round(piece_sum(terms)));
    }
    for (int threads : {1, 3}) {
      INFO(threads, " threads");
      const ScopedThreads scoped(threads);
      CHECK(values(sum(all)) == want_all);
      CHECK(values(sum(rows, {1, 2})) == want_rows);
      CHECK(values(sum(cols, {0, 1})) == want_rows);
      CHECK(values(sum(rows.permute({1, 2, 0}), {0, 1})) == want_rows);
      CHECK(values(sum(strided, {0, 1})) == want_strided);
      CHECK(values(sum(strided.contiguous(), {0, 1})) == want_strided);
    }
    // A block of exactly 2^20 terms is one piece: its plain lane sum.
    Tensor one = thirds({int64_t(1) << 20});
    CHECK(values(sum(one))[0] == round(lane_sum(values(one))));
  }
}

namespace {
// The max (or min) of terms, as reduce.cpp defines it: the largest value with -0 below +0 (for a
// min the smallest, -0 below +0), and NaN when any term is NaN.
double extremum(const std::vector<double>& terms, bool is_max) {
  double best = terms.at(0);
  for (double v : terms) {
    if (std::isnan(v) || std::isnan(best)) return std::nan("");
    const bool zeros = v == 0 && best == 0;  // -0 == +0: decide by the sign
    const bool better = zeros
                            ? (is_max ? std::signbit(best) && !std::signbit(v) : !std::signbit(best) && std::signbit(v))
                            : (is_max ? v > best : v < best);
    if (better) best = v;
  }
  return best;
}
// Bitwise equality of two lists of doubles (NaN equals NaN, -0 differs from +0).
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && (a[i] != b[i] || std::signbit(a[i]) != std::signbit(b[i])))
      return false;
  return true;
}
}  // namespace

TEST_CASE("kernels: max and min in every loop order, with signed zeros and NaN, on any thread count") {
  // reduce.cpp folds max and min as order keys in 16 lanes (output by output), column by column
  // (when the innermost kept dim is contiguous), and in pieces of 2^20 terms that threads share.
  // Every output must be extremum() of its block on 1 and on 3 threads: values, the sign of a
  // zero result, and NaN wherever the block holds one.
  Generator g(20261202);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool transpose;  // the input as the transposed view of a contiguous tensor
  };
  const std::vector<Case> cases = {
      {{37, 300}, {1}, false},      {{37, 300}, {0}, false},      {{300, 37}, {0}, true},
      {{5, 6, 300}, {0, 2}, false}, {{6, 4, 700}, {0, 1}, false}, {{3, 1, 5}, {0, 1, 2}, false},
      {{2, 1100000}, {1}, false},   {{1100000, 3}, {0}, false},   {{(int64_t(1) << 21) + 99}, {0}, false},
  };
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
    const bool floating = t == DType::f32 || t == DType::f64 || t == DType::bf16;
    for (const Case& c : cases) {
      INFO(dtype_name(t), " ", shape_str(c.shape), c.transpose ? " transposed" : "");
      const int64_t n = numel_of(c.shape);
      // Small integers, so that ties and (for floats) zeros of both signs are common.
      std::vector<double> v(static_cast<size_t>(n));
      for (double& e : v) e = double(int64_t(g.below(7))) - (t == DType::u8 ? 0.0 : 3.0);
      // The extremes last in storage: in the last piece of their output's block.
      v[size_t(n - 1)] = 50;
      if (t != DType::u8) v[size_t(n - 2)] = -50;
      if (floating) {
        for (int64_t k = 0; k < n / 3 + 1; ++k) v[size_t(g.below(uint64_t(n - 2)))] = -0.0;
        if (n > 100) v[size_t(g.below(uint64_t(n - 2)))] = std::nan("");  // one block holds a NaN
      }
      Shape store = c.shape;
      if (c.transpose) std::swap(store[0], store[1]);
      Tensor x = from_vector<double>(v, store, TensorOptions(DType::f64)).to(t);
      if (c.transpose) x = x.t();
      const std::vector<double> xv = values(x);  // row-major order of x's shape
      // Each output's terms, walking x in row-major order.
      const int64_t rank = int64_t(c.shape.size());
      std::vector<bool> reduced(size_t(rank), false);
      for (int64_t d : c.dims) reduced[size_t(d)] = true;
      std::vector<std::vector<double>> terms;
      std::vector<int64_t> idx(size_t(rank), 0);
      for (size_t flat = 0; flat < xv.size(); ++flat) {
        int64_t o = 0;
        for (int64_t d = 0; d < rank; ++d)
          if (!reduced[size_t(d)]) o = o * c.shape[size_t(d)] + idx[size_t(d)];
        if (size_t(o) >= terms.size()) terms.resize(size_t(o) + 1);
        terms[size_t(o)].push_back(xv[flat]);
        for (int64_t d = rank - 1; d >= 0 && ++idx[size_t(d)] == c.shape[size_t(d)]; --d) idx[size_t(d)] = 0;
      }
      std::vector<double> want_max, want_min;
      for (const auto& ts : terms) {
        want_max.push_back(extremum(ts, true));
        want_min.push_back(extremum(ts, false));
      }
      for (int threads : {1, 3}) {
        INFO(threads, " threads");
        const ScopedThreads scoped(threads);
        CHECK(same_bits(values(max(x, c.dims)), want_max));
        CHECK(same_bits(values(min(x, c.dims)), want_min));
      }
    }
  }
  // The zeros alone: max(-0, +0) is +0 and min(+0, -0) is -0 in either order; -0 stays -0.
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    auto one = [&](const std::vector<double>& v, bool is_max) {
      Tensor x = from_vector<double>(v, {int64_t(v.size())}, TensorOptions(DType::f64)).to(t);
      return values(is_max ? max(x) : min(x))[0];
    };
    CHECK(!std::signbit(one({-0.0, 0.0}, true)));
    CHECK(!std::signbit(one({0.0, -0.0}, true)));
    CHECK(std::signbit(one({-0.0, -0.0}, true)));
    CHECK(std::signbit(one({0.0, -0.0}, false)));
    CHECK(std::signbit(one({-0.0, 0.0}, false)));
    CHECK(!std::signbit(one({0.0, 0.0}, false)));
  }
}

namespace {
// argmax / argmin by definition: the index of the first NaN if the terms hold one, else the first
// index whose value equals the extremum (so of -0 and +0, which compare equal, the first).
int64_t arg_extremum(const std::vector<double>& terms, bool is_max) {
  for (size_t i = 0; i < terms.size(); ++i)
    if (std::isnan(terms[i])) return int64_t(i);
  int64_t at = 0;
  for (size_t i = 1; i < terms.size(); ++i)
    if (is_max ? terms[i] > terms[size_t(at)] : terms[i] < terms[size_t(at)]) at = int64_t(i);
  return at;
}
}  // namespace

TEST_CASE("kernels: argmax and argmin pick the first extremum or the first NaN, in lanes and along strides") {
  // reduce.cpp runs a contiguous row of 64 values or more in 16 lanes, each keeping its first
  // index of its extremum, and anything else in a plain loop. Rows around those sizes, with many
  // ties, zeros of both signs, and NaNs in some rows (in the lanes, in the tail, or several).
  Generator g(20261203);
  const std::vector<int64_t> lengths = {1, 15, 16, 17, 63, 64, 65, 80, 100, 1000, 1027};
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
    const bool floating = t == DType::f32 || t == DType::f64 || t == DType::bf16;
    for (int64_t n : lengths)
      for (bool transpose : {false, true}) {
        INFO(dtype_name(t), " rows of ", n, transpose ? ", strided" : "");
        const int64_t rows = 24;
        std::vector<double> v(size_t(rows * n));
        for (double& e : v) e = double(int64_t(g.below(5))) - (t == DType::u8 ? 0.0 : 2.0);
        if (floating)
          for (int64_t r = 0; r < rows; ++r) {
            double* row = v.data() + r * n;
            for (int64_t k = 0; k < n / 4 + 1; ++k) row[g.below(uint64_t(n))] = -0.0;
            if (r % 3 == 0) row[g.below(uint64_t(n))] = 0.0;
            if (r % 4 == 1) row[g.below(uint64_t(n))] = std::nan("");
            if (r % 8 == 5) row[g.below(uint64_t(n))] = std::nan("");           // a second one, maybe earlier
            if (r % 6 == 2) std::fill(row, row + n, r % 12 == 2 ? -0.0 : 0.0);  // one zero throughout
            if (r % 6 == 4) row[n - 1] = std::nan("");                          // in the tail
          }
        // rows x n as stored, or its transpose's view (each row's terms n apart).
        Tensor x = from_vector<double>(v, transpose ? Shape{n, rows} : Shape{rows, n}, TensorOptions(DType::f64)).to(t);
        if (transpose) x = x.t();
        const std::vector<double> xv = values(x);  // row-major order of [rows, n]
        std::vector<int64_t> want_max, want_min;
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> terms(xv.begin() + r * n, xv.begin() + (r + 1) * n);
          want_max.push_back(arg_extremum(terms, true));
          want_min.push_back(arg_extremum(terms, false));
        }
        for (int threads : {1, 3}) {
          INFO(threads, " threads");
          const ScopedThreads scoped(threads);
          CHECK(argmax(x, 1).to_vector<int64_t>() == want_max);
          CHECK(argmin(x, 1).to_vector<int64_t>() == want_min);
        }
      }
  }
  // int64 values that a double cannot tell apart: 2^53 and 2^53 + 1 are the same double.
  const int64_t big = int64_t(1) << 53;
  for (int64_t n : {2, 70}) {
    INFO("int64 rows of ", n);
    std::vector<int64_t> up(size_t(n), big), down(size_t(n), -big);
    up[size_t(n - 1)] = big + 1;
    down[size_t(n - 1)] = -big - 1;
    const Tensor x = from_vector<int64_t>(up, {n}, TensorOptions(DType::i64));
    const Tensor y = from_vector<int64_t>(down, {n}, TensorOptions(DType::i64));
    CHECK(argmax(x, 0).item() == double(n - 1));
    CHECK(argmin(x, 0).item() == 0);
    CHECK(argmin(y, 0).item() == double(n - 1));
    CHECK(argmax(y, 0).item() == 0);
  }
}

TEST_CASE("kernels: the conv2d weight gradient sums in parts fixed by the batch, the same on any thread count") {
  // The weight gradient sums over the batch in chunks of images (each one product) gathered into
  // at most 8 parts, each part's chunks added in order into its own sum and the parts' sums added
  // in order (kernels/cpu/conv.cpp, kWeightGradParts). The split depends on the sizes alone, so
  // the result must be that definition, written out here over a stored im2col, bitwise, on 1, 2,
  // 3, 5 and 8 threads. Cases: maps of one image a chunk and of several, a batch that fills fewer
  // than 8 parts, the row-runs path, pointwise convs with and without batched images, groups.
  const RestoreGemmIsa restore;
  Generator gen(1201);
  constexpr int64_t kParts = 8, kTargetColumns = 256;
  const std::vector<ConvCase> cases = {
      {"16x16 map, one image a chunk", {20, 6, 16, 16}, {10, 6, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"8x8 map, four images a chunk", {37, 5, 8, 8}, {7, 5, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"4x4 map, stride 2, six images a chunk", {50, 4, 8, 8}, {6, 4, 3, 3}, Conv2dParams::of(2, 2, 1, 1, 1, 1, 1)},
      {"row runs, 10x9 map", {19, 32, 10, 9}, {3, 32, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
      {"1x1, groups 2, images batched", {23, 8, 6, 6}, {6, 4, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 2)},
      {"1x1, one image a chunk", {11, 6, 9, 9}, {5, 6, 1, 1}, Conv2dParams::of(1, 1, 0, 0, 1, 1, 1)},
      {"three images, three parts", {3, 4, 7, 7}, {4, 4, 3, 3}, Conv2dParams::of(1, 1, 1, 1, 1, 1, 1)},
  };
  auto check = [&](const ConvCase& c, const ConvGeom& g, DType t, auto tag) {
    using T = decltype(tag);
    INFO(dtype_name(t));
    const int64_t Cg = g.C / g.G, Og = g.O / g.G, ck = Cg * g.KH * g.KW, ohw = g.OH * g.OW;
    Tensor x = urand(c.x, gen, -1, 1, t), gy = urand({g.N, g.O, g.OH, g.OW}, gen, -1, 1, t);
    const T* xp = x.data<T>();
    const T* gyp = gy.data<T>();
    // The definition: chunks of nb images, parts of consecutive chunks.
    const int64_t nb = std::min(std::max<int64_t>(1, kTargetColumns / ohw), std::max<int64_t>(1, g.N / kParts));
    const int64_t chunks = (g.N + nb - 1) / nb, parts = std::min(kParts, chunks);
    std::vector<std::vector<T>> part_sums(size_t(parts), std::vector<T>(size_t(g.O * ck), T(0)));
    for (int64_t part = 0; part < parts; ++part)
      for (int64_t ch = part * chunks / parts; ch < (part + 1) * chunks / parts; ++ch) {
        const int64_t n0 = ch * nb, nbc = std::min(nb, g.N - n0), ld = nbc * ohw;
        for (int64_t gi = 0; gi < g.G; ++gi) {
          // col [ck, ld] and gy's rows [Og, ld] of the chunk's images side by side.
          std::vector<T> col(size_t(ck * ld)), rows(size_t(Og * ld));
          for (int64_t b = 0; b < nbc; ++b) {
            const int64_t n = n0 + b;
            for (int64_t o = 0; o < Og; ++o)
              for (int64_t i = 0; i < ohw; ++i)
                rows[size_t(o * ld + b * ohw + i)] = gyp[(n * g.O + gi * Og + o) * ohw + i];
            unroll_image(g, xp, n, gi, col.data() + b * ohw, ld);
          }
          cpu::gemm_strided<T>(Og, ck, ld, T(1), rows.data(), ld, 1, col.data(), 1, ld, T(1),
                               part_sums[size_t(part)].data() + gi * Og * ck, ck, 1);
        }
      }
    std::vector<double> want(size_t(g.O * ck));
    for (size_t j = 0; j < want.size(); ++j) {
      T sum = T(0);
      for (const auto& s : part_sums) sum += s[j];
      want[j] = double(sum);
    }
    for (int threads : {1, 2, 3, 5, 8}) {
      INFO(threads << " threads, " << parts << " parts of " << chunks << " chunks of " << nb << " images");
      const ScopedThreads scoped(threads);
      Tensor gw = full(c.w, 1e30, TensorOptions(t));  // poisoned: every element must be written
      cpu_backend().conv2d_backward_weight(gw, gy, x, c.p);
      CHECK(same_bits(values(gw), want));
    }
  };
  for_each_isa_and_dtype(cases, check);
}

TEST_CASE("kernels: unary and binary math against the standard library") {
  Generator g(414);
  struct U {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    std::function<double(double)> ref;
    double lo, hi;
  };
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  std::vector<U> us = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, -3, 3},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, -3, 3},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, 0.01, 5},
      {"log1p", [](const Tensor& x) { return log1p(x); }, [](double v) { return std::log1p(v); }, -0.9, 5},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, 0, 5},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::abs(v); }, -3, 3},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, -3, 3},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sig, -40, 40},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, -5, 5},
      {"softplus", [](const Tensor& x) { return softplus(x); },
       [](double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v))); }, -40, 40},
      {"square", [](const Tensor& x) { return square(x); }, [](double v) { return v * v; }, -3, 3},
      {"sign", [](const Tensor& x) { return sign(x); }, [](double v) { return double((v > 0) - (v < 0)); }, -3, 3},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double v) { return 1 / v; }, 0.1, 3},
      {"pow 1.7", [](const Tensor& x) { return pow(x, 1.7); }, [](double v) { return std::pow(v, 1.7); }, 0, 3},
      {"pow 2", [](const Tensor& x) { return pow(x, 2.0); }, [](double v) { return v * v; }, -3, 3},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.25); },
       [](double v) { return std::min(std::max(v, -0.5), 0.25); }, -1, 1},
      {"affine", [](const Tensor& x) { return 3.0 - x; }, [](double v) { return 3.0 - v; }, -1, 1},
  };
  for (DType t : {DType::f32, DType::f64, DType::bf16})
    for (const auto& u : us) {
      INFO(std::string(dtype_name(t)) << " " << u.name);
      Tensor x = urand({257}, g, u.lo, u.hi, t);
      std::vector<double> want;
      for (double v : values(x)) want.push_back(u.ref(v));
      double tol = t == DType::f64 ? 4e-16 : t == DType::f32 ? 4e-7 : 8e-3;
      Tensor y = u.op(x);
      CHECK(y.dtype() == t);
      MINIMA_CHECK_CLOSE(values(y), want, tol, tol);
      // The same through a transposed (non-contiguous) view.
      Tensor x2 = x.narrow(0, 0, 256).reshape({16, 16}).t();
      std::vector<double> w2;
      for (double v : values(x2)) w2.push_back(u.ref(v));
      MINIMA_CHECK_CLOSE(values(u.op(x2)), w2, tol, tol);
    }
  // Binary ops on broadcast operands.
  Tensor a = urand({3, 1, 5}, g, 0.5, 2), b = urand({4, 1}, g, 0.5, 2);
  Tensor as = a.expand({3, 4, 5}), bs = b.expand({3, 4, 5});
  std::vector<double> av = values(as), bv = values(bs);
  auto check_bin = [&](const char* name, const Tensor& got, const std::function<double(double, double)>& f) {
    INFO(name);
    std::vector<double> want;
    want.reserve(av.size());
    for (size_t i = 0; i < av.size(); ++i) want.push_back(f(av[i], bv[i]));
    MINIMA_CHECK_CLOSE(values(got), want, 1e-15, 1e-15);
  };
  check_bin("add", add(a, b), [](double x, double y) { return x + y; });
  check_bin("sub", sub(a, b), [](double x, double y) { return x - y; });
  check_bin("mul", mul(a, b), [](double x, double y) { return x * y; });
  check_bin("div", div(a, b), [](double x, double y) { return x / y; });
  check_bin("pow", pow(a, b), [](double x, double y) { return std::pow(x, y); });
  check_bin("maximum", maximum(a, b), [](double x, double y) { return std::max(x, y); });
  check_bin("minimum", minimum(a, b), [](double x, double y) { return std::min(x, y); });
  check_bin("gt", gt(a, b), [](double x, double y) { return double(x > y); });
  check_bin("le", le(a, b), [](double x, double y) { return double(x <= y); });
  check_bin("eq", eq(a, a.expand({3, 4, 5})), [](double, double) { return 1.0; });
  check_bin("where", where(gt(a, b), a, b), [](double x, double y) { return x > y ? x : y; });
  // Integer division by zero is defined (0), never a trap.
  Tensor i1 = from_vector<int64_t>({7, -7, 3}, {3}, TensorOptions(DType::i64));
  Tensor i2 = from_vector<int64_t>({2, 2, 0}, {3}, TensorOptions(DType::i64));
  CHECK(div(i1, i2).to_vector<int64_t>() == std::vector<int64_t>{3, -3, 0});
}

TEST_CASE("kernels: pow on integer tensors is exact and wraps modulo 2^64, as PyTorch's") {
  // The reference multiplies exp times in unsigned 64-bit arithmetic (the kernels square); a
  // negative exponent gives the integer part of the true power. PyTorch 1.13 gives, e.g.,
  // 3^40 = -6289078614652622815 and 7^25 = -5543697716832367161 on int64 tensors.
  auto naive = [](int64_t b, int64_t e) -> int64_t {
    if (e < 0) return b == 1 ? 1 : b == -1 ? (e % 2 != 0 ? -1 : 1) : 0;
    uint64_t r = 1;
    for (int64_t k = 0; k < e; ++k) r *= uint64_t(b);
    return int64_t(r);
  };
  Generator g(2026);
  std::vector<int64_t> bases =
      {0, 1, -1, 2, -2, 3, 7, 10, -10, 12345, int64_t(1) << 62, std::numeric_limits<int64_t>::min()};
  std::vector<int64_t> exps = {-5, -1, 0, 1, 2, 3, 25, 31, 40, 53, 63, 64, 100};
  for (int i = 0; i < 64; ++i) {  // fresh random pairs too
    bases.push_back(int64_t(g.below(2001)) - 1000);
  }
  std::vector<int64_t> bv, ev, want;
  for (size_t i = 0; i < bases.size(); ++i)
    for (size_t j = 0; j < exps.size(); ++j) {
      bv.push_back(bases[i]);
      ev.push_back(exps[j]);
      want.push_back(naive(bases[i], exps[j]));
    }
  const int64_t n = int64_t(bv.size());
  Tensor b = from_vector<int64_t>(bv, {n}, TensorOptions(DType::i64));
  Tensor e = from_vector<int64_t>(ev, {n}, TensorOptions(DType::i64));
  CHECK(pow(b, e).to_vector<int64_t>() == want);
  CHECK(pow(from_vector<int64_t>({3, 7}, {2}, TensorOptions(DType::i64)),
            from_vector<int64_t>({40, 25}, {2}, TensorOptions(DType::i64)))
            .to_vector<int64_t>() == std::vector<int64_t>{-6289078614652622815LL, -5543697716832367161LL});
  // uint8 wraps modulo 2^8: 200^2 = 40000 = 64 (mod 256), 3^5 = 243.
  Tensor u = pow(from_vector<uint8_t>({200, 3, 2}, {3}, TensorOptions(DType::u8)),
                 from_vector<uint8_t>({2, 5, 9}, {3}, TensorOptions(DType::u8)));
  CHECK(u.dtype() == DType::u8);
  CHECK(u.to_vector<uint8_t>() == std::vector<uint8_t>{64, 243, 0});
}

TEST_CASE("kernels: gather and index_select against naive indexing") {
  Generator g(415);
  Tensor x = urand({4, 5, 6}, g);
  Tensor xt = x.permute({1, 0, 2});  // non-contiguous [5, 4, 6]
  for (const Tensor& src : {x, xt})
    for (int64_t d = 0; d < 3; ++d) {
      INFO("dim " << d << " on " << shape_str(src.shape()));
      Shape is = src.shape();
      is[size_t(d)] = 7;
      is[size_t((d + 1) % 3)] -= 1;
      Tensor idx = randint(is, src.size(d), g);
      std::vector<int64_t> iv = idx.to_vector<int64_t>();
      Tensor out = gather(src, d, idx);
      CHECK(out.shape() == is);
      std::vector<double> want;
      for (int64_t i = 0; i < idx.numel(); ++i) {
        auto p = unravel(i, is);
        p[size_t(d)] = iv[size_t(i)];
        want.push_back(at(src, p));
      }
      CHECK(values(out) == want);
      Tensor sel = randint({9}, src.size(d), g);
      std::vector<int64_t> sv = sel.to_vector<int64_t>();
      Tensor os = index_select(src, d, sel);
      Shape oshape = src.shape();
      oshape[size_t(d)] = 9;
      CHECK(os.shape() == oshape);
      std::vector<double> w2;
      for (int64_t i = 0; i < os.numel(); ++i) {
        auto p = unravel(i, oshape);
        p[size_t(d)] = sv[size_t(p[size_t(d)])];
        w2.push_back(at(src, p));
      }
      CHECK(values(os) == w2);
    }
}

TEST_CASE("kernels: fused SGD and Adam updates follow torch.optim") {
  Generator g(416);
  for (DType t : {DType::f32, DType::f64}) {
    struct Cfg {
      double lr, momentum, dampening, wd;
      bool nesterov;
    };
    for (Cfg c : std::vector<Cfg>{{0.1, 0.0, 0.0, 0.0, false},
                                  {0.05, 0.9, 0.0, 5e-4, false},
                                  {0.05, 0.9, 0.0, 1e-3, true},
                                  {0.2, 0.5, 0.3, 0.0, false}}) {
      INFO(std::string(dtype_name(t)) << " sgd lr " << c.lr << " momentum " << c.momentum << " nesterov "
                                      << c.nesterov);
      Tensor p = urand({37}, g, -1, 1, t), buf = zeros({37}, TensorOptions(t));
      std::vector<double> pv = values(p), bv(37, 0.0);
      for (int step = 0; step < 3; ++step) {
        Tensor gr = urand({37}, g, -1, 1, t);
        std::vector<double> gv = values(gr);
        cpu_backend().sgd_update(p, gr, buf, c.lr, c.momentum, c.dampening, c.wd, c.nesterov, step == 0);
        for (size_t i = 0; i < 37; ++i) {
          double d = gv[i] + c.wd * pv[i];
          if (c.momentum != 0) {
            bv[i] = step == 0 ? d : c.momentum * bv[i] + (1 - c.dampening) * d;
            d = c.nesterov ? d + c.momentum * bv[i] : bv[i];
          }
          pv[i] -= c.lr * d;
        }
      }
      MINIMA_CHECK_CLOSE(values(p), pv, t == DType::f32 ? 1e-6 : 1e-14, 0.0);
    }
    INFO(std::string(dtype_name(t)) << " adam");
    Tensor p = urand({29}, g, -1, 1, t), m = zeros({29}, TensorOptions(t)), v = zeros({29}, TensorOptions(t));
    std::vector<double> pv = values(p), mv(29, 0.0), vv(29, 0.0);
    double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 1e-2;
    for (int64_t step = 1; step <= 4; ++step) {
      Tensor gr = urand({29}, g, -1, 1, t);
      std::vector<double> gv = values(gr);
      cpu_backend().adam_update(p, gr, m, v, lr, b1, b2, eps, wd, step);
      for (size_t i = 0; i < 29; ++i) {
        double d = gv[i] + wd * pv[i];
        mv[i] = b1 * mv[i] + (1 - b1) * d;
        vv[i] = b2 * vv[i] + (1 - b2) * d * d;
        double mh = mv[i] / (1 - std::pow(b1, double(step))), vh = vv[i] / (1 - std::pow(b2, double(step)));
        pv[i] -= lr * mh / (std::sqrt(vh) + eps);
      }
    }
    MINIMA_CHECK_CLOSE(values(p), pv, t == DType::f32 ? 1e-6 : 1e-13, 0.0);
  }
}

TEST_CASE("kernels: elementwise loops and reductions on large strided tensors (threaded paths)") {
  Generator g(417);
  // Big enough to cross the parallel grain: a transposed 2-D view, a 3-D view whose dims cannot
  // be merged, a broadcast operand, and one long row.
  Tensor base = urand({300, 211}, g);
  Tensor t = base.t();         // [211, 300]
  Tensor b = urand({300}, g);  // broadcast along rows
  Tensor y = add(mul(t, 2.0), b);
  for (int64_t k = 0; k < 2000; ++k) {
    int64_t i = int64_t(g.below(211)), j = int64_t(g.below(300));
    CHECK(at(y, {i, j}) == 2.0 * at(base, {j, i}) + at(b, {j}));
  }
  Tensor cube = urand({40, 30, 50}, g).permute({2, 0, 1}).slice(2, 0, 30, 2);  // [50, 40, 15]
  Tensor e = exp(cube);
  for (int64_t k = 0; k < 2000; ++k) {
    std::vector<int64_t> idx = {int64_t(g.below(50)), int64_t(g.below(40)), int64_t(g.below(15))};
    CHECK(at(e, idx) == std::exp(at(cube, idx)));
  }
  Tensor row = urand({100003}, g);
  Tensor r2 = mul(row, row);
  std::vector<double> rv = values(row), r2v = values(r2);
  for (size_t i = 0; i < rv.size(); ++i) REQUIRE(r2v[i] == rv[i] * rv[i]);
  // copy with dtype conversion from a strided view, in parallel.
  Tensor c = t.to(DType::f32);
  for (int64_t k = 0; k < 1000; ++k) {
    int64_t i = int64_t(g.below(211)), j = int64_t(g.below(300));
    CHECK(at(c, {i, j}) == double(float(at(base, {j, i}))));
  }
  // Row sums of a tall matrix (many outputs, split across threads) and column sums.
  Tensor tall = urand({5000, 20}, g);
  std::vector<double> tv = values(tall), rs = values(sum(tall, {1})), cs = values(sum(tall, {0}));
  std::vector<double> want_c(20, 0.0);
  for (int64_t i = 0; i < 5000; ++i) {
    double s = 0;
    for (int64_t j = 0; j < 20; ++j) {
      s += tv[size_t(i * 20 + j)];
      want_c[size_t(j)] += tv[size_t(i * 20 + j)];
    }
    REQUIRE(rs[size_t(i)] == doctest::Approx(s).epsilon(1e-14));
  }
  MINIMA_CHECK_CLOSE(cs, want_c, 1e-11, 1e-13);
}

TEST_CASE("kernels: batch_norm on [N, C] (rows of channels) is bitwise the per-channel loops") {
  // An [N, C, 1, 1] input runs row by row with the channels innermost. The same values laid out
  // as [1, C, N, 1] (one run of N per channel), as [2, C, 15, 21] (two runs of 315) and as
  // [6, C, 5, 21] (six runs of 105, so the lane of a run's first term is not 0) run through the
  // per-channel loops, which add runs longer than 256 in chunks of 256 (asking for the next
  // run's lines between them). Each channel deals the same values in the same order to the same
  // lanes either way, so every output must be bitwise equal.
  Generator g(20261130);
  Backend& cpu = cpu_backend();
  const int64_t N = 630;
  for (DType t : {DType::f32, DType::f64, DType::bf16})
    for (int64_t C : {int64_t(37), int64_t(300)})
      for (bool affine : {true, false}) {
        INFO(std::string(dtype_name(t)), " C=", C, affine ? " affine" : "");
        Tensor x = add(urand({N, C}, g, -2, 3, t), 7.0).to(t);  // a mean far from 0
        Tensor gy = urand({N, C}, g, -1, 1, t);
        // Row n = (a * H + h) * W + w of the [N, C] rows is position (h, w) of image a in [A, C, H, W].
        auto layout = [&](const Tensor& rows, Shape ahw) {
          return rows.reshape({ahw[0], ahw[1], ahw[2], C}).permute({0, 3, 1, 2}).contiguous();
        };
        auto back = [&](const Tensor& l) { return l.permute({0, 2, 3, 1}).reshape({N, C}); };
        Tensor w = affine ? urand({C}, g, 0.5, 1.5, DType::f32) : Tensor();
        Tensor b = affine ? urand({C}, g, -0.5, 0.5, DType::f32) : Tensor();
        auto opts = TensorOptions(DType::f32);
        struct Out {
          Tensor y, mean, invstd, rm, rv, ye, gx, gw, gb;
        };
        auto run = [&](const Tensor& xin, const Tensor& gin) {
          Out o;
          o.y = empty(xin.shape(), TensorOptions(t));
          o.mean = empty({C}, opts);
          o.invstd = empty({C}, opts);
          o.rm = full({C}, 0.25, opts);
          o.rv = full({C}, 2.0, opts);
          cpu.batch_norm_forward_train(o.y, o.mean, o.invstd, xin, w, b, o.rm, o.rv, 0.1, 1e-5);
          o.ye = empty(xin.shape(), TensorOptions(t));
          cpu.batch_norm_forward_eval(o.ye, xin, w, b, o.rm, o.rv, 1e-5);
          o.gx = empty(xin.shape(), TensorOptions(t));
          o.gw = affine ? empty({C}, opts) : Tensor();
          o.gb = affine ? empty({C}, opts) : Tensor();
          cpu.batch_norm_backward(o.gx, o.gw, o.gb, gin, xin, w, o.mean, o.invstd);
          return o;
        };
        Out r = run(x.reshape({N, C, 1, 1}), gy.reshape({N, C, 1, 1}));
        for (Shape ahw : {Shape{1, N, 1}, Shape{2, 15, 21}, Shape{6, 5, 21}}) {
          INFO("per-channel layout [", ahw[0], ", C, ", ahw[1], ", ", ahw[2], "]");
          Out c = run(layout(x, ahw), layout(gy, ahw));
          CHECK(values(r.y.reshape({N, C})) == values(back(c.y)));
          CHECK(values(r.ye.reshape({N, C})) == values(back(c.ye)));
          CHECK(values(r.gx.reshape({N, C})) == values(back(c.gx)));
          for (const auto& [a, z] : {std::pair{r.mean, c.mean}, {r.invstd, c.invstd}, {r.rm, c.rm}, {r.rv, c.rv}})
            CHECK(values(a) == values(z));
          if (affine) {
            CHECK(values(r.gw) == values(c.gw));
            CHECK(values(r.gb) == values(c.gb));
          }
        }
        // And against the definition, to a tolerance: y has mean 0 (before the affine part).
        if (!affine) {
          std::vector<double> yv = values(r.y.reshape({N, C}));
          for (int64_t ch = 0; ch < C; ch += 17) {
            double s = 0;
            for (int64_t n = 0; n < N; ++n) s += yv[size_t(n * C + ch)];
            CHECK(std::abs(s / double(N)) < (t == DType::bf16 ? 2e-2 : 1e-5));
          }
        }
      }
}

TEST_CASE("kernels: batch_norm with strided parameters and running stats") {
  // Parameters that are views with a stride (e.g. slices of a flat parameter buffer).
  Generator g(418);
  Tensor x = urand({4, 3, 2, 2}, g, -2, 2);
  Tensor wbuf = urand({6}, g, 0.5, 1.5), bbuf = urand({6}, g), rmbuf = urand({6}, g), rvbuf = urand({6}, g, 0.5, 2);
  Tensor w = wbuf.slice(0, 0, 6, 2), b = bbuf.slice(0, 1, 6, 2);
  Tensor rm = rmbuf.slice(0, 0, 6, 2), rv = rvbuf.slice(0, 1, 6, 2);
  Tensor wc = w.contiguous(), bc = b.contiguous(), rmc = rm.contiguous(), rvc = rv.contiguous();
  std::vector<double> rm_other = values(rmbuf.slice(0, 1, 6, 2)), rv_other = values(rvbuf.slice(0, 0, 6, 2));
  Tensor y = batch_norm(x, w, b, rm, rv, true);
  Tensor yc = batch_norm(x, wc, bc, rmc, rvc, true);
  MINIMA_CHECK_CLOSE(values(y), values(yc), 1e-14, 1e-14);
  MINIMA_CHECK_CLOSE(values(rm), values(rmc), 1e-15, 1e-15);
  MINIMA_CHECK_CLOSE(values(rv), values(rvc), 1e-15, 1e-15);
  // The interleaved elements the views skip are untouched.
  CHECK(values(rmbuf.slice(0, 1, 6, 2)) == rm_other);
  CHECK(values(rvbuf.slice(0, 0, 6, 2)) == rv_other);
  MINIMA_CHECK_CLOSE(values(batch_norm(x, w, b, rm, rv, false)), values(batch_norm(x, wc, bc, rmc, rvc, false)), 1e-14,
                     1e-14);
}

TEST_CASE("kernels: dropout keeps 1-p of the values scaled by 1/(1-p)") {
  Generator g(419);
  Tensor x = urand({200, 100}, g, 1, 2);
  Generator d1(5), d2(5);
  Tensor y = dropout(x, 0.3, true, d1);
  std::vector<double> xv = values(x), yv = values(y);
  int64_t zeros_n = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0) {
      ++zeros_n;
    } else {
      CHECK(yv[i] == doctest::Approx(xv[i] / 0.7).epsilon(1e-12));
    }
  }
  CHECK(std::abs(double(zeros_n) / double(xv.size()) - 0.3) < 0.015);
  CHECK(values(dropout(x, 0.3, true, d2)) == yv);  // same generator state, same mask
  CHECK(values(dropout(x, 0.3, false, d2)) == xv);
  CHECK(values(dropout(x, 0.0, true, d2)) == xv);
  // The gradient is the same mask.
  Tensor xl = x.clone();
  xl.requires_grad_(true);
  Generator d3(5);
  sum(dropout(xl, 0.3, true, d3)).backward();
  std::vector<double> gv = values(xl.grad());
  for (size_t i = 0; i < gv.size(); ++i) CHECK(gv[i] == doctest::Approx(yv[i] == 0 ? 0.0 : 1 / 0.7));
}
