// core/profiler.cpp: see profiler.h.
#include "core/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "core/backend.h"
#include "core/error.h"

namespace minima {

namespace {

struct State {
  std::mutex mu;
  std::map<std::string, ProfileRow> rows;
  std::thread::id owner;
};
State& state() {
  static State s;
  return s;
}
std::atomic<bool> g_active{false};
thread_local int t_depth = 0;  // entries being timed on this thread

const char* device_kind(const Tensor& t) { return t.device().is_cpu() ? "cpu" : "cuda"; }

// " strided" when an elementwise entry reads or writes a non-contiguous tensor other than a
// broadcast one (stride 0): such loops run far slower than dense ones, and a profile should say so.
std::string layout(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined() || t->is_contiguous()) continue;
    const auto& st = t->strides();
    if (std::find(st.begin(), st.end(), int64_t(0)) == st.end()) return " strided";
  }
  return "";
}

// Every entry forwards to the wrapped backend through profile_call, named by the entry, its op
// and the dtype it computes in.
class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& in) : in_(in) {}
  const char* name() const override { return in_.name(); }
  void synchronize() override { in_.synchronize(); }

  void fill(const Tensor& out, double v) override {
    timed([&] { return str("fill ", out.dtype()); }, [&] { in_.fill(out, v); });
  }
  void copy(const Tensor& dst, const Tensor& src) override {
    timed(
        [&] {
          std::string s = str("copy ", src.dtype(), "->", dst.dtype());
          return str(src.device() == dst.device() ? s : str(s, " ", device_kind(src), "->", device_kind(dst)),
                     layout({&dst, &src}));
        },
        [&] { in_.copy(dst, src); });
  }
  void unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) override {
    timed(
        [&] {
          return str("unary ", op_name(op), " ", x.dtype(), layout({&out, &x}));
        },
        [&] { in_.unary(op, out, x, p0, p1); });
  }
  void unary_backward(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y, double p0,
                      double p1) override {
    timed(
        [&] {
          return str("unary_backward ", op_name(op), " ", gx.dtype(), layout({&gx, &gy, &x, &y}));
        },
        [&] { in_.unary_backward(op, gx, gy, x, y, p0, p1); });
  }
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override {
    timed(
        [&] {
          return str("binary ", op_name(op), " ", a.dtype(), layout({&out, &a, &b}));
        },
        [&] { in_.binary(op, out, a, b); });
  }
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override {
    timed(
        [&] {
          return str("where ", out.dtype(), layout({&out, &cond, &a, &b}));
        },
        [&] { in_.where(out, cond, a, b); });
  }
  void reduce(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) override {
    timed([&] { return str("reduce ", op_name(op), " ", x.dtype()); }, [&] { in_.reduce(op, out, x, dims); });
  }
  void gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) override {
    timed([&] { return str("gemm ", c.dtype()); }, [&] { in_.gemm(c, a, b, alpha, beta); });
  }
  void conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Conv2dParams& p) override {
    timed([&] { return str("conv2d_forward ", y.dtype()); }, [&] { in_.conv2d_forward(y, x, w, bias, p); });
  }
  void conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) override {
    timed([&] { return str("conv2d_backward_input ", gx.dtype()); }, [&] { in_.conv2d_backward_input(gx, gy, w, p); });
  }
  void conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) override {
    timed([&] { return str("conv2d_backward_weight ", gw.dtype()); },
          [&] { in_.conv2d_backward_weight(gw, gy, x, p); });
  }
  void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) override {
    timed([&] { return str("max_pool2d_forward ", y.dtype()); }, [&] { in_.max_pool2d_forward(y, indices, x, p); });
  }
  void max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) override {
    timed([&] { return str("max_pool2d_backward ", gx.dtype()); }, [&] { in_.max_pool2d_backward(gx, gy, indices); });
  }
  void avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) override {
    timed([&] { return str("avg_pool2d_forward ", y.dtype()); }, [&] { in_.avg_pool2d_forward(y, x, p); });
  }
  void avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) override {
    timed([&] { return str("avg_pool2d_backward ", gx.dtype()); }, [&] { in_.avg_pool2d_backward(gx, gy, p); });
  }
  void adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) override {
    timed([&] { return str("adaptive_avg_pool2d_forward ", y.dtype()); },
          [&] { in_.adaptive_avg_pool2d_forward(y, x); });
  }
  void adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) override {
    timed([&] { return str("adaptive_avg_pool2d_backward ", gx.dtype()); },
          [&] { in_.adaptive_avg_pool2d_backward(gx, gy); });
  }
  void batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd, const Tensor& x,
                                const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                                const Tensor& running_var, double momentum, double eps) override {
    timed([&] { return str("batch_norm_forward_train ", x.dtype()); },
          [&] {
            in_.batch_norm_forward_train(y, save_mean, save_invstd, x, weight, bias, running_mean, running_var,
                                         momentum, eps);
          });
  }
  void batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const Tensor& running_mean, const Tensor& running_var, double eps) override {
    timed([&] { return str("batch_norm_forward_eval ", x.dtype()); },
          [&] { in_.batch_norm_forward_eval(y, x, weight, bias, running_mean, running_var, eps); });
  }
  void batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,
                           const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                           const Tensor& save_invstd) override {
    timed([&] { return str("batch_norm_backward ", x.dtype()); },
          [&] { in_.batch_norm_backward(gx, gweight, gbias, gy, x, weight, save_mean, save_invstd); });
  }
  void log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) override {
    timed([&] { return str("log_softmax_forward ", x.dtype()); }, [&] { in_.log_softmax_forward(y, x, dim); });
  }
  void log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) override {
    timed([&] { return str("log_softmax_backward ", gx.dtype()); }, [&] { in_.log_softmax_backward(gx, gy, y, dim); });
  }
  void nll_forward(const Tensor& loss, const Tensor& logp, const Tensor& target) override {
    timed([&] { return str("nll_forward ", logp.dtype()); }, [&] { in_.nll_forward(loss, logp, target); });
  }
  void nll_backward(const Tensor& glogp, const Tensor& gloss, const Tensor& target) override {
    timed([&] { return str("nll_backward ", glogp.dtype()); }, [&] { in_.nll_backward(glogp, gloss, target); });
  }
  void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) override {
    timed([&] { return str("index_select ", x.dtype()); }, [&] { in_.index_select(out, x, dim, index); });
  }
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override {
    timed([&] { return str("index_add ", out.dtype()); }, [&] { in_.index_add(out, dim, index, src); });
  }
  void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) override {
    timed([&] { return str("gather ", x.dtype()); }, [&] { in_.gather(out, x, dim, index); });
  }
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override {
    timed([&] { return str("scatter_add ", out.dtype()); }, [&] { in_.scatter_add(out, dim, index, src); });
  }
  void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) override {
    timed([&] { return str("random_uniform ", out.dtype()); }, [&] { in_.random_uniform(out, seed, offset, lo, hi); });
  }
  void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) override {
    timed([&] { return str("random_normal ", out.dtype()); }, [&] { in_.random_normal(out, seed, offset, mean, std); });
  }
  void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum, double dampening,
                  double weight_decay, bool nesterov, bool first_step) override {
    timed([&] { return str("sgd_update ", p.dtype()); },
          [&] { in_.sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step); });
  }
  void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr, double beta1,
                   double beta2, double eps, double weight_decay, int64_t step) override {
    timed([&] { return str("adam_update ", p.dtype()); },
          [&] { in_.adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step); });
  }

 private:
  template <class Name, class Run>
  void timed(Name&& name, Run&& run) {
    profile_call(in_, name, run);
  }
  Backend& in_;
};

}  // namespace

ProfileSession::ProfileSession() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  MINIMA_CHECK(!g_active.load(), "profiler: a profile session is already running");
  s.rows.clear();
  s.owner = std::this_thread::get_id();
  g_active.store(true);
}

ProfileSession::~ProfileSession() { g_active.store(false); }

std::vector<ProfileRow> ProfileSession::rows() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<ProfileRow> out;
  out.reserve(s.rows.size());
  for (const auto& kv : s.rows) out.push_back(kv.second);
  std::stable_sort(out.begin(), out.end(),
                   [](const ProfileRow& a, const ProfileRow& b) { return a.seconds > b.seconds; });
  return out;
}

// Acquire: a thread that sees a session also sees its owner, written before the session went live.
bool profiling() { return g_active.load(std::memory_order_acquire); }

Backend& profiled(Backend& inner) {
  static std::mutex mu;
  static std::map<Backend*, std::unique_ptr<ProfilingBackend>> wrappers;
  std::lock_guard<std::mutex> lock(mu);
  auto& w = wrappers[&inner];
  if (!w) w = std::make_unique<ProfilingBackend>(inner);
  return *w;
}

void profile_call(Backend& b, const std::function<std::string()>& name, const std::function<void()>& run) {
  if (!profiling() || t_depth > 0 || std::this_thread::get_id() != state().owner) {
    run();
    return;
  }
  struct Depth {  // restored however `run` ends
    Depth() { ++t_depth; }
    ~Depth() { --t_depth; }
  } depth;
  b.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  run();
  b.synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string key = name();
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  ProfileRow& row = s.rows[key];
  row.name = std::move(key);
  ++row.calls;
  row.seconds += seconds;
}

std::string profile_table(const std::vector<ProfileRow>& rows, int64_t steps, double step_seconds, size_t top) {
  MINIMA_CHECK(steps > 0, "profile_table: steps must be positive, got ", steps);
  const double per = 1.0 / double(steps);
  auto line = [&](const std::string& what, const std::string& calls, double seconds) {
    char buf[160];
    const double share = step_seconds > 0 ? 100.0 * seconds * per / step_seconds : 0.0;
    std::snprintf(buf, sizeof buf, "  %-44s %10s %11.3f %9.1f\n", what.c_str(), calls.c_str(), seconds * per * 1e3,
                  share);
    return std::string(buf);
  };
  auto calls_str = [&](int64_t calls) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", double(calls) * per);
    return std::string(buf);
  };
  std::string out = str("  ", steps, " profiled step", steps == 1 ? "" : "s",
                        ", each entry timed between device synchronizations (per step):\n");
  char head[160];
  std::snprintf(head, sizeof head, "  %-44s %10s %11s %9s\n", "entry", "calls", "ms", "% of step");
  out += head;
  double all = 0, rest = 0;
  int64_t all_calls = 0, rest_calls = 0;
  size_t rest_rows = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    all += rows[i].seconds;
    all_calls += rows[i].calls;
    if (i < top) {
      out += line(rows[i].name, calls_str(rows[i].calls), rows[i].seconds);
    } else {
      rest += rows[i].seconds;
      rest_calls += rows[i].calls;
      ++rest_rows;
    }
  }
  if (rest_rows > 0) out += line(str("(", rest_rows, " more entries)"), calls_str(rest_calls), rest);
  out += line("all backend entries", calls_str(all_calls), all);
  out += line("outside them (autograd, allocation, host)", "", step_seconds * double(steps) - all);
  out += line("profiled step", "", step_seconds * double(steps));
  return out;
}

}  // namespace minima
