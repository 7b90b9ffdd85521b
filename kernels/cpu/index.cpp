// kernels/cpu/index.cpp: index_select / index_add and gather / scatter_add. Indices are checked
// before any write, so a bad index is an error naming the index, never an out-of-bounds access.
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

namespace {
void check_index(const Tensor& index, int64_t bound, const char* op, int64_t dim) {
  const int64_t* ip = index.data<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    MINIMA_CHECK(ip[i] >= 0 && ip[i] < bound, op, ": index ", ip[i], " at position ", i, " is out of range for dim ",
                 dim, " of size ", bound);
}
void split3(const Shape& s, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= s[i];
  for (int64_t i = dim + 1; i < int64_t(s.size()); ++i) inner *= s[i];
}
}  // namespace

void CpuBackend::index_select(const Tensor& out, const Tensor& x0, int64_t dim, const Tensor& index) {
  Tensor x = x0.contiguous();
  int64_t D = x.size(dim), n = index.numel(), outer, inner;
  check_index(index, D, "index_select", dim);
  split3(x.shape(), dim, outer, inner);
  if (out.numel() == 0) return;  // and x.data_ptr() may be null
  const int64_t* ip = index.data<int64_t>();
  size_t es = x.element_size();
  const char* xp = static_cast<const char*>(x.data_ptr());
  char* op = static_cast<char*>(out.data_ptr());
  parallel_for(outer * n, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t o = r / n, i = r % n;
      std::memcpy(op + size_t((o * n + i) * inner) * es, xp + size_t((o * D + ip[i]) * inner) * es, size_t(inner) * es);
    }
  });
}

void CpuBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src0) {
  Tensor src = src0.contiguous();
  int64_t D = out.size(dim), n = index.numel(), outer, inner;
  check_index(index, D, "index_add", dim);
  split3(out.shape(), dim, outer, inner);
  const int64_t* ip = index.data<int64_t>();
  MINIMA_DISPATCH_ALL(out.dtype(), "index_add", [&] {
    using T = scalar_t;
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    // Parallel over the outer dim only: repeated indices inside one outer slice stay serial.
    parallel_for(outer, 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o)
        for (int64_t i = 0; i < n; ++i) {
          T* d = op + (o * D + ip[i]) * inner;
          const T* s = sp + (o * n + i) * inner;
          for (int64_t k = 0; k < inner; ++k) d[k] = T(arith_add(Acc<T>(d[k]), Acc<T>(s[k])));
        }
    });
  });
}

void CpuBackend::gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(index, x.size(dim), "gather", dim);
  const int64_t* ip = index.data<int64_t>();
  Shape is = index.shape();
  int64_t nd = int64_t(is.size());
  MINIMA_DISPATCH_ALL(x.dtype(), "gather", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    parallel_for(index.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        int64_t rem = i, off = 0;
        for (int64_t d = nd - 1; d >= 0; --d) {
          int64_t c = rem % is[d];
          rem /= is[d];
          off += (d == dim ? ip[i] : c) * x.strides()[d];
        }
        op[i] = xp[off];
      }
    });
  });
}

void CpuBackend::scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src0) {
  Tensor src = src0.contiguous();
  check_index(index, out.size(dim), "scatter_add", dim);
  const int64_t* ip = index.data<int64_t>();
  Shape is = index.shape();
  int64_t nd = int64_t(is.size());
  MINIMA_DISPATCH_ALL(out.dtype(), "scatter_add", [&] {
    using T = scalar_t;
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    for (int64_t i = 0; i < index.numel(); ++i) {
      int64_t rem = i, off = 0;
      for (int64_t d = nd - 1; d >= 0; --d) {
        int64_t c = rem % is[d];
        rem /= is[d];
        off += (d == dim ? ip[i] : c) * out.strides()[d];
      }
      op[off] = T(arith_add(Acc<T>(op[off]), Acc<T>(sp[i])));
    }
  });
}

}  // namespace minima::cpu
