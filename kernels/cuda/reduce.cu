// kernels/cuda/reduce.cu: sum / max / min / argmax / argmin along any set of dims of a strided
// tensor. The problem is seen as out[o] = reduce over r of x[out_off(o) + red_off(r)], with the
// kept dims and the reduced dims each merged where contiguous. Two layouts:
//  * row: the reduced dims include the input's unit-stride dim, so a group of threads (a warp, or
//    the whole 256-thread block when rows are long) reads one output's elements side by side and
//    combines them with warp shuffles (and shared memory across warps);
//  * column: the kept dims have the unit stride, so one thread per output walks its elements
//    while neighbouring threads read neighbouring addresses.
// When there are too few outputs to fill the device, the reduced range is cut into `splits`
// chunks (grid.y); each writes a partial result and a second kernel combines the partials in
// split order. No atomics anywhere: every sum is a fixed tree, so results are bitwise
// reproducible. Float sums accumulate in float (the CPU reference uses double; tests compare
// with a tolerance), f64 in double, integers in int64.
// Argmax/argmin follow the CPU's rule: the first NaN wins, else the first extreme value.
#include <limits>

#include "kernels/cuda/cuda_common.cuh"

namespace minima::cuda {

namespace {

template <class A>
__device__ __forceinline__ A lowest() {
  if constexpr (std::is_floating_point_v<A>)
    return -d_inf<A>();
  else
    return std::numeric_limits<A>::lowest();
}
template <class A>
__device__ __forceinline__ A highest() {
  if constexpr (std::is_floating_point_v<A>)
    return d_inf<A>();
  else
    return std::numeric_limits<A>::max();
}

// Sum, Max, Min: the state is a value in the accumulation type.
template <class T>
struct ValueReducer {
  using A = Acc<T>;
  using State = A;
  ReduceOp op;
  __device__ State identity() const {
    return op == ReduceOp::Sum ? A(0) : (op == ReduceOp::Max ? lowest<A>() : highest<A>());
  }
  __device__ State make(T v, int64_t) const { return A(v); }
  __device__ State combine(State a, State b) const {
    if (op == ReduceOp::Sum) return arith_add(a, b);  // integers modulo 2^64 (core/dtype.h)
    if (d_isnan(a)) return a;
    if (d_isnan(b)) return b;
    if (op == ReduceOp::Max) return b > a ? b : a;
    return b < a ? b : a;
  }
  __device__ State shfl_xor(State s, int mask) const { return __shfl_xor_sync(0xffffffffu, s, mask); }
  __device__ void write(void* out, int64_t o, State s) const { static_cast<T*>(out)[o] = to_storage<T>(s); }
};

// ArgMax, ArgMin: (value, index); the identity has index INT64_MAX, which loses every tie.
template <class T>
struct ArgReducer {
  using A = Acc<T>;
  struct State {
    A v;
    int64_t i;
  };
  bool is_max;
  __device__ State identity() const { return {is_max ? lowest<A>() : highest<A>(), INT64_MAX}; }
  __device__ State make(T v, int64_t r) const { return {A(v), r}; }
  __device__ State combine(State a, State b) const {
    bool an = d_isnan(a.v), bn = d_isnan(b.v);
    if (an || bn) {
      if (an && bn) return a.i <= b.i ? a : b;
      return an ? a : b;
    }
    if (a.v == b.v) return a.i <= b.i ? a : b;
    bool b_better = is_max ? b.v > a.v : b.v < a.v;
    return b_better ? b : a;
  }
  __device__ State shfl_xor(State s, int mask) const {
    return {__shfl_xor_sync(0xffffffffu, s.v, mask), __shfl_xor_sync(0xffffffffu, s.i, mask)};
  }
  __device__ void write(void* out, int64_t o, State s) const { static_cast<int64_t*>(out)[o] = s.i; }
};

template <class R>
__device__ __forceinline__ typename R::State warp_reduce(const R& r, typename R::State s) {
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) s = r.combine(s, r.shfl_xor(s, m));
  return s;
}

// Row layout: `tpo` threads (32 or 256) per output, 256 / tpo outputs per block; grid.y = split.
template <class T, class R>
__global__ void __launch_bounds__(kThreads)
    reduce_row_kernel(const T* x, OffsetCalc<1> oix, OffsetCalc<1> rix, int64_t n_out, int64_t n_red, int64_t chunk,
                      int tpo, R red, typename R::State* partial, void* out) {
  using S = typename R::State;
  __shared__ S scratch[kThreads / 32];
  const int groups = kThreads / tpo;
  const int g = threadIdx.x / tpo, lane = threadIdx.x % tpo;
  const int64_t o = int64_t(blockIdx.x) * groups + g;
  const int64_t r0 = int64_t(blockIdx.y) * chunk;
  const int64_t r1 = min(n_red, r0 + chunk);
  S acc = red.identity();
  if (o < n_out) {
    int64_t ob[1];
    oix.get(o, ob);
    for (int64_t r = r0 + lane; r < r1; r += tpo) {
      int64_t rb[1];
      rix.get(r, rb);
      acc = red.combine(acc, red.make(x[ob[0] + rb[0]], r));
    }
  }
  acc = warp_reduce(red, acc);
  if (tpo > 32) {  // one group spans the block: combine the warps' results
    int w = threadIdx.x >> 5;
    if ((threadIdx.x & 31) == 0) scratch[w] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
      acc = threadIdx.x < kThreads / 32 ? scratch[threadIdx.x] : red.identity();
      acc = warp_reduce(red, acc);
    }
  }
  if (lane == 0 && o < n_out) {
    if (partial)
      partial[int64_t(blockIdx.y) * n_out + o] = acc;
    else
      red.write(out, o, acc);
  }
}

// Column layout: one thread per output; grid.y = split.
template <class T, class R>
__global__ void __launch_bounds__(kThreads)
    reduce_col_kernel(const T* x, OffsetCalc<1> oix, OffsetCalc<1> rix, int64_t n_out, int64_t n_red, int64_t chunk,
                      R red, typename R::State* partial, void* out) {
  using S = typename R::State;
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= n_out) return;
  const int64_t r0 = int64_t(blockIdx.y) * chunk;
  const int64_t r1 = min(n_red, r0 + chunk);
  int64_t ob[1];
  oix.get(o, ob);
  S acc = red.identity();
  for (int64_t r = r0; r < r1; ++r) {
    int64_t rb[1];
    rix.get(r, rb);
    acc = red.combine(acc, red.make(x[ob[0] + rb[0]], r));
  }
  if (partial)
    partial[int64_t(blockIdx.y) * n_out + o] = acc;
  else
    red.write(out, o, acc);
}

// Combines the partial results of the splits, in split order.
template <class R>
__global__ void reduce_finalize_kernel(const typename R::State* partial, int splits, int64_t n_out, R red, void* out) {
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < n_out; o += int64_t(gridDim.x) * blockDim.x) {
    typename R::State acc = partial[o];
    for (int s = 1; s < splits; ++s) acc = red.combine(acc, partial[int64_t(s) * n_out + o]);
    red.write(out, o, acc);
  }
}

// Sizes/strides listed outermost first -> an OffsetCalc<1> (merging contiguous neighbours).
OffsetCalc<1> make_dim_calc(const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  return make_offset_calc_raw<1>(Shape(size.begin(), size.end()), {stride.data()});
}

struct Plan {
  OffsetCalc<1> oix, rix;
  int64_t n_out = 1, n_red = 1;
  bool row = true;
  int tpo = 32;
  int64_t splits = 1, chunk = 1;
};

Plan make_plan(const Tensor& x, const std::vector<int64_t>& dims, int dev) {
  std::vector<bool> red(size_t(x.dim()), false);
  for (int64_t d : dims) red[size_t(d)] = true;
  std::vector<int64_t> osz, ost, rsz, rst;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.shape()[d] == 1) continue;
    (red[size_t(d)] ? rsz : osz).push_back(x.shape()[d]);
    (red[size_t(d)] ? rst : ost).push_back(x.strides()[d]);
  }
  Plan p;
  for (int64_t s : osz) p.n_out *= s;
  for (int64_t s : rsz) p.n_red *= s;
  // Read along whichever group holds the unit stride (make_offset_calc merges dims anyway).
  bool red_unit = false, out_unit = false;
  for (int64_t st : rst) red_unit = red_unit || st == 1 || st == -1;
  for (int64_t st : ost) out_unit = out_unit || st == 1 || st == -1;
  p.row = red_unit || !out_unit || p.n_out < 64;
  p.oix = make_dim_calc(osz, ost);
  p.rix = make_dim_calc(rsz, rst);
  int64_t target = int64_t(sm_count(dev)) * 4;  // blocks that keep every SM busy
  if (p.row) {
    p.tpo = p.n_red >= 1024 ? kThreads : 32;
    int64_t blocks = (p.n_out + (kThreads / p.tpo) - 1) / (kThreads / p.tpo);
    int64_t max_splits = std::max<int64_t>(1, p.n_red / (int64_t(p.tpo) * 16));
    if (blocks < target) p.splits = std::min<int64_t>((target + blocks - 1) / blocks, max_splits);
  } else {
    int64_t blocks = (p.n_out + kThreads - 1) / kThreads;
    int64_t max_splits = std::max<int64_t>(1, p.n_red / 64);
    if (blocks < target) p.splits = std::min<int64_t>((target + blocks - 1) / blocks, max_splits);
  }
  p.splits = std::max<int64_t>(1, std::min<int64_t>(p.splits, 65535));
  p.chunk = (p.n_red + p.splits - 1) / p.splits;
  p.splits = std::max<int64_t>(1, (p.n_red + p.chunk - 1) / p.chunk);
  return p;
}

template <class T, class R>
void run_reduce(const Ctx& ctx, const Plan& p, const T* x, const R& red, void* out) {
  using S = typename R::State;
  DeviceBuffer partial;
  S* part = nullptr;
  if (p.splits > 1) {
    partial = DeviceBuffer(size_t(p.splits * p.n_out) * sizeof(S), ctx.dev);
    part = partial.as<S>();
  }
  // One block per `kThreads / tpo` outputs (rows) or per kThreads outputs (columns).
  const int64_t per_block = p.row ? kThreads / p.tpo : kThreads;
  const int64_t blocks = (p.n_out + per_block - 1) / per_block;
  MINIMA_CHECK(blocks <= int64_t(INT32_MAX), "reduce: too many outputs for one launch (", p.n_out, ")");
  if (p.row) {
    dim3 grid(unsigned(blocks), unsigned(p.splits));
    MINIMA_LAUNCH((reduce_row_kernel<T, R>), grid, dim3(kThreads), 0, ctx.stream, x, p.oix, p.rix, p.n_out, p.n_red,
                  p.chunk, p.tpo, red, part, out);
  } else {
    dim3 grid(unsigned(blocks), unsigned(p.splits));
    MINIMA_LAUNCH((reduce_col_kernel<T, R>), grid, dim3(kThreads), 0, ctx.stream, x, p.oix, p.rix, p.n_out, p.n_red,
                  p.chunk, red, part, out);
  }
  if (part) {
    MINIMA_LAUNCH((reduce_finalize_kernel<R>), dim3(grid_1d(p.n_out, ctx.dev)), dim3(kThreads), 0, ctx.stream, part,
                  int(p.splits), p.n_out, red, out);
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) {
  MINIMA_CHECK(out.is_contiguous(), "reduce: output must be contiguous");
  Ctx ctx(x);
  bool arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
  if (x.dim() == 0) {  // a 0-d tensor reduces to itself (or index 0)
    if (arg)
      fill(out, 0.0);
    else
      copy(out, x);
    return;
  }
  if (out.numel() == 0) return;
  MINIMA_CHECK(x.numel() > 0, "reduce: empty input of shape ", x.shape());
  Plan p = make_plan(x, dims, ctx.dev);
  MINIMA_DISPATCH_ALL(x.dtype(), "reduce", [&] {
    using T = scalar_t;
    const T* xp = static_cast<const T*>(x.data_ptr());
    if (arg)
      run_reduce<T>(ctx, p, xp, ArgReducer<T>{op == ReduceOp::ArgMax}, out.data_ptr());
    else
      run_reduce<T>(ctx, p, xp, ValueReducer<T>{op}, out.data_ptr());
  });
}

}  // namespace minima::cuda
