// kernels/cuda/elementwise.cu: unary ops and their derivatives, binary ops (inputs arrive expanded
// to the output's shape, stride 0 where broadcast), comparisons (u8 0/1) and where. The formulas
// are the CPU reference's (kernels/cpu/elementwise.cpp), in the same arithmetic type (float for
// f32/bf16, double for f64, int64 for integers). The op is a run-time argument of one kernel per
// dtype rather than a template argument: the switch is uniform across the grid, costs nothing
// next to the memory traffic, and keeps the number of compiled kernels small. Floating unary and
// binary ops over dense, 16-byte aligned operands (or a bias row repeated over the leading dims)
// take 16-byte vector kernels; everything else runs on the strided loop of elementwise.cuh.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

template <class A>
__device__ __forceinline__ A sigmoid_f(A x) {
  return x >= A(0) ? A(1) / (A(1) + d_exp(-x)) : d_exp(x) / (A(1) + d_exp(x));
}
// std::max / std::min semantics (the first argument wins ties and NaN comparisons).
template <class A>
__device__ __forceinline__ A std_max(A a, A b) {
  return (a < b) ? b : a;
}
template <class A>
__device__ __forceinline__ A std_min(A a, A b) {
  return (b < a) ? b : a;
}

template <class A>
__device__ __forceinline__ A unary_float(UnaryOp op, A v, A p0, A p1) {
  switch (op) {
    case UnaryOp::Neg: return -v;
    case UnaryOp::Exp: return d_exp(v);
    case UnaryOp::Log: return d_log(v);
    case UnaryOp::Sqrt: return d_sqrt(v);
    case UnaryOp::Abs: return d_abs(v);
    case UnaryOp::Relu: return !(v <= A(0)) ? v : A(0);  // NaN stays NaN, as in PyTorch
    case UnaryOp::Sigmoid: return sigmoid_f(v);
    case UnaryOp::Tanh: return d_tanh(v);
    case UnaryOp::Softplus: return std_max(v, A(0)) + d_log1p(d_exp(-d_abs(v)));
    case UnaryOp::Pow: return p0 == A(2) ? v * v : d_pow(v, p0);
    case UnaryOp::Clamp: return d_isnan(v) ? v : std_min(std_max(v, p0), p1);
    case UnaryOp::Square: return v * v;
    case UnaryOp::Sign: return v > A(0) ? A(1) : (v < A(0) ? A(-1) : A(0));
    case UnaryOp::Reciprocal: return A(1) / v;
    case UnaryOp::Log1p: return d_log1p(v);
    case UnaryOp::AddScalar: return v + p0;
    case UnaryOp::MulScalar: return v * p0;
    case UnaryOp::Affine: return v * p0 + p1;
  }
  return v;
}

__device__ __forceinline__ int64_t unary_int(UnaryOp op, int64_t v, int64_t p0, int64_t p1) {
  switch (op) {
    case UnaryOp::Neg: return wrap_neg(v);
    case UnaryOp::Abs: return v < 0 ? wrap_neg(v) : v;
    case UnaryOp::Relu: return v > 0 ? v : 0;
    case UnaryOp::Square: return wrap_mul(v, v);
    case UnaryOp::Sign: return v > 0 ? 1 : (v < 0 ? -1 : 0);
    case UnaryOp::Clamp: return std_min(std_max(v, p0), p1);
    case UnaryOp::AddScalar: return wrap_add(v, p0);
    case UnaryOp::MulScalar: return wrap_mul(v, p0);
    default: return v;  // rejected on the host
  }
}

bool int_unary_ok(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg:
    case UnaryOp::Abs:
    case UnaryOp::Relu:
    case UnaryOp::Square:
    case UnaryOp::Sign:
    case UnaryOp::Clamp:
    case UnaryOp::AddScalar:
    case UnaryOp::MulScalar: return true;
    default: return false;
  }
}

template <class T>
struct UnaryF {
  T* out;
  const T* x;
  UnaryOp op;
  Acc<T> p0, p1;
  using In = T;
  __device__ In load(const int64_t* off) const { return x[off[1]]; }
  __device__ void store(const int64_t* off, const In& xi) const {
    using A = Acc<T>;
    if constexpr (std::is_floating_point_v<A>)
      out[off[0]] = to_storage<T>(unary_float<A>(op, A(xi), p0, p1));
    else
      out[off[0]] = T(unary_int(op, int64_t(xi), p0, p1));
  }
};

template <class A>
__device__ __forceinline__ A unary_grad(UnaryOp op, A g, A v, A o, A p0, A p1) {
  switch (op) {
    case UnaryOp::Neg: return -g;
    case UnaryOp::Exp: return g * o;
    case UnaryOp::Log: return g / v;
    case UnaryOp::Sqrt: return g / (A(2) * o);
    case UnaryOp::Abs: return v > A(0) ? g : (v < A(0) ? -g : A(0));
    case UnaryOp::Relu: return v > A(0) ? g : A(0);
    case UnaryOp::Sigmoid: return g * o * (A(1) - o);
    case UnaryOp::Tanh: return g * (A(1) - o * o);
    case UnaryOp::Softplus: return g * sigmoid_f(v);
    case UnaryOp::Pow: return p0 == A(0) ? A(0) : g * p0 * d_pow(v, p0 - A(1));
    case UnaryOp::Clamp: return (v >= p0 && v <= p1) ? g : A(0);
    case UnaryOp::Square: return g * A(2) * v;
    case UnaryOp::Sign: return A(0) * g;
    case UnaryOp::Reciprocal: return -g * o * o;
    case UnaryOp::Log1p: return g / (A(1) + v);
    case UnaryOp::AddScalar: return g;
    case UnaryOp::MulScalar:
    case UnaryOp::Affine: return g * p0;
  }
  return g;
}

// gx = unary_grad(gy, s), s the one of x and y that the op's gradient reads
// (unary_backward_reads), passed as both: each element loads two tensors, not three.
template <class T>
struct UnaryBackwardF {
  T* gx;
  const T* gy;
  const T* s;
  UnaryOp op;
  Acc<T> p0, p1;
  struct In {
    T g, s;
  };
  __device__ In load(const int64_t* off) const { return {gy[off[1]], s[off[2]]}; }
  __device__ void store(const int64_t* off, const In& v) const {
    using A = Acc<T>;
    gx[off[0]] = to_storage<T>(unary_grad<A>(op, A(v.g), A(v.s), A(v.s), p0, p1));
  }
};

// The arithmetic binary ops (comparisons write uint8 and are handled by BinaryF itself).
template <class A>
__device__ __forceinline__ A binary_arith(BinaryOp op, A x, A y) {
  switch (op) {  // integers (A = int64_t) wrap and never trap: core/dtype.h
    case BinaryOp::Add: return arith_add(x, y);
    case BinaryOp::Sub: return arith_sub(x, y);
    case BinaryOp::Mul: return arith_mul(x, y);
    case BinaryOp::Div: return arith_div(x, y);
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<A>)
        return A(int_pow(int64_t(x), int64_t(y)));  // exact, wrapping
      else
        return A(pow(double(x), double(y)));
    case BinaryOp::Maximum: return (d_isnan(x) || x > y) ? x : y;
    case BinaryOp::Minimum: return (d_isnan(x) || x < y) ? x : y;
    default: return A(0);
  }
}

template <class T>
struct BinaryF {
  void* out;  // T, or uint8_t for comparisons
  const T* a;
  const T* b;
  BinaryOp op;
  struct In {
    T a, b;
  };
  __device__ In load(const int64_t* off) const { return {a[off[1]], b[off[2]]}; }
  __device__ void store(const int64_t* off, const In& v) const {
    using A = Acc<T>;
    A x = A(v.a), y = A(v.b);
    if (op >= BinaryOp::Eq) {
      bool r = false;
      switch (op) {
        case BinaryOp::Eq: r = x == y; break;
        case BinaryOp::Ne: r = x != y; break;
        case BinaryOp::Lt: r = x < y; break;
        case BinaryOp::Le: r = x <= y; break;
        case BinaryOp::Gt: r = x > y; break;
        default: r = x >= y; break;
      }
      static_cast<uint8_t*>(out)[off[0]] = r ? 1 : 0;
      return;
    }
    static_cast<T*>(out)[off[0]] = to_storage<T>(binary_arith<A>(op, x, y));
  }
};

template <class U>
struct WhereF {
  U* out;
  const uint8_t* cond;
  const U* a;
  const U* b;
  using In = U;
  __device__ In load(const int64_t* off) const { return cond[off[1]] ? a[off[2]] : b[off[3]]; }
  __device__ void store(const int64_t* off, const In& v) const { out[off[0]] = v; }
};

// ---- the vectorized path: dense operands, 16 bytes per load and store ----
// When the output and inputs are contiguous and 16-byte aligned, a thread moves whole 16-byte
// packs (4 float32, 8 bfloat16, 2 float64) instead of single elements: a quarter to an eighth of
// the memory instructions and no index arithmetic, which is what the narrow types need to reach
// the copy bandwidth. An input may also be a contiguous row repeated along the leading dims (a
// bias [C] added to [N, C]): its pack is then at i mod row.
// Where input k's pack for output element i starts: i itself (dense) or i mod row.
struct VecIndex {
  uint32_t row = 0;  // 0: dense
  FastDiv f;
  __device__ __forceinline__ uint32_t operator()(uint32_t i) const { return row ? i - f.div(i) * row : i; }
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    binary_vec_kernel(uint32_t npack, T* out, const T* a, const T* b, VecIndex ia, VecIndex ib, BinaryOp op) {
  using A = Acc<T>;
  using P = Pack<T>;
  MINIMA_GRID_STRIDE(p, npack) {
    const uint32_t i = uint32_t(p) * P::V;
    const P pa = *reinterpret_cast<const P*>(a + ia(i));
    const P pb = *reinterpret_cast<const P*>(b + ib(i));
    P r;
#pragma unroll
    for (int v = 0; v < P::V; ++v) r.v[v] = to_storage<T>(binary_arith<A>(op, A(pa.v[v]), A(pb.v[v])));
    *reinterpret_cast<P*>(out + i) = r;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    unary_vec_kernel(uint32_t npack, T* out, const T* x, UnaryOp op, Acc<T> p0, Acc<T> p1) {
  using A = Acc<T>;
  using P = Pack<T>;
  MINIMA_GRID_STRIDE(p, npack) {
    const uint32_t i = uint32_t(p) * P::V;
    const P px = *reinterpret_cast<const P*>(x + i);
    P r;
#pragma unroll
    for (int v = 0; v < P::V; ++v) r.v[v] = to_storage<T>(unary_float<A>(op, A(px.v[v]), p0, p1));
    *reinterpret_cast<P*>(out + i) = r;
  }
}

// How each input of a loop over the contiguous output `out` is read by the vector kernels: dense,
// a repeated row, or not at all (returns false; the strided loop then runs). Vectors cover whole
// packs of V elements; n % V == 0 keeps every pack inside the tensor.
template <int K>
bool vec_plan(const Tensor& out, const std::array<Tensor, K>& ins, int V, std::array<VecIndex, K>& idx) {
  const int64_t n = out.numel();
  if (n % V != 0 || n >= (int64_t(1) << 31) || !out.is_contiguous() || !aligned16(out)) return false;
  for (int k = 0; k < K; ++k) {
    const Tensor& t = ins[k];
    if (!aligned16(t)) return false;
    if (t.is_contiguous()) continue;
    // A repeated row: inner dims dense (their product is the row), leading dims of stride 0.
    int64_t row = 1;
    int d = int(t.dim()) - 1;
    for (; d >= 0 && t.stride(d) == row; --d) row *= t.size(d);
    for (int e = d; e >= 0; --e)
      if (t.stride(e) != 0 && t.size(e) != 1) return false;
    if (row % V != 0 || row >= n) return false;
    idx[k].row = uint32_t(row);
    idx[k].f = FastDiv(uint32_t(row));
  }
  return true;
}

// Runs out = a op b on the vector kernel when vec_plan allows (floating types, arithmetic ops).
template <class T>
bool binary_vec(const Ctx& ctx, BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if constexpr (!std::is_floating_point_v<Acc<T>>) {
    return false;
  } else {
    std::array<VecIndex, 2> vi;
    if (op >= BinaryOp::Eq || !vec_plan<2>(out, {a, b}, Pack<T>::V, vi)) return false;
    const uint32_t npack = uint32_t(out.numel() / Pack<T>::V);
    MINIMA_LAUNCH(binary_vec_kernel<T>, dim3(grid_1d(npack, ctx.dev)), dim3(kThreads), 0, ctx.stream, npack,
                  static_cast<T*>(out.data_ptr()), static_cast<const T*>(a.data_ptr()),
                  static_cast<const T*>(b.data_ptr()), vi[0], vi[1], op);
    return true;
  }
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) {
  Ctx ctx(out);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    if constexpr (std::is_floating_point_v<A>) {
      std::array<VecIndex, 1> vi;
      if (x.is_contiguous() && vec_plan<1>(out, {x}, Pack<T>::V, vi)) {
        const uint32_t npack = uint32_t(out.numel() / Pack<T>::V);
        MINIMA_LAUNCH(unary_vec_kernel<T>, dim3(grid_1d(npack, ctx.dev)), dim3(kThreads), 0, ctx.stream, npack,
                      static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()), op, A(p0), A(p1));
        return;
      }
    }
    UnaryF<T> f{static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()), op, A(p0), A(p1)};
    launch_elementwise<2>(ctx, out.shape(), {out, x}, f);
  };
  if (!is_floating(x.dtype())) MINIMA_CHECK(int_unary_ok(op), "unary op ", int(op), " is not defined for ", x.dtype());
  switch (x.dtype()) {
    case DType::f32: run(float{}); break;
    case DType::f64: run(double{}); break;
    case DType::bf16: run(bf16{}); break;
    case DType::i64: run(int64_t{}); break;
    case DType::u8: run(uint8_t{}); break;
  }
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y,
                                 double p0, double p1) {
  Ctx ctx(gx);
  // The gradient reads gy and at most one of x and y (unary_backward_reads): only that one is
  // loaded (gy again, a cache hit, for the ops that need neither), three tensors where four
  // streamed, as on the CPU.
  const UnaryReads reads = unary_backward_reads(op);
  const Tensor& s = reads == UnaryReads::input ? x : reads == UnaryReads::output ? y : gy;
  MINIMA_DISPATCH_FLOAT(x.dtype(), "unary_backward", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    UnaryBackwardF<T> f{static_cast<T*>(gx.data_ptr()),
                        static_cast<const T*>(gy.data_ptr()),
                        static_cast<const T*>(s.data_ptr()),
                        op,
                        A(p0),
                        A(p1)};
    launch_elementwise<3>(ctx, gx.shape(), {gx, gy, s}, f);
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  Ctx ctx(out);
  MINIMA_CHECK(a.dtype() == b.dtype(), "binary: operands of dtypes ", a.dtype(), " and ", b.dtype());
  MINIMA_DISPATCH_ALL(a.dtype(), "binary", [&] {
    using T = scalar_t;
    if (binary_vec<T>(ctx, op, out, a, b)) return;
    BinaryF<T> f{out.data_ptr(), static_cast<const T*>(a.data_ptr()), static_cast<const T*>(b.data_ptr()), op};
    launch_elementwise<3>(ctx, out.shape(), {out, a, b}, f);
  });
}

namespace {
template <class U>
void launch_where(const Ctx& ctx, const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  WhereF<U> f{static_cast<U*>(out.data_ptr()), static_cast<const uint8_t*>(cond.data_ptr()),
              static_cast<const U*>(a.data_ptr()), static_cast<const U*>(b.data_ptr())};
  launch_elementwise<4>(ctx, out.shape(), {out, cond, a, b}, f);
}
}  // namespace

void CudaBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  Ctx ctx(out);
  MINIMA_CHECK(cond.dtype() == DType::u8, "where: the condition must be uint8, got ", cond.dtype());
  switch (out.element_size()) {
    case 1: launch_where<uint8_t>(ctx, out, cond, a, b); break;
    case 2: launch_where<uint16_t>(ctx, out, cond, a, b); break;
    case 4: launch_where<uint32_t>(ctx, out, cond, a, b); break;
    default: launch_where<uint64_t>(ctx, out, cond, a, b); break;
  }
}

void add_channel_bias(const Tensor& y, const Tensor& bias0, const Ctx& ctx) {
  NoGradGuard ng;
  Tensor bias = bias0.dtype() == y.dtype() ? bias0 : bias0.to(y.dtype());
  Shape s(size_t(y.dim()), 1);
  s[1] = y.size(1);
  Tensor b = bias.reshape(s).expand(y.shape());
  static_cast<CudaBackend&>(cuda_backend()).binary(BinaryOp::Add, y, y, b);
}

}  // namespace minima::cuda
