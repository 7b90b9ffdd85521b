// core/ops.cpp: elementwise, reduction, linear-algebra and shape ops of the front-end, with their
// gradient rules. Every rule is written with front-end ops, so it runs on any backend.
// (Convolution, pooling, batch norm and losses live in core/ops_nn.cpp.)
#include "core/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/autograd.h"
#include "core/random.h"

namespace minima {

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  MINIMA_CHECK(d >= -n && d < n, op, ": dim ", d, " is out of range for a tensor with ", ndim, " dims");
  return d < 0 ? d + n : d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MINIMA_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b, " cannot be broadcast together (dim ",
                 i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.dim() - int64_t(shape.size());
  MINIMA_CHECK(lead >= 0, "sum_to: cannot reduce shape ", g.shape(), " to ", shape);
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < g.dim(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)) {  // a new or a broadcast dim
      dims.push_back(i);
    } else {
      MINIMA_CHECK(shape[i - lead] == g.shape()[i], "sum_to: cannot reduce shape ", g.shape(), " to ", shape);
    }
  }
  Tensor r = dims.empty() ? g : sum(g, dims, true);
  return r.reshape(shape);
}

namespace {

void check_device(const char* op, const Tensor& a, const Tensor& b) {
  MINIMA_CHECK(a.defined() && b.defined(), op, ": undefined tensor argument");
  MINIMA_CHECK(a.device() == b.device(), op, ": expected both tensors on the same device, got ", a.device(), " (shape ",
               a.shape(), ") and ", b.device(), " (shape ", b.shape(), ")");
}

Tensor as_dtype(const Tensor& t, DType d) { return t.dtype() == d ? t : t.to(d); }

// Computes op(a, b) without recording anything.
Tensor binary_raw(BinaryOp op, const Tensor& a0, const Tensor& b0) {
  const char* name = op_name(op);
  check_device(name, a0, b0);
  DType t = promote(a0.dtype(), b0.dtype());
  Shape s = broadcast_shapes(a0.shape(), b0.shape(), name);
  Tensor a = as_dtype(a0, t).detach(), b = as_dtype(b0, t).detach();
  Tensor out = empty(s, TensorOptions(is_comparison(op) ? DType::u8 : t, a.device()));
  backend_for(a.device()).binary(op, out, a.expand(s), b.expand(s));
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(op, a, b);
  if (is_comparison(op) || !needs_graph({&a, &b})) return out;
  Shape sa = a.shape(), sb = b.shape();
  Tensor ad = a.detach(), bd = b.detach();
  switch (op) {
    case BinaryOp::Add:
      record(out, "add", {a, b}, [sa, sb](const Tensor& g) {
        return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
      });
      break;
    case BinaryOp::Sub:
      record(out, "sub", {a, b}, [sa, sb](const Tensor& g) {
        return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
      });
      break;
    case BinaryOp::Mul: {
      bool need_a = a.requires_grad(), need_b = b.requires_grad();
      record(out, "mul", {a, b},
             [=](const Tensor& g) {
               return std::vector<Tensor>{need_a ? sum_to(mul(g, bd), sa) : Tensor(),
                                          need_b ? sum_to(mul(g, ad), sb) : Tensor()};
             },
             {need_b ? ad : Tensor(), need_a ? bd : Tensor()});
      break;
    }
    case BinaryOp::Div: {
      bool need_b = b.requires_grad();
      record(out, "div", {a, b},
             [=](const Tensor& g) {
               Tensor ga = div(g, bd);
               Tensor gb = need_b ? sum_to(neg(mul(ga, div(ad, bd))), sb) : Tensor();
               return std::vector<Tensor>{sum_to(ga, sa), gb};
             },
             {need_b ? ad : Tensor(), bd});
      break;
    }
    case BinaryOp::Pow: {
      Tensor od = out.detach();
      bool need_b = b.requires_grad();
      record(out, "pow", {a, b},
             [=](const Tensor& g) {
               // d/da a^b = b a^(b-1), taken as 0 where b == 0 (also at a == 0, where a^(b-1) is
               // infinite); d/db a^b = a^b log a, taken as 0 where a == 0 and b >= 0 (a^b is 0 or
               // 1 there and log a is -inf). PyTorch masks the same points.
               Tensor zero = zeros({}, TensorOptions(g.dtype(), g.device()));
               Tensor af = as_dtype(ad, g.dtype()), bf = as_dtype(bd, g.dtype());  // an integer base or exponent
               Tensor ga = mul(g, where(eq(bf, zero), zero, mul(bf, pow(af, sub(bf, ones_like(bf))))));
               Tensor gb;
               if (need_b) {
                 Tensor at_zero = mul(eq(af, zero), ge(bf, zero));  // uint8 masks: their product is "and"
                 gb = sum_to(mul(g, where(at_zero, zero, mul(od, log(af)))), sb);
               }
               return std::vector<Tensor>{sum_to(ga, sa), gb};
             },
             {ad, bd, need_b ? od : Tensor()});
      break;
    }
    case BinaryOp::Maximum:
    case BinaryOp::Minimum: {
      bool is_max = op == BinaryOp::Maximum;
      record(out, is_max ? "maximum" : "minimum", {a, b},
             [=](const Tensor& g) {
               // Ties split the gradient evenly, as PyTorch does.
               Tensor win_a = as_dtype(is_max ? gt(ad, bd) : lt(ad, bd), g.dtype());
               Tensor tie = as_dtype(eq(ad, bd), g.dtype());
               Tensor wa = add(win_a, mul(tie, 0.5));
               Tensor wb = sub(ones_like(wa), wa);
               return std::vector<Tensor>{sum_to(mul(g, wa), sa), sum_to(mul(g, wb), sb)};
             },
             {ad, bd});
      break;
    }
    default: break;
  }
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x, double p0 = 0.0, double p1 = 0.0) {
  const char* name = op_name(op);
  MINIMA_CHECK(x.defined(), name, ": undefined tensor");
  bool int_ok = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::AddScalar || op == UnaryOp::MulScalar ||
                op == UnaryOp::Sign || op == UnaryOp::Square || op == UnaryOp::Clamp || op == UnaryOp::Relu;
  MINIMA_CHECK(is_floating(x.dtype()) || int_ok, name, ": expected a floating tensor, got ", x.dtype(), " of shape ",
               x.shape());
  if (op == UnaryOp::AddScalar || op == UnaryOp::MulScalar) check_integral_scalar(name, x, p0);
  Tensor out = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).unary(op, out, x.detach(), p0, p1);
  if (needs_graph({&x}) && op != UnaryOp::Sign) {
    Tensor xd = x.detach(), yd = out.detach();
    const UnaryReads reads = unary_backward_reads(op);
    record(out, name, {x},
           [=](const Tensor& g) {
             Tensor gx = empty(xd.shape(), TensorOptions(xd.dtype(), xd.device()));
             backend_for(xd.device()).unary_backward(op, gx, g, xd, yd, p0, p1);
             return std::vector<Tensor>{gx};
           },
           {reads == UnaryReads::input ? xd : Tensor(), reads == UnaryReads::output ? yd : Tensor()});
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Minimum, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Ge, a, b); }

Tensor add(const Tensor& a, double s) { return unary(UnaryOp::AddScalar, a, s); }
Tensor mul(const Tensor& a, double s) { return unary(UnaryOp::MulScalar, a, s); }
Tensor pow(const Tensor& a, double p) { return unary(UnaryOp::Pow, a, p); }
Tensor neg(const Tensor& a) { return unary(UnaryOp::Neg, a); }
Tensor exp(const Tensor& a) { return unary(UnaryOp::Exp, a); }
Tensor log(const Tensor& a) { return unary(UnaryOp::Log, a); }
Tensor log1p(const Tensor& a) { return unary(UnaryOp::Log1p, a); }
Tensor sqrt(const Tensor& a) { return unary(UnaryOp::Sqrt, a); }
Tensor abs(const Tensor& a) { return unary(UnaryOp::Abs, a); }
Tensor square(const Tensor& a) { return unary(UnaryOp::Square, a); }
Tensor sign(const Tensor& a) { return unary(UnaryOp::Sign, a); }
Tensor reciprocal(const Tensor& a) { return unary(UnaryOp::Reciprocal, a); }
Tensor clamp(const Tensor& a, double lo, double hi) {
  MINIMA_CHECK(!std::isnan(lo) && !std::isnan(hi), "clamp: a NaN bound (min ", lo, ", max ", hi, ")");
  MINIMA_CHECK(!(lo > hi), "clamp: min ", lo, " is greater than max ", hi);
  if (a.defined() && !is_floating(a.dtype())) {             // an infinite bound is no bound; others must be integers
    constexpr double kMin = -0x1p63, kMax = 0x1p63 - 1024;  // the int64 range, as doubles
    lo = lo == -INFINITY ? kMin : lo;
    hi = hi == INFINITY ? kMax : hi;
    check_integral_scalar("clamp", a, lo);
    check_integral_scalar("clamp", a, hi);
  }
  return unary(UnaryOp::Clamp, a, lo, hi);
}
Tensor relu(const Tensor& a) { return unary(UnaryOp::Relu, a); }
Tensor sigmoid(const Tensor& a) { return unary(UnaryOp::Sigmoid, a); }
Tensor tanh(const Tensor& a) { return unary(UnaryOp::Tanh, a); }
Tensor softplus(const Tensor& a) { return unary(UnaryOp::Softplus, a); }

Tensor where(const Tensor& cond, const Tensor& a0, const Tensor& b0) {
  check_device("where", cond, a0);
  check_device("where", a0, b0);
  MINIMA_CHECK(cond.dtype() == DType::u8, "where: the condition must be a uint8 mask, got ", cond.dtype());
  DType t = promote(a0.dtype(), b0.dtype());
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a0.shape(), "where"), b0.shape(), "where");
  Tensor a = as_dtype(a0, t), b = as_dtype(b0, t);
  Tensor out = empty(s, TensorOptions(t, a.device()));
  backend_for(a.device()).where(out, cond.detach().expand(s), a.detach().expand(s), b.detach().expand(s));
  if (needs_graph({&a, &b})) {
    Tensor c = cond.detach();
    Shape sa = a.shape(), sb = b.shape();
    record(out, "where", {a, b},
           [=](const Tensor& g) {
             Tensor z = zeros({}, TensorOptions(g.dtype(), g.device()));
             return std::vector<Tensor>{sum_to(where(c, g, z), sa), sum_to(where(c, z, g), sb)};
           },
           {c});
  }
  return out;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) {
  MINIMA_CHECK(!a.defined() || is_floating(a.dtype()), "div: the tensor of shape ", a.shape(), " is ", a.dtype(),
               ", and dividing it by a scalar would truncate; convert it to a floating dtype first (.to(DType::f32))");
  return mul(a, 1.0 / s);
}
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(double s, const Tensor& a) { return unary(UnaryOp::Affine, a, -1.0, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------
namespace {

std::vector<int64_t> norm_dims(std::vector<int64_t> dims, int64_t ndim, const char* op) {
  if (dims.empty()) {
    dims.resize(size_t(ndim));
    std::iota(dims.begin(), dims.end(), 0);
  }
  for (auto& d : dims) d = wrap_dim(d, ndim, op);
  if (ndim == 0) return {};  // dim 0/-1 of a 0-d tensor: nothing to reduce over
  std::sort(dims.begin(), dims.end());
  MINIMA_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op, ": repeated dim in ", dims);
  return dims;
}

Shape keep_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape k = s;
  for (int64_t d : dims) k[d] = 1;
  return k;
}

Shape drop_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape r;
  for (int64_t i = 0; i < int64_t(s.size()); ++i)
    if (!std::binary_search(dims.begin(), dims.end(), i)) r.push_back(s[i]);
  return r;
}

Tensor reduce_raw(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, DType out_t) {
  Tensor out = empty(keep_shape(x.shape(), dims), TensorOptions(out_t, x.device()));
  if (x.numel() == 0 && op == ReduceOp::Sum) {
    out.fill_(0.0);
    return out;
  }
  if (x.numel() == 0 && out.numel() == 0) return out;  // no element to reduce into: an empty result
  MINIMA_CHECK(x.numel() > 0 || op == ReduceOp::Sum, "reduction over an empty dim of shape ", x.shape(),
               " (only a sum has a value there, 0)");
  backend_for(x.device()).reduce(op, out, x.detach(), dims);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims0, bool keepdim) {
  auto dims = norm_dims(std::move(dims0), x.dim(), "sum");
  DType t = is_floating(x.dtype()) ? x.dtype() : DType::i64;
  Tensor out = reduce_raw(ReduceOp::Sum, as_dtype(x, t), dims, t);
  if (needs_graph({&x})) {
    Shape in = x.shape(), keep = out.shape();
    record(out, "sum", {x}, [in, keep](const Tensor& g) { return std::vector<Tensor>{g.reshape(keep).expand(in)}; });
  }
  return keepdim ? out : out.reshape(drop_shape(x.shape(), dims));
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims0, bool keepdim) {
  MINIMA_CHECK(is_floating(x.dtype()), "mean: expected a floating tensor, got ", x.dtype());
  auto dims = norm_dims(std::move(dims0), x.dim(), "mean");
  double n = 1;  // a count past 2^53 only rounds; as an int64 it could overflow (an expanded empty tensor)
  for (int64_t d : dims) n *= double(x.dim() ? x.shape()[d] : 1);
  return mul(sum(x, dims, keepdim), 1.0 / n);  // n = 0: NaN (0/0), as PyTorch's
}

static Tensor minmax(const Tensor& x, std::vector<int64_t> dims0, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  auto dims = norm_dims(std::move(dims0), x.dim(), name);
  Tensor out = reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, x, dims, x.dtype());
  if (needs_graph({&x})) {
    Tensor xd = x.detach(), od = out.detach();
    Shape keep = out.shape();
    record(out, name, {x},
           [=](const Tensor& g) {
             // The gradient is shared evenly among the elements that attain the extremum.
             Tensor mask = as_dtype(eq(xd, od), g.dtype());
             Tensor cnt = sum(mask, dims, true);
             return std::vector<Tensor>{mul(mask, div(g.reshape(keep), cnt))};
           },
           {xd, od});
  }
  return keepdim ? out : out.reshape(drop_shape(x.shape(), dims));
}
Tensor max(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return minmax(x, std::move(dims), keepdim, true);
}
Tensor min(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return minmax(x, std::move(dims), keepdim, false);
}

Tensor var(const Tensor& x, std::vector<int64_t> dims0, bool keepdim, int64_t correction) {
  auto dims = norm_dims(std::move(dims0), x.dim(), "var");
  double n = 1;  // as in mean
  for (int64_t d : dims) n *= double(x.dim() ? x.shape()[d] : 1);
  MINIMA_CHECK(n - double(correction) > 0, "var: ", n, " elements are too few for correction ", correction);
  Tensor d = sub(x, mean(x, dims, true));
  return mul(sum(square(d), dims, keepdim), 1.0 / (n - double(correction)));
}

static Tensor arg_extreme(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "argmax" : "argmin";
  int64_t d = wrap_dim(dim, x.dim(), name);
  MINIMA_CHECK(x.dim() == 0 || x.shape()[d] > 0, name, ": empty dim ", d, " in shape ", x.shape());
  std::vector<int64_t> dims;  // a 0-d tensor has no dim to reduce (its argmax is 0)
  if (x.dim() > 0) dims.push_back(d);
  Tensor out = reduce_raw(is_max ? ReduceOp::ArgMax : ReduceOp::ArgMin, x, dims, DType::i64);
  return keepdim ? out : out.reshape(drop_shape(x.shape(), {d}));
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, true); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, false); }

// ---------------------------------------------------------------------------------------------
// Matrix products
// ---------------------------------------------------------------------------------------------
namespace {
Tensor bmm(const Tensor& a, const Tensor& b);

// Whether t's matrices are column-major: t is a transposed view of row-major matrices, as
// Linear's weight.t() is.
bool column_major(const Tensor& t) {
  return t.size(1) > 1 && t.size(2) > 1 && t.stride(1) == 1 && t.stride(2) == t.size(1);
}

// p @ q laid out as `like`: column-major when like is (computed as (q^T @ p^T)^T, the same
// products summed in the same order). A gradient then reaches a transposed parameter in the
// parameter's own row-major layout, and adding it into the parameter's gradient buffer is a
// contiguous add instead of a strided one (27x slower for a 512x3072 Linear weight on a CPU).
Tensor bmm_like(const Tensor& like, const Tensor& p, const Tensor& q) {
  if (column_major(like)) return bmm(q.transpose(1, 2), p.transpose(1, 2)).transpose(1, 2);
  return bmm(p, q);
}

// c[b] = a[b] @ b[b] for rank-3 tensors of equal batch size (any strides).
Tensor bmm(const Tensor& a, const Tensor& b) {
  MINIMA_CHECK(a.shape()[0] == b.shape()[0] && a.shape()[2] == b.shape()[1],
               "matmul: cannot multiply batches of shapes ", a.shape(), " and ", b.shape());
  Tensor out = empty({a.shape()[0], a.shape()[1], b.shape()[2]}, TensorOptions(a.dtype(), a.device()));
  backend_for(a.device()).gemm(out, a.detach(), b.detach(), 1.0, 0.0);
  if (needs_graph({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    record(out, "matmul", {a, b},
           [=](const Tensor& g) {
             return std::vector<Tensor>{need_a ? bmm_like(ad, g, bd.transpose(1, 2)) : Tensor(),
                                        need_b ? bmm_like(bd, ad.transpose(1, 2), g) : Tensor()};
           },
           {need_b ? ad : Tensor(), need_a ? bd : Tensor()});
  }
  return out;
}
}  // namespace

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  check_device("matmul", a0, b0);
  MINIMA_CHECK(a0.dim() >= 1 && b0.dim() >= 1, "matmul: both arguments need at least 1 dim, got ", a0.shape(), " and ",
               b0.shape());
  MINIMA_CHECK(is_floating(a0.dtype()) && is_floating(b0.dtype()), "matmul: expected floating tensors, got ",
               a0.dtype(), " and ", b0.dtype());
  DType t = promote(a0.dtype(), b0.dtype());
  Tensor a = as_dtype(a0, t), b = as_dtype(b0, t);
  bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec) a = a.unsqueeze(0);
  if (b_vec) b = b.unsqueeze(1);
  int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  MINIMA_CHECK(K == K2, "matmul: shapes ", a0.shape(), " and ", b0.shape(), " cannot be multiplied (", K, " != ", K2,
               ")");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  int64_t B = numel_of(batch);
  Shape ea = batch, eb = batch;
  ea.insert(ea.end(), {M, K});
  eb.insert(eb.end(), {K, N});
  Tensor a3 = a.expand(ea).reshape({B, M, K});
  Tensor b3 = b.expand(eb).reshape({B, K, N});
  Tensor c = bmm(a3, b3);
  Shape out = batch;
  if (!a_vec) out.push_back(M);
  if (!b_vec) out.push_back(N);
  return c.reshape(out);
}

// y = x @ w^T + b, one node in the graph. It runs the products and the sum that matmul and add
// would (the same backend calls on the same operands, so bitwise the same results), but its
// backward adds w's gradient straight into w's existing gradient buffer (record_into: a product
// with beta = 1), where matmul's would return an [out, in] gradient for autograd to add into it:
// with an optimizer's flat gradients, that add read and wrote every weight gradient once more per
// step. Mixed dtypes or devices take the composite form, which promotes or reports them.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  MINIMA_CHECK(w.dim() == 2, "linear: weight must be [out, in], got ", w.shape());
  MINIMA_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input of shape ", x.shape(),
               " does not match weight of shape ", w.shape(), " (expected last dim ", w.size(1), ")");
  MINIMA_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "linear: bias of shape ", b.shape(),
               " does not match weight of shape ", w.shape());
  const int64_t in = w.size(1), out = w.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out;
  // Rows counted, not inferred: with no input features, reshape could not infer a -1.
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  const DType t = x.dtype();
  const bool one_kind = is_floating(t) && w.dtype() == t && w.device() == x.device() &&
                        (!b.defined() || (b.dtype() == t && b.device() == x.device()));
  if (!one_kind) {
    Tensor y = matmul(x.reshape({rows, in}), w.t());
    if (b.defined()) y = add(y, b);
    return y.reshape(out_shape);
  }
  const Tensor a3 = x.detach().reshape({1, rows, in});
  const Tensor w3 = w.detach().t().unsqueeze(0);  // [1, in, out]: column-major when w is contiguous
  Backend& be = backend_for(x.device());
  Tensor y = empty(out_shape, TensorOptions(t, x.device()));
  const Tensor y3 = y.reshape({1, rows, out});
  be.gemm(y3, a3, w3, 1.0, 0.0);
  if (b.defined()) be.binary(BinaryOp::Add, y3, y3, b.detach().expand(y3.shape()));
  if (needs_graph({&x, &w, &b})) {
    const bool need_x = x.requires_grad(), need_w = w.requires_grad(), need_b = b.defined() && b.requires_grad();
    const Shape x_shape = x.shape(), b_shape = need_b ? b.shape() : Shape();
    record_into(y, "linear", {x, w, b},
                [=](const Tensor& g0, const std::vector<Tensor>& into) {
                  const Tensor g3 = g0.reshape({1, rows, out});
                  Tensor gx, gw, gb;
                  if (need_x) gx = bmm_like(a3, g3, w3.transpose(1, 2)).reshape(x_shape);
                  if (need_w && into[1].defined() && column_major(w3)) {
                    // matmul's gradient of a column-major w3 is (g^T @ x)^T: the same product, added in.
                    backend_for(g3.device()).gemm(into[1].unsqueeze(0), g3.transpose(1, 2), a3, 1.0, 1.0);
                    into[1].mark_modified();
                    gw = into[1];
                  } else if (need_w) {
                    gw = bmm_like(w3, a3.transpose(1, 2), g3).reshape({in, out}).t();
                  }
                  if (need_b) gb = sum_to(g3.reshape({rows, out}), b_shape);
                  return std::vector<Tensor>{gx, gw, gb};
                },
                {need_w ? a3 : Tensor(), need_x ? w3 : Tensor()});
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Shape ops
// ---------------------------------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  MINIMA_CHECK(!xs.empty(), "cat: expected at least one tensor");
  const Tensor& f = xs[0];
  MINIMA_CHECK(f.dim() > 0, "cat: zero-dimensional tensors cannot be concatenated (use stack)");
  int64_t d = wrap_dim(dim, f.dim(), "cat");
  DType t = f.dtype();
  for (const auto& x : xs) t = promote(t, x.dtype());
  Shape s = f.shape();
  s[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    check_device("cat", f, x);
    MINIMA_CHECK(x.dim() == f.dim(), "cat: tensor ", i, " has shape ", x.shape(), " but tensor 0 has ", f.shape());
    for (int64_t j = 0; j < x.dim(); ++j)
      MINIMA_CHECK(j == d || x.shape()[j] == f.shape()[j], "cat: tensor ", i, " has shape ", x.shape(),
                   " which does not match ", f.shape(), " outside dim ", d);
    MINIMA_CHECK(!__builtin_add_overflow(s[d], x.shape()[d], &s[d]), "cat: the result's size along dim ", d,
                 " does not fit in 64 bits");
  }
  Tensor out = empty(s, TensorOptions(t, f.device()));
  {
    NoGradGuard ng;
    int64_t o = 0;
    for (const auto& x : xs) {
      out.narrow(d, o, x.shape()[d]).copy_(x);
      o += x.shape()[d];
    }
  }
  if (needs_graph(xs)) {
    std::vector<int64_t> sizes;
    sizes.reserve(xs.size());
    for (const auto& x : xs) sizes.push_back(x.shape()[d]);
    record(out, "cat", xs, [d, sizes](const Tensor& g) {
      std::vector<Tensor> gs;
      int64_t o = 0;
      for (int64_t n : sizes) {
        gs.push_back(g.narrow(d, o, n));
        o += n;
      }
      return gs;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  MINIMA_CHECK(!xs.empty(), "stack: expected at least one tensor");
  int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (const auto& x : xs) {
    MINIMA_CHECK(x.shape() == xs[0].shape(), "stack: shapes ", xs[0].shape(), " and ", x.shape(), " differ");
    u.push_back(x.unsqueeze(d));
  }
  return cat(u, d);
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  MINIMA_CHECK(pads.size() % 2 == 0 && int64_t(pads.size()) / 2 <= x.dim(),
               "pad: expected pairs of paddings for at most ", x.dim(), " dims, got ", pads);
  Shape s = x.shape();
  std::vector<int64_t> before(static_cast<size_t>(x.dim()), 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    int64_t d = x.dim() - 1 - int64_t(i);
    MINIMA_CHECK(pads[2 * i] >= 0 && pads[2 * i + 1] >= 0, "pad: negative padding ", pads);
    before[d] = pads[2 * i];
    MINIMA_CHECK(!__builtin_add_overflow(s[d], pads[2 * i], &s[d]) &&
                     !__builtin_add_overflow(s[d], pads[2 * i + 1], &s[d]),
                 "pad: padding ", pads, " makes dim ", d, " of shape ", x.shape(), " too large for 64 bits");
  }
  Tensor out = full(s, value, TensorOptions(x.dtype(), x.device()));
  auto inner = [&](Tensor t) {
    for (int64_t d = 0; d < x.dim(); ++d) t = t.narrow(d, before[d], x.shape()[d]);
    return t;
  };
  {
    NoGradGuard ng;
    inner(out).copy_(x);
  }
  if (needs_graph({&x})) {
    Shape xs = x.shape();
    record(out, "pad", {x}, [before, xs](const Tensor& g) {
      Tensor t = g;
      for (int64_t d = 0; d < int64_t(xs.size()); ++d) t = t.narrow(d, before[d], xs[d]);
      return std::vector<Tensor>{t};
    });
  }
  return out;
}

Tensor flip(const Tensor& x, const std::vector<int64_t>& dims0) {
  // A flip is a view with negated strides; copying it out makes the result contiguous.
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.storage();
  impl->shape = x.shape();
  impl->strides = x.strides();
  impl->offset = x.offset();
  impl->dtype = x.dtype();
  std::vector<int64_t> dims;
  for (int64_t d0 : dims0) {
    int64_t d = wrap_dim(d0, x.dim(), "flip");
    if (x.dim() == 0) continue;  // flipping a 0-d tensor changes nothing
    MINIMA_CHECK(std::find(dims.begin(), dims.end(), d) == dims.end(), "flip: dim ", d, " appears more than once in ",
                 dims0);
    dims.push_back(d);
    if (x.shape()[d] > 0) {
      impl->offset += (x.shape()[d] - 1) * x.strides()[d];
      impl->strides[d] = -x.strides()[d];
    }
  }
  Tensor out = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).copy(out, Tensor(impl));
  if (needs_graph({&x})) {
    record(out, "flip", {x}, [dims](const Tensor& g) { return std::vector<Tensor>{flip(g, dims)}; });
  }
  return out;
}

// The backward of an op that reads x at the positions idx along dim d (index_select, gather):
// the gradient is added back at those positions into zeros of x's shape, by `scatter` (the
// backend's index_add or scatter_add, which sum repeated positions).
static void record_scatter_backward(Tensor& out, const char* name, const Tensor& x, int64_t d, const Tensor& idx,
                                    void (Backend::*scatter)(const Tensor&, int64_t, const Tensor&, const Tensor&)) {
  if (!needs_graph({&x})) return;
  const Shape xs = x.shape();
  record(out, name, {x},
         [=](const Tensor& g) {
           Tensor gx = zeros(xs, TensorOptions(g.dtype(), g.device()));
           (backend_for(g.device()).*scatter)(gx, d, idx, g.contiguous());
           return std::vector<Tensor>{gx};
         },
         {idx});
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_device("index_select", x, index);
  MINIMA_CHECK(index.dtype() == DType::i64 && index.dim() <= 1,
               "index_select: index must be a 1-D int64 "
               "tensor, got ",
               index.dtype(), " of shape ", index.shape());
  MINIMA_CHECK(x.dim() > 0, "index_select: expected an input with at least 1 dim, got a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  Shape s = x.shape();
  s[d] = index.numel();
  Tensor idx = index.reshape({index.numel()}).contiguous();
  Tensor out = empty(s, TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).index_select(out, x.detach(), d, idx);
  record_scatter_backward(out, "index_select", x, d, idx, &Backend::index_add);
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_device("gather", x, index);
  MINIMA_CHECK(index.dtype() == DType::i64, "gather: index must be int64, got ", index.dtype());
  MINIMA_CHECK(index.dim() == x.dim(), "gather: index of shape ", index.shape(),
               " must have as many dims as the input of shape ", x.shape());
  MINIMA_CHECK(x.dim() > 0, "gather: expected an input with at least 1 dim, got a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "gather");
  for (int64_t i = 0; i < x.dim(); ++i)
    MINIMA_CHECK(i == d || index.shape()[i] <= x.shape()[i], "gather: index of shape ", index.shape(),
                 " is larger than the input of shape ", x.shape(), " at dim ", i);
  Tensor idx = index.contiguous();
  Tensor out = empty(index.shape(), TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).gather(out, x.detach(), d, idx);
  record_scatter_backward(out, "gather", x, d, idx, &Backend::scatter_add);
  return out;
}

}  // namespace minima
