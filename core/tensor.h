// core/tensor.h: the Tensor handle. A tensor is a strided view (shape, strides, offset, all in
// elements) into a shared Storage, plus the autograd fields: requires_grad, the accumulated grad of
// a leaf, and the Node that produced a non-leaf. Copying a Tensor copies the handle, not the data.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace minima {

using Shape = std::vector<int64_t>;
int64_t numel_of(const Shape& s);
Shape contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);

struct Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves, or retained non-leaves)
  std::shared_ptr<Node> grad_fn;     // producer of a non-leaf that requires grad
};

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;
  TensorOptions() = default;
  TensorOptions(DType t) : dtype(t) {}    // NOLINT: implicit on purpose, zeros(s, DType::f64)
  TensorOptions(Device d) : device(d) {}  // NOLINT
  TensorOptions(DType t, Device d, bool rg = false) : dtype(t), device(d), requires_grad(rg) {}
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata ----
  const Shape& shape() const { return d()->shape; }
  const Shape& strides() const { return d()->strides; }
  int64_t dim() const { return int64_t(d()->shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t offset() const { return d()->offset; }
  int64_t numel() const { return numel_of(d()->shape); }
  DType dtype() const { return d()->dtype; }
  Device device() const { return d()->storage->device; }
  size_t element_size() const { return dtype_size(d()->dtype); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return d()->storage; }
  void* data_ptr() const { return static_cast<char*>(d()->storage->data) + d()->offset * int64_t(element_size()); }
  // Typed access for host code: the tensor must be on the CPU (a device pointer read on the host
  // would crash). Code that hands device memory to a kernel uses data_ptr().
  template <class T>
  T* data() const {
    MINIMA_CHECK(dtype_of<T>::value == dtype(), "data<", dtype_name(dtype_of<T>::value), ">() on a tensor of dtype ",
                 dtype());
    MINIMA_CHECK(device().is_cpu(), "data<", dtype_name(dtype_of<T>::value), ">() on a tensor on ", device(),
                 ": its memory cannot be read on the host (copy it with .cpu() first)");
    return static_cast<T*>(data_ptr());
  }
  std::string str() const;  // "Tensor[2, 3] float32 cpu"

  // ---- views (share storage; differentiable) ----
  Tensor view(const Shape& s) const;     // requires compatible strides; -1 infers one size
  Tensor reshape(const Shape& s) const;  // view when possible, else a contiguous copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  // Like torch.Tensor.t(): swaps the two dims of a matrix; a 0-d or 1-D tensor comes back as is.
  Tensor t() const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor expand(const Shape& s) const;              // -1 keeps a size
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor contiguous() const;  // this, when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy (differentiable)

  // ---- conversion ----
  Tensor to(Device d) const;  // differentiable
  Tensor to(DType t) const;   // differentiable between floating types
  Tensor cpu() const { return to(Device::cpu()); }
  double item() const;
  template <class T>
  std::vector<T> to_vector() const;  // values converted to T, in logical (row-major) order

  // ---- in-place (never recorded by autograd; refuse on tensors that need grad in grad mode) ----
  Tensor& fill_(double v);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // broadcasts src, converts dtype, crosses devices
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double s);
  // Counts a write to this tensor's memory made outside the methods above (a kernel that updates
  // a buffer in place, as optimizers do). Every view of the memory shares the count, which lets
  // backward() refuse to use a tensor that was changed after an op saved it.
  void mark_modified() const { ++d()->storage->version; }
  uint64_t version() const { return d()->storage->version; }

  // ---- autograd ----
  bool requires_grad() const { return d()->requires_grad; }
  Tensor& requires_grad_(bool r = true);
  bool is_leaf() const { return d()->grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return d()->grad_fn; }
  Tensor grad() const { return Tensor(d()->grad); }
  // g must match this tensor's shape, dtype and device (or be undefined, to clear the gradient).
  void set_grad(const Tensor& g);
  // Reverse-mode pass from this tensor. Without `grad` the tensor must hold one element.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no history

 private:
  // The impl, or an Error for a default-constructed (undefined) Tensor: every accessor goes
  // through it, so that misuse is a message, not a crash.
  TensorImpl* d() const {
    if (!impl_) throw_undefined();
    return impl_.get();
  }
  [[noreturn]] static void throw_undefined();
  std::shared_ptr<TensorImpl> impl_;
};

// Integer tensors take integral scalars only: throws, naming `op`, for a fractional, NaN or
// infinite `s`, or one outside int64, with an integer `t` (its kernels compute in int64 and would
// truncate it: x * 2.5 == x * 2).
void check_integral_scalar(const char* op, const Tensor& t, double s);
// A value stored as it is (full, fill_) must also fit the integer dtype: 300 in uint8 would wrap
// to 44. check_integral_scalar, and for uint8 the range [0, 255].
void check_scalar_fits(const char* op, const Tensor& t, double s);

// ---- creation ----
Tensor empty(const Shape& s, TensorOptions o = {});
Tensor zeros(const Shape& s, TensorOptions o = {});
Tensor ones(const Shape& s, TensorOptions o = {});
Tensor full(const Shape& s, double v, TensorOptions o = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
Tensor arange(double start, double end, double step = 1.0, TensorOptions o = {});
Tensor arange(int64_t n, TensorOptions o = {});
Tensor scalar_tensor(double v, TensorOptions o = {});
// Copies `values` (converted to o.dtype) into a new tensor of shape `s` on o.device.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& s, TensorOptions o);
// Without options the dtype follows the element type: int64_t and int give int64, uint8_t gives
// uint8, float and double give float32 (the default floating dtype, as for every factory).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& s);
// Wraps memory owned by someone else (no copy); `owner` is kept alive as long as the tensor.
Tensor from_blob(void* data, const Shape& s, DType t, Device d = Device::cpu(), std::shared_ptr<void> owner = nullptr);

// Random tensors from the counter-based generator: element i of a draw depends only on
// (seed, offset, i), so CPU and GPU give identical numbers. See core/random.h.
class Generator;
Tensor rand(const Shape& s, Generator& g, TensorOptions o = {});   // U[0, 1)
Tensor randn(const Shape& s, Generator& g, TensorOptions o = {});  // N(0, 1)
Tensor uniform(const Shape& s, double lo, double hi, Generator& g, TensorOptions o = {});
Tensor normal(const Shape& s, double mean, double std, Generator& g, TensorOptions o = {});
Tensor randint(const Shape& s, int64_t high, Generator& g, TensorOptions o = {DType::i64});
Tensor randperm(int64_t n, Generator& g);  // i64, CPU

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// RAII guard: no graph is recorded while one is alive (like torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
bool grad_mode_enabled();

}  // namespace minima
