// tests/core/test_profiler.cpp: the op-level profiler (core/profiler.h): which entries it
// records and under which names, that an entry's inner calls stay inside it, that profiling
// changes no result, its one-session rule, and the per-step table.
#include <doctest/doctest.h>

#include <map>
#include <thread>

#include "core/profiler.h"
#include "test_util.h"

namespace minima {
namespace {

using testing::check_error;

std::map<std::string, ProfileRow> by_name(const std::vector<ProfileRow>& rows) {
  std::map<std::string, ProfileRow> m;
  for (const auto& r : rows) {
    CHECK_MESSAGE(m.count(r.name) == 0, "row ", r.name, " appears twice");
    m[r.name] = r;
  }
  return m;
}

// relu(x @ w) summed, and w's gradient: the backend entries of a small training step.
Tensor grad_of_step(const Tensor& x, const Tensor& w0) {
  Tensor w = w0.detach().clone().requires_grad_();
  sum(relu(matmul(x, w))).backward();
  return w.grad();
}

TEST_CASE("profiler: every backend entry of a step is timed, named by entry, op and dtype, results unchanged") {
  Generator g(20261128);
  Tensor x = randn({9, 7}, g, testing::f32());
  Tensor w = randn({7, 5}, g, testing::f32());
  const Tensor plain = grad_of_step(x, w);
  CHECK_FALSE(profiling());
  CHECK(&backend_for(Device::cpu()) == &cpu_backend());

  std::vector<ProfileRow> rows;
  Tensor profiled_grad;
  {
    ProfileSession session;
    CHECK(profiling());
    CHECK(&backend_for(Device::cpu()) != &cpu_backend());
    CHECK(std::string(backend_for(Device::cpu()).name()) == cpu_backend().name());
    profiled_grad = grad_of_step(x, w);
    rows = session.rows();
  }
  CHECK_FALSE(profiling());
  CHECK(&backend_for(Device::cpu()) == &cpu_backend());
  CHECK(plain.to_vector<float>() == profiled_grad.to_vector<float>());  // bitwise

  auto m = by_name(rows);
  REQUIRE(m.count("unary relu float32"));
  CHECK(m["unary relu float32"].calls == 1);
  REQUIRE(m.count("unary_backward relu float32"));
  CHECK(m["unary_backward relu float32"].calls == 1);
  REQUIRE(m.count("gemm float32"));
  CHECK(m["gemm float32"].calls >= 2);  // forward, and w's gradient
  REQUIRE(m.count("reduce sum float32"));
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].calls >= 1);
    CHECK(rows[i].seconds >= 0);
    if (i > 0) CHECK(rows[i - 1].seconds >= rows[i].seconds);  // longest first
  }
}

TEST_CASE("profiler: an entry's inner calls are part of its time, and other threads run untimed") {
  Tensor t = zeros({4, 4}, testing::f32());
  Tensor h = zeros({3}, testing::f64());
  ProfileSession session;
  profile_call(
      cpu_backend(), [] { return std::string("outer"); },
      [&] {
        t.fill_(1.0);      // a backend entry inside a timed one
        t.to(DType::f64);  // and a copy
      });
  std::thread other([&] { h.fill_(2.0); });  // not the session's thread
  other.join();
  t.fill_(3.0);
  auto m = by_name(session.rows());
  REQUIRE(m.count("outer"));
  CHECK(m["outer"].calls == 1);
  CHECK(m.count("copy float32->float64") == 0);
  CHECK(m.count("fill float64") == 0);
  REQUIRE(m.count("fill float32"));
  CHECK(m["fill float32"].calls == 1);  // the top-level one only
  CHECK(m.size() == 2);
  CHECK(h.to_vector<double>() == std::vector<double>{2, 2, 2});
  CHECK(t.to_vector<float>() == std::vector<float>(16, 3.f));
}

TEST_CASE("profiler: one session at a time, each starting empty") {
  {
    ProfileSession first;
    zeros({2}, testing::f32()).fill_(1.0);
    CHECK(first.rows().size() == 1);
    check_error([] { ProfileSession second; }, {"profiler: a profile session is already running"});
    CHECK(profiling());  // the failed second session did not end the first
  }
  ProfileSession again;
  CHECK(again.rows().empty());
}

TEST_CASE("profiler: the table is per step, with each entry's share and what lies outside the entries") {
  const std::vector<ProfileRow> rows = {{"conv2d_forward float32", 6, 0.3},
                                        {"unary relu float32", 3, 0.06},
                                        {"fill float32", 3, 0.03}};
  // 3 steps of 0.2 s: the entries take 0.13 s a step, 0.07 s lie outside them.
  const std::string t = profile_table(rows, 3, 0.2, 2);
  INFO(t);
  CHECK(t.find("3 profiled steps") != std::string::npos);
  auto line_of = [&](const std::string& head) {
    size_t at = t.find("  " + head);
    REQUIRE(at != std::string::npos);
    return t.substr(at, t.find('\n', at) - at);
  };
  CHECK(line_of("conv2d_forward float32").find("          2     100.000      50.0") != std::string::npos);
  CHECK(line_of("unary relu float32").find("          1      20.000      10.0") != std::string::npos);
  CHECK(t.find("fill float32") == std::string::npos);  // past the top 2
  CHECK(line_of("(1 more entries)").find("          1      10.000       5.0") != std::string::npos);
  CHECK(line_of("all backend entries").find("          4     130.000      65.0") != std::string::npos);
  CHECK(line_of("outside them").find("70.000      35.0") != std::string::npos);
  CHECK(line_of("profiled step").find("200.000     100.0") != std::string::npos);
  check_error([&] { profile_table(rows, 0, 0.2); }, {"profile_table: steps must be positive"});
}

}  // namespace
}  // namespace minima
