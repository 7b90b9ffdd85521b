// core/tensor.cpp: tensor metadata, views (each one a differentiable op that shares storage),
// creation, conversion between dtypes and devices, and printing.
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"
#include "core/random.h"

namespace minima {

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : s) overflow |= __builtin_mul_overflow(n, d, &n);
  if (overflow) {
    for (int64_t d : s)
      if (d == 0) return 0;
    throw Error(str("shape ", s, " is too large: its element count does not fit in 64 bits"));
  }
  return n;
}

// Bytes of a contiguous tensor of shape s, checked: a wrapped-around count would allocate a
// small buffer that the tensor's writes then overrun.
static size_t nbytes_of(const Shape& s, DType t) {
  size_t n = 0;
  MINIMA_CHECK(!__builtin_mul_overflow(size_t(numel_of(s)), dtype_size(t), &n), "shape ", s, " is too large: its ",
               dtype_name(t), " data would need more than 2^64 bytes");
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  bool overflow = false;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    // An empty tensor may have huge other dims ([0, 2^32, 2^32]): its strides must fit too. (The
    // outermost size enters no stride.)
    if (i > 0) overflow |= __builtin_mul_overflow(acc, std::max<int64_t>(s[i], 1), &acc);
  }
  MINIMA_CHECK(!overflow, "shape ", s, " is too large: its strides do not fit in 64 bits");
  return st;
}

std::string shape_str(const Shape& s) { return str(s); }

// wrap_dim accepts dim 0/-1 of a 0-d tensor (as reductions do); ops that index shape()[d] must
// refuse 0-d tensors first.
static void check_has_dims(const Tensor& t, const char* op, int64_t d) {
  MINIMA_CHECK(t.dim() > 0, op, ": dim ", d, " is out of range for a 0-d tensor (it has no dims)");
}

int64_t Tensor::size(int64_t d) const {
  check_has_dims(*this, "size", d);
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  check_has_dims(*this, "stride", d);
  return strides()[wrap_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element is out of place (PyTorch's convention too)
  int64_t acc = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != acc) return false;
    acc *= shape()[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return minima::str("Tensor", shape(), " ", dtype(), " ", device());
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------
namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

Shape infer_shape(const Shape& s, int64_t numel, const Shape& from) {
  Shape out = s;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      MINIMA_CHECK(infer < 0, "view: only one dimension can be -1, got ", s);
      infer = int64_t(i);
    } else {
      MINIMA_CHECK(out[i] >= 0, "view: invalid size ", out[i], " in ", s);
      MINIMA_CHECK(!__builtin_mul_overflow(known, out[i], &known), "view: shape ", s,
                   " is too large: its element count does not fit in 64 bits");
    }
  }
  if (infer >= 0) {
    MINIMA_CHECK(known > 0 && numel % known == 0, "view: shape ", s, " is invalid for input of shape ", from, " (",
                 numel, " elements)");
    out[infer] = numel / known;
  }
  MINIMA_CHECK(numel_of(out) == numel, "view: shape ", s, " is invalid for input of shape ", from, " (", numel,
               " elements)");
  return out;
}

// Strides for viewing (shape, strides) as new_shape without copying, if possible.
bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out) {
  out.assign(new_shape.size(), 0);
  // An empty tensor, or a 0-d one (whose views can only add size-1 dims), has no layout to keep.
  if (numel_of(shape) == 0 || shape.empty()) {
    out = contiguous_strides(new_shape);
    return true;
  }
  // Walk groups of old dims that are contiguous among themselves and match them with new dims.
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor Tensor::view(const Shape& s) const {
  Shape ns = infer_shape(s, numel(), shape());
  Shape st;
  MINIMA_CHECK(view_strides(shape(), strides(), ns, st), "view: a tensor of shape ", shape(), " and strides ",
               strides(), " cannot be viewed as ", ns, " without a copy; use reshape()");
  Tensor out = make_view(*this, ns, st, offset());
  if (needs_graph({this})) {
    Shape in_shape = shape();
    record(out, "view", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
  }
  return out;
}

Tensor Tensor::reshape(const Shape& s) const {
  Shape ns = infer_shape(s, numel(), shape());
  Shape st;
  if (view_strides(shape(), strides(), ns, st)) return view(ns);
  return contiguous().view(ns);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  MINIMA_CHECK(int64_t(dims.size()) == dim(), "permute: got ", dims.size(), " dims ", dims, " for a tensor of shape ",
               shape());
  Shape ns(dims.size()), st(dims.size());
  std::vector<int64_t> inv(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    MINIMA_CHECK(inv[d] < 0, "permute: repeated dim in ", dims);
    inv[d] = int64_t(i);
    ns[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, ns, st, offset());
  if (needs_graph({this})) {
    record(out, "permute", {*this}, [inv](const Tensor& g) { return std::vector<Tensor>{g.permute(inv)}; });
  }
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) {  // like PyTorch: transposing dims 0/-1 of a 0-d tensor is the identity
    wrap_dim(d0, 0, "transpose");
    wrap_dim(d1, 0, "transpose");
    return *this;
  }
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  std::swap(p[d0], p[d1]);
  return permute(p);
}

Tensor Tensor::t() const {
  MINIMA_CHECK(dim() <= 2, "t: expects a tensor with at most 2 dims, got ", shape_str(shape()),
               "; use transpose(d0, d1) or permute for more");
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  check_has_dims(*this, "slice", d);
  d = wrap_dim(d, dim(), "slice");
  MINIMA_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape ns = shape(), st = strides();
  ns[d] = (end - start) / step + ((end - start) % step != 0);  // ceil, without overflow for a huge step
  st[d] = ns[d] > 1 ? strides()[d] * step : strides()[d];      // > 1 element: step < n, so the product fits
  Tensor out = make_view(*this, ns, st, offset() + start * strides()[d]);
  if (needs_graph({this})) {
    Shape in_shape = shape();
    record(out, "slice", {*this}, [=](const Tensor& g) {
      Tensor gx = zeros(in_shape, TensorOptions(g.dtype(), g.device()));
      gx.slice(d, start, end, step).copy_(g);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  check_has_dims(*this, "narrow", d);
  d = wrap_dim(d, dim(), "narrow");
  MINIMA_CHECK(start >= 0 && length >= 0 && start <= shape()[d] && length <= shape()[d] - start, "narrow: start ",
               start, " and length ", length, " are out of bounds for dim ", d, " of shape ", shape());
  return slice(d, start, start + length, 1);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  check_has_dims(*this, "select", d);
  d = wrap_dim(d, dim(), "select");
  int64_t n = shape()[d];
  MINIMA_CHECK(index >= -n && index < n, "select: index ", index, " is out of bounds for dim ", d, " of shape ",
               shape());
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& s) const {
  MINIMA_CHECK(int64_t(s.size()) >= dim(), "expand: cannot expand shape ", shape(), " to ", s);
  Shape ns(s.size()), st(s.size());
  int64_t lead = int64_t(s.size()) - dim();
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    int64_t j = i - lead;
    if (j >= 0) {
      int64_t want = s[i] == -1 ? shape()[j] : s[i];
      MINIMA_CHECK(want >= 0, "expand: invalid size ", s[i], " in ", s);
      if (shape()[j] == want) {
        ns[i] = want;
        st[i] = strides()[j];
      } else {
        MINIMA_CHECK(shape()[j] == 1, "expand: the size ", shape()[j], " at dim ", j, " of shape ", shape(),
                     " must be 1 to expand to ", s);
        ns[i] = want;
        st[i] = 0;
      }
    } else {
      MINIMA_CHECK(s[i] >= 0, "expand: -1 is not allowed for a new leading dim in ", s);
      ns[i] = s[i];
      st[i] = 0;
    }
  }
  if (ns == shape()) return *this;
  Tensor out = make_view(*this, ns, st, offset());
  if (needs_graph({this})) {
    Shape in_shape = shape();
    record(out, "expand", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
  }
  return out;
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || shape()[d] != 1) return *this;
  Shape ns = shape();
  ns.erase(ns.begin() + d);
  return view(ns);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape ns = shape();
  ns.insert(ns.begin() + d, 1);
  return view(ns);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  MINIMA_CHECK(start <= end, "flatten: start dim ", start, " comes after end dim ", end, " (shape ", shape(), ")");
  Shape ns(shape().begin(), shape().begin() + start);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= shape()[i];
  ns.push_back(m);
  ns.insert(ns.end(), shape().begin() + end + 1, shape().end());
  return reshape(ns);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), TensorOptions(dtype(), device()));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (needs_graph({this})) {
    record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  }
  return out;
}

Tensor Tensor::detach() const {
  Tensor out = make_view(*this, shape(), strides(), offset());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Conversion and in-place writes
// ---------------------------------------------------------------------------------------------
Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = empty(shape(), TensorOptions(dtype(), d));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (needs_graph({this})) {
    Device src = device();
    record(out, "to_device", {*this}, [src](const Tensor& g) { return std::vector<Tensor>{g.to(src)}; });
  }
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), TensorOptions(t, device()));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (needs_graph({this}) && is_floating(t)) {
    DType src = dtype();
    record(out, "to_dtype", {*this}, [src](const Tensor& g) { return std::vector<Tensor>{g.to(src)}; });
  }
  return out;
}

void Tensor::throw_undefined() {
  throw Error(
      "use of an undefined tensor (a default-constructed Tensor: an optional argument left empty, or a "
      "gradient that was never computed)");
}

void check_integral_scalar(const char* op, const Tensor& t, double s) {
  if (is_floating(t.dtype())) return;
  MINIMA_CHECK(s == std::trunc(s), op, ": the scalar ", s, " is not an integer, and the tensor of shape ", t.shape(),
               " is ", t.dtype(), "; convert the tensor to a floating dtype first (.to(DType::f32))");
  MINIMA_CHECK(s >= -0x1p63 && s < 0x1p63, op, ": ", s,
               " is outside the range of int64 (-2^63 to 2^63 - 1), in which integer tensors compute; the tensor ",
               "of shape ", t.shape(), " is ", t.dtype());
}

void check_scalar_fits(const char* op, const Tensor& t, double s) {
  check_integral_scalar(op, t, s);
  MINIMA_CHECK(t.dtype() != DType::u8 || (s >= 0 && s <= 255), op, ": ", s,
               " is outside the range of uint8 (0 to 255), the dtype of the tensor of shape ", t.shape());
}

// The in-place writes. Each one counts itself in the storage's version (mark_modified), so that
// autograd notices a saved tensor that changed. A destination with a broadcast dim (stride 0,
// size > 1, as expand() makes) is refused where the result would depend on the order of the
// writes; a source that overlaps the destination without being the same view is read from a
// copy first, so that no element is read after it was overwritten (x[1:].copy_(x[:-1]) shifts).
namespace {
void check_inplace(const Tensor& t, const char* op, bool order_matters = true) {
  MINIMA_CHECK(t.defined(), op, ": undefined tensor");
  MINIMA_CHECK(!(grad_mode_enabled() && t.requires_grad()), op, ": in-place write to a tensor of shape ", t.shape(),
               " that requires grad; wrap it in a NoGradGuard (as optimizers do)");
  if (!order_matters) return;
  for (int64_t d = 0; d < t.dim(); ++d)
    MINIMA_CHECK(t.size(d) <= 1 || t.stride(d) != 0, op, ": the tensor of shape ", t.shape(), " (strides ", t.strides(),
                 ") has several elements in one memory location (an expand()ed view), so the "
                 "result of an in-place write is undefined; write to a contiguous() copy");
}

// Smallest and largest element index (in the storage) that t can reach.
std::pair<int64_t, int64_t> element_range(const Tensor& t) {
  int64_t lo = t.offset(), hi = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t extent = (t.size(d) - 1) * t.stride(d);
    (extent < 0 ? lo : hi) += extent;
  }
  return {lo, hi};
}

// Whether src may share memory with dst without being exactly the same view of it.
bool partial_overlap(const Tensor& dst, const Tensor& src) {
  if (dst.storage() != src.storage() || dst.numel() == 0 || src.numel() == 0) return false;
  if (dst.offset() == src.offset() && dst.shape() == src.shape() && dst.strides() == src.strides()) return false;
  auto [dlo, dhi] = element_range(dst);
  auto [slo, shi] = element_range(src);
  return dlo <= shi && slo <= dhi;
}
}  // namespace

Tensor& Tensor::fill_(double v) {
  check_inplace(*this, "fill_", /*order_matters=*/false);
  check_scalar_fits("fill_", *this, v);
  backend_for(device()).fill(*this, v);
  mark_modified();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src_in) {
  check_inplace(*this, "copy_");
  MINIMA_CHECK(src_in.defined(), "copy_: undefined source");
  Tensor src = src_in.detach();
  if (src.shape() != shape()) {
    try {
      src = src.expand(shape());
    } catch (const Error& e) {
      throw Error(minima::str("copy_: a source of shape ", src.shape(), " does not broadcast to the destination's ",
                              shape(), " (", e.what(), ")"));
    }
  }
  if (partial_overlap(*this, src)) src = src.clone();
  mark_modified();
  if (src.device() == device()) {
    backend_for(device()).copy(*this, src);
    return *this;
  }
  // Across devices: convert and compact on the source side, one contiguous transfer, then a
  // strided copy on the destination side if this tensor is a non-contiguous view.
  Tensor s = src;
  if (s.dtype() != dtype()) s = s.to(dtype());
  s = s.contiguous();
  Tensor d = is_contiguous() ? *this : empty(shape(), TensorOptions(dtype(), device()));
  Device gpu = device().is_cuda() ? device() : src.device();
  backend_for(gpu).copy(d, s);
  if (d.impl() != impl()) backend_for(device()).copy(*this, d);
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  MINIMA_CHECK(other.defined(), "add_: undefined tensor to add");
  NoGradGuard ng;
  Tensor o = alpha == 1.0 ? other : mul(other, alpha);
  MINIMA_CHECK(o.device() == device(), "add_: tensors on ", device(), " and ", o.device());
  // As PyTorch: the sum's dtype must be one this tensor can hold (a float added to an integer
  // tensor would be truncated).
  MINIMA_CHECK(is_floating(dtype()) || !is_floating(o.dtype()), "add_: adding a ", o.dtype(), " tensor (or a ",
               "non-integer alpha) to a ", dtype(), " tensor would truncate the sum");
  Tensor b = (o.dtype() == dtype() ? o : o.to(dtype())).expand(shape());
  if (partial_overlap(*this, b)) b = b.clone();
  backend_for(device()).binary(BinaryOp::Add, *this, *this, b);
  mark_modified();
  return *this;
}

Tensor& Tensor::mul_(double s) {
  check_inplace(*this, "mul_");
  check_integral_scalar("mul_", *this, s);
  backend_for(device()).unary(UnaryOp::MulScalar, *this, *this, s, 0.0);
  mark_modified();
  return *this;
}

Tensor& Tensor::requires_grad_(bool r) {
  MINIMA_CHECK(!r || is_floating(dtype()), "requires_grad_: only floating tensors can require grad, got ", dtype());
  MINIMA_CHECK(is_leaf(), "requires_grad_: can only be set on leaf tensors");
  d()->requires_grad = r;
  return *this;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    MINIMA_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(), "set_grad: a gradient ",
                 g.str(), " for a tensor ", str(), " (shape, dtype and device must match)");
  d()->grad = g.impl_;
}

double Tensor::item() const {
  MINIMA_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  return to_vector<double>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  NoGradGuard ng;
  Tensor c = cpu().contiguous();
  std::vector<T> out(static_cast<size_t>(c.numel()));
  MINIMA_DISPATCH_ALL(c.dtype(), "to_vector", [&] {
    const scalar_t* p = c.data<scalar_t>();
    for (size_t i = 0; i < out.size(); ++i) {
      using A = typename acc_type<scalar_t>::type;
      if constexpr (std::is_integral_v<T> && !std::is_integral_v<A>)
        out[i] = static_cast<T>(double_to_int64(double(static_cast<A>(p[i]))));
      else
        out[i] = static_cast<T>(static_cast<A>(p[i]));
    }
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;
template std::vector<int> Tensor::to_vector<int>() const;

// ---------------------------------------------------------------------------------------------
// Creation
// ---------------------------------------------------------------------------------------------
Tensor empty(const Shape& s, TensorOptions o) {
  for (int64_t d : s) MINIMA_CHECK(d >= 0, "empty: negative size in shape ", s);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(nbytes_of(s, o.dtype), o.device);
  impl->shape = s;
  impl->strides = contiguous_strides(s);
  impl->dtype = o.dtype;
  Tensor t(impl);
  if (o.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& s, double v, TensorOptions o) {
  bool rg = o.requires_grad;
  o.requires_grad = false;
  Tensor t = empty(s, o);
  check_scalar_fits("full", t, v);
  backend_for(o.device).fill(t, v);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor zeros(const Shape& s, TensorOptions o) { return full(s, 0.0, o); }
Tensor ones(const Shape& s, TensorOptions o) { return full(s, 1.0, o); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor scalar_tensor(double v, TensorOptions o) { return full({}, v, o); }

Tensor arange(double start, double end, double step, TensorOptions o) {
  MINIMA_CHECK(step != 0, "arange: step must be non-zero");
  const double count = std::ceil((end - start) / step);
  MINIMA_CHECK(std::isfinite(count) && count < 0x1p40, "arange(", start, ", ", end, ", ", step, "): ", count,
               " elements are too many");
  int64_t n = std::max<int64_t>(0, int64_t(count));
  // The values in doubles on the host first (through the allocator, which reports running out
  // of memory as an error), then converted to o's dtype and device.
  Tensor v = empty({n}, TensorOptions(DType::f64, Device::cpu()));
  double* p = v.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = start + double(i) * step;
  Tensor t = v.to(o.dtype).to(o.device);
  if (o.requires_grad) t.requires_grad_(true);
  return t;
}
Tensor arange(int64_t n, TensorOptions o) { return arange(0.0, double(n), 1.0, o); }

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& s, TensorOptions o) {
  MINIMA_CHECK(int64_t(values.size()) == numel_of(s), "from_vector: ", values.size(), " values do not fill shape ", s,
               " (", numel_of(s), " elements)");
  Tensor host = empty(s, TensorOptions(o.dtype, Device::cpu()));
  MINIMA_DISPATCH_ALL(o.dtype, "from_vector", [&] {
    scalar_t* p = host.data<scalar_t>();
    for (size_t i = 0; i < values.size(); ++i) {
      using A = typename acc_type<scalar_t>::type;
      if constexpr (std::is_integral_v<A> && !std::is_integral_v<T>)
        p[i] = scalar_t(double_to_int64(double(values[i])));
      else
        p[i] = scalar_t(static_cast<A>(values[i]));
    }
  });
  Tensor t = o.device.is_cpu() ? host : host.to(o.device);
  if (o.requires_grad) t.requires_grad_(true);
  return t;
}
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& s) {
  DType t = std::is_same<T, uint8_t>::value ? DType::u8 : std::is_integral<T>::value ? DType::i64 : DType::f32;
  return from_vector(values, s, TensorOptions(t));
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector<int>(const std::vector<int>&, const Shape&);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<int>(const std::vector<int>&, const Shape&, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);

Tensor from_blob(void* data, const Shape& s, DType t, Device d, std::shared_ptr<void> owner) {
  for (int64_t n : s) MINIMA_CHECK(n >= 0, "from_blob: negative size in shape ", s);
  auto impl = std::make_shared<TensorImpl>();
  size_t nbytes = nbytes_of(s, t);
  MINIMA_CHECK(data != nullptr || nbytes == 0, "from_blob: a null pointer for ", nbytes, " bytes of shape ", s);
  impl->storage = std::make_shared<Storage>(data, nbytes, d, std::move(owner));
  impl->shape = s;
  impl->strides = contiguous_strides(s);
  impl->dtype = t;
  return Tensor(impl);
}

Tensor uniform(const Shape& s, double lo, double hi, Generator& g, TensorOptions o) {
  bool rg = o.requires_grad;
  o.requires_grad = false;
  Tensor t = empty(s, o);
  MINIMA_CHECK(is_floating(o.dtype), "uniform: needs a floating dtype, got ", o.dtype);
  MINIMA_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "uniform: needs finite bounds lo <= hi, got [", lo,
               ", ", hi, ")");
  uint64_t off = g.advance((uint64_t(t.numel()) + 1) / 2);
  backend_for(o.device).random_uniform(t, g.seed(), off, lo, hi);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor normal(const Shape& s, double mean, double std, Generator& g, TensorOptions o) {
  bool rg = o.requires_grad;
  o.requires_grad = false;
  Tensor t = empty(s, o);
  MINIMA_CHECK(is_floating(o.dtype), "normal: needs a floating dtype, got ", o.dtype);
  MINIMA_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0,
               "normal: needs a finite mean and std >= 0, got mean ", mean, ", std ", std);
  uint64_t off = g.advance(uint64_t(t.numel()));
  backend_for(o.device).random_normal(t, g.seed(), off, mean, std);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor rand(const Shape& s, Generator& g, TensorOptions o) { return uniform(s, 0.0, 1.0, g, o); }
Tensor randn(const Shape& s, Generator& g, TensorOptions o) { return normal(s, 0.0, 1.0, g, o); }

Tensor randint(const Shape& s, int64_t high, Generator& g, TensorOptions o) {
  MINIMA_CHECK(high > 0, "randint: high must be positive, got ", high);
  for (int64_t n : s) MINIMA_CHECK(n >= 0, "randint: negative size in shape ", s);
  std::vector<int64_t> v(static_cast<size_t>(numel_of(s)));
  uint64_t off = g.advance((v.size() + 1) / 2);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = std::min<int64_t>(high - 1, int64_t(Philox::uniform(g.seed(), off, i) * double(high)));
  return from_vector(v, s, o);
}

Tensor randperm(int64_t n, Generator& g) {
  MINIMA_CHECK(n >= 0, "randperm: n must be >= 0, got ", n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[g.below(uint64_t(i + 1))]);
  return from_vector(p, {n}, DType::i64);
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------
std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << t.str();
  if (t.numel() <= 64) {
    auto v = t.to_vector<double>();
    os << " {";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << std::setprecision(6) << v[i];
    os << "}";
  }
  return os;
}

}  // namespace minima
