// kernels/cpu/loops.h: the one strided loop every CPU elementwise kernel runs on. K operands that
// share a logical shape (broadcast inputs carry stride 0) are walked row by row: dims that are
// contiguous across all operands are merged, the last dim becomes the inner row, and rows are
// split across OpenMP threads. The inner callback sees K base pointers, a length and K byte strides,
// and takes a plain-loop fast path when every stride equals its element size.
#pragma once
#include <omp.h>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace minima::cpu {

constexpr int64_t kParallelGrain = 1 << 15;  // elements below which one thread does the work

template <int K>
struct RowPlan {
  std::vector<int64_t> sizes;                   // outer sizes (inner dim removed), row-major
  std::vector<std::array<int64_t, K>> strides;  // byte strides of the outer dims
  int64_t inner = 1;
  std::array<int64_t, K> inner_stride{};
  std::array<char*, K> base{};
  int64_t rows = 1;
};

template <int K>
RowPlan<K> plan_rows(const Shape& shape, const std::array<Tensor, K>& ts) {
  RowPlan<K> p;
  for (int k = 0; k < K; ++k) p.base[k] = static_cast<char*>(ts[k].data_ptr());
  // Collect (size, strides) for every dim of size != 1.
  std::vector<int64_t> sz;
  std::vector<std::array<int64_t, K>> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    std::array<int64_t, K> s{};
    for (int k = 0; k < K; ++k) s[k] = ts[k].strides()[d] * int64_t(ts[k].element_size());
    // Merge with the previous dim when it is contiguous with this one for every operand.
    if (!sz.empty()) {
      bool merge = true;
      for (int k = 0; k < K; ++k) merge &= st.back()[k] == s[k] * shape[d];
      if (merge) {
        sz.back() *= shape[d];
        st.back() = s;
        continue;
      }
    }
    sz.push_back(shape[d]);
    st.push_back(s);
  }
  if (sz.empty()) {
    p.inner = numel_of(shape) == 0 ? 0 : 1;
    return p;
  }
  p.inner = sz.back();
  p.inner_stride = st.back();
  sz.pop_back();
  st.pop_back();
  p.sizes = sz;
  p.strides = st;
  for (int64_t s : sz) p.rows *= s;
  return p;
}

// f(std::array<char*, K> ptrs, int64_t n, const std::array<int64_t, K>& byte_strides)
template <int K, class F>
void for_each_row(const Shape& shape, const std::array<Tensor, K>& ts, F&& f) {
  RowPlan<K> p = plan_rows<K>(shape, ts);
  if (p.inner == 0 || p.rows == 0) return;  // empty (rows == 0: a size-0 outer dim)
  int64_t nd = int64_t(p.sizes.size());
  auto run_rows = [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> idx(size_t(nd), 0);
    std::array<char*, K> ptr = p.base;
    int64_t r = r0;
    for (int64_t d = nd - 1; d >= 0; --d) {
      idx[d] = r % p.sizes[d];
      r /= p.sizes[d];
      for (int k = 0; k < K; ++k) ptr[k] += idx[d] * p.strides[d][k];
    }
    for (int64_t row = r0; row < r1; ++row) {
      f(ptr, p.inner, p.inner_stride);
      for (int64_t d = nd - 1; d >= 0; --d) {
        for (int k = 0; k < K; ++k) ptr[k] += p.strides[d][k];
        if (++idx[d] < p.sizes[d]) break;
        for (int k = 0; k < K; ++k) ptr[k] -= p.sizes[d] * p.strides[d][k];
        idx[d] = 0;
      }
    }
  };
  int64_t total = p.rows * p.inner;
  if (total < kParallelGrain || p.rows == 1 || omp_get_max_threads() == 1) {
    if (p.rows == 1 && total >= kParallelGrain && omp_get_max_threads() > 1) {
      // One long row: split the row itself.
#pragma omp parallel
      {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t chunk = (p.inner + nt - 1) / nt, s = t * chunk, e = std::min(p.inner, s + chunk);
        if (s < e) {
          std::array<char*, K> ptr = p.base;
          for (int k = 0; k < K; ++k) ptr[k] += s * p.inner_stride[k];
          f(ptr, e - s, p.inner_stride);
        }
      }
      return;
    }
    run_rows(0, p.rows);
    return;
  }
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (p.rows + nt - 1) / nt, s = t * chunk, e = std::min(p.rows, s + chunk);
    if (s < e) run_rows(s, e);
  }
}

// Typed convenience: out[i] = f(in_1[i], ..., in_{K-1}[i]); `all` = {out, in_1, ...}.
template <class TO, class... TI, class F, size_t... I>
void map_elements_impl(const Tensor& out, const std::array<Tensor, 1 + sizeof...(TI)>& all, F&& f,
                       std::index_sequence<I...>) {
  constexpr int K = int(1 + sizeof...(TI));
  for_each_row<K>(out.shape(), all, [&](const std::array<char*, K>& ptr, int64_t n, const std::array<int64_t, K>& st) {
    bool contiguous = st[0] == int64_t(sizeof(TO)) && ((st[I + 1] == int64_t(sizeof(TI))) && ...);
    if (contiguous) {
      TO* o = reinterpret_cast<TO*>(ptr[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(reinterpret_cast<const TI*>(ptr[I + 1])[i]...);
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<TO*>(ptr[0] + i * st[0]) = f(*reinterpret_cast<const TI*>(ptr[I + 1] + i * st[I + 1])...);
    }
  });
}
template <class TO, class... TI, class F>
void map_elements(const Tensor& out, const std::array<Tensor, 1 + sizeof...(TI)>& all, F&& f) {
  map_elements_impl<TO, TI...>(out, all, std::forward<F>(f), std::index_sequence_for<TI...>{});
}

// Parallel for over [0, n) in chunks (OpenMP static schedule).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n <= grain || omp_get_max_threads() == 1) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (n + nt - 1) / nt, s = t * chunk, e = std::min(n, s + chunk);
    if (s < e) f(s, e);
  }
}

}  // namespace minima::cpu
