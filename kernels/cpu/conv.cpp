// kernels/cpu/conv.cpp: conv2d forward and both backward passes as GEMMs over im2col. For each
// image and group, the receptive fields unrolled form a [C/g*KH*KW, OH*OW] matrix ("col"), so
// forward is W @ col, the input gradient is col2im(W^T @ gy) and the weight gradient is
// gy @ col^T summed over the batch. The forward and weight-gradient GEMMs never store col: they
// unroll it piece by piece into their packed operands (Unrolled, UnrolledChannelsLast), or, where
// that pays, the forward's GEMM reads it in place from the padded input (gemm_in_place). With
// stride 1 and enough input channels (input_grad_as_forward) the input gradient is a forward conv
// too (of gy, with the kernel flipped), so it does not store col either; otherwise col is a GEMM
// output, scattered back by col2im. With few output
// channels the weight gradient does not unroll at all: each tap's share is a product over rows
// of one packed copy of the input, picked output row by output row and shifted (RowRuns). The forward's
// weights (flipped, for that input gradient) are packed for the GEMM once per call and shared by
// every chunk of images, unless its products are too thin for it (see thin_pointwise).
// 1x1/stride-1/unpadded convs of one image read x as col. Small feature maps batch several images
// into one GEMM (see images_per_chunk, and images_per_product for maps that would leave a
// strip of columns mostly padding). Chunks of images are spread over threads (each with its own
// buffers); with fewer chunks than threads the GEMM itself runs in parallel instead. The weight
// gradient, a sum over the batch, splits it by its size alone (kWeightGradParts), so its bits do
// not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

namespace {

struct Geom {
  int64_t N, C, H, W, O, KH, KW, OH, OW, G, Cg, Og, ck, ohw;
};

Geom geom(const Tensor& x_or_gx, const Tensor& w, const Tensor& y_or_gy, const Conv2dParams& p) {
  Geom g;
  g.N = x_or_gx.size(0);
  g.C = x_or_gx.size(1);
  g.H = x_or_gx.size(2);
  g.W = x_or_gx.size(3);
  g.O = w.size(0);
  g.KH = w.size(2);
  g.KW = w.size(3);
  g.OH = y_or_gy.size(2);
  g.OW = y_or_gy.size(3);
  g.G = p.groups;
  g.Cg = g.C / g.G;
  g.Og = g.O / g.G;
  g.ck = g.Cg * g.KH * g.KW;
  g.ohw = g.OH * g.OW;
  return g;
}

bool is_pointwise(const Geom& g, const Conv2dParams& p) {
  return g.KH == 1 && g.KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// The output columns ow in [lo, hi) whose input column iw = ow * stride + off lies in [0, W): the
// rest of a row reads padding. Hoisting the bounds out of the inner loops leaves plain copies
// (stride 1) that the compiler vectorizes.
inline void valid_columns(int64_t off, int64_t stride, int64_t W, int64_t OW, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : std::min(OW, (-off + stride - 1) / stride);
  hi = W - off <= 0 ? 0 : std::min(OW, (W - off + stride - 1) / stride);
  hi = std::max(hi, lo);
}

// One run of a packed strip copied down kc of its rows: dst[k * ld + i] = src[rows[k] + i * stride]
// for k < kc, i < n, n up to a strip's width (32). Stride 1 moves the run as whole vectors instead
// of making a library call per run: 32-byte moves, the last one overlapping, or, for a shorter run
// (a strip of 32 columns over output rows of 14 holds runs such as 14, 14 and 4), two overlapping
// moves of 16 or of 8 bytes. The kind of move is picked once for all kc rows, and the loop over
// them does nothing else (for 8x8 maps every run is a single 32-byte move). The moves go through
// vector variables because a plain 32-byte memcpy compiles to two 16-byte halves.
template <int Bytes>
inline void move_bytes(const char* src, char* dst) {
  typedef char V __attribute__((vector_size(Bytes)));
  V v;
  std::memcpy(&v, src, Bytes);
  std::memcpy(dst, &v, Bytes);
}
template <int Bytes>
inline void move_overlapping(const char* src, char* dst, int64_t n) {  // Bytes <= n <= 2 * Bytes
  move_bytes<Bytes>(src, dst);
  move_bytes<Bytes>(src + n - Bytes, dst + n - Bytes);
}
template <class T>
inline void copy_run_rows(const T* src, const int64_t* rows, int64_t kc, int64_t stride, T* dst, int64_t ld,
                          int64_t n) {
  const int64_t bytes = n * int64_t(sizeof(T));
  if (stride != 1 || bytes < 8) {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t i = 0; i < n; ++i) dst[k * ld + i] = src[rows[k] + i * stride];
    return;
  }
  const auto each_row = [&](auto move) {
    for (int64_t k = 0; k < kc; ++k)
      move(reinterpret_cast<const char*>(src + rows[k]), reinterpret_cast<char*>(dst + k * ld));
  };
  if (bytes == 32) {
    each_row([](const char* s, char* d) { move_bytes<32>(s, d); });
  } else if (bytes > 32) {
    each_row([&](const char* s, char* d) {
      int64_t i = 0;
      for (; i + 32 <= bytes; i += 32) move_bytes<32>(s + i, d + i);
      if (i < bytes) move_bytes<32>(s + bytes - 32, d + bytes - 32);
    });
  } else if (bytes >= 16) {
    each_row([&](const char* s, char* d) { move_overlapping<16>(s, d, bytes); });
  } else {
    each_row([&](const char* s, char* d) { move_overlapping<8>(s, d, bytes); });
  }
}
// dst[i] = src[i * stride] for i < n: a single row.
template <class T>
inline void copy_run(const T* src, int64_t stride, T* dst, int64_t n) {
  const int64_t first = 0;
  copy_run_rows(src, &first, 1, stride, dst, 0, n);
}

// A stretch of a packed strip's columns that reads the (padded) input contiguously, or
// stride_w apart: its offset in the input, its length and its first column in the strip. A strip
// has at most R <= 32 columns, so at most 32 runs.
struct Run {
  int64_t off, len, at;
};
constexpr int kMaxRuns = 32;

// dst[i] = src[i * step] for i < n. Step 2, a stride-2 conv's, has a loop of its own that the
// compiler vectorizes.
template <class T>
void copy_every(const T* __restrict src, int64_t step, T* __restrict dst, int64_t n) {
  if (step == 1) {
    std::copy_n(src, n, dst);
  } else if (step == 2) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[2 * i];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i * step];
  }
}

// A conv2d's "col" matrix [Cg*KH*KW, nbc*OH*OW] for one group and a chunk of images, read piece by
// piece without being stored: the forward GEMM's packer unrolls the receptive fields of a few
// columns straight into a packed strip (the weight gradient has its own: UnrolledChannelsLast).
// This saves writing col out and reading it back, two passes over a matrix KH*KW times
// the input's size that rarely fits in cache. Values and their order are those of im2col.
// The images are first copied with their zero padding around them (when there is padding), so
// that every element of col is a read of the padded input: col[k, j] = src[row_off(k) + col_off(j)],
// the row offset selecting channel and tap, the column offset image and output pixel, and a run
// of output pixels along a row reads the input stride_w apart.
// With stride_w > 1 and taps along the row, the copy also splits each padded row into stride_w
// phases, columns w with the same w % stride_w side by side: padded column ow * stride_w + d is
// column ow + d / stride_w of phase d % stride_w, so a run reads its phase contiguously and is
// packed with vector moves instead of one element at a time. (The input of a 3x3 stride-2 conv is
// read by about 2.25 taps per element, so gathering it once in the copy pays.)
template <class T>
class Unrolled {
 public:
  // Whether the padded copy splits rows into phases: a row stride, taps along the row, and
  // output rows long enough for runs of whole vectors (shorter runs are copied element by
  // element either way, so the split would only cost).
  static bool splits_rows(const Geom& g, const Conv2dParams& p) {
    return p.stride_w > 1 && g.KW > 1 && g.OW * int64_t(sizeof(T)) >= 32;
  }
  // x0: the first of nbc images at group gi's first channel; images are C*H*W apart. padded:
  // scratch for the padded copy, rows for col's row offsets; both grown as needed and valid while
  // this object is used.
  Unrolled(const T* x0, int64_t nbc, const Geom& g, const Conv2dParams& p, std::vector<T>& padded,
           std::vector<int64_t>& rows)
      : g_(g),
        p_(p),
        phases_(splits_rows(g, p) ? p.stride_w : 1),
        Hp_(g.H + 2 * p.pad_h),
        Wq_((g.W + 2 * p.pad_w + phases_ - 1) / phases_),
        col_step_(p.stride_w / phases_),
        kw_off_(size_t(g.KW)) {
    // Tap column kw reads padded column ow * stride_w + d, d = kw * dil_w: column ow + d / phases
    // of phase d % phases (with one phase, column ow * stride_w + d of the row).
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t d = kw * p.dil_w;
      kw_off_[size_t(kw)] = d % phases_ * Hp_ * Wq_ + d / phases_;
    }
    if (p.pad_h == 0 && p.pad_w == 0 && phases_ == 1) {
      src_ = x0;
      image_stride_ = g.C * g.H * g.W;
    } else {  // with room around the images for gemm_in_place's loads
      constexpr int64_t room = kInPlaceMargin / int64_t(sizeof(T));
      image_stride_ = g.Cg * phases_ * Hp_ * Wq_;
      if (padded.size() < size_t(nbc * image_stride_ + 2 * room)) padded.resize(size_t(nbc * image_stride_ + 2 * room));
      src_ = padded.data() + room;
      copied_ = true;
      for (int64_t b = 0; b < nbc; ++b) pad_image(x0 + b * g.C * g.H * g.W, padded.data() + room + b * image_stride_);
    }
    rows.resize(size_t(g.ck));
    for (int64_t c = 0, k = 0; c < g.Cg; ++c)
      for (int64_t kh = 0; kh < g.KH; ++kh)
        for (int64_t kw = 0; kw < g.KW; ++kw) rows[size_t(k++)] = row_offset(c, kh, kw);
    rows_ = rows.data();
  }

  // Whether the GEMM reads col in place (gemm_in_place) rather than packing it: when a run of
  // output pixels reads its input adjacently (stride 1 along rows, or a split copy) and that
  // pays for the weights' rows (gemm_in_place_pays). A vector that meets more than one output
  // row is read in pieces, each load reaching past its row: only from the copy, which has room
  // around it.
  bool reads_in_place() const {
    return col_step_ == 1 && gemm_in_place_pays<T>(g_.Og, g_.OW) && (gemm_in_place_pieces<T>(g_.OW) == 1 || copied_);
  }
  // col as gemm_in_place reads it: rows[k] the offset of row k (channel and tap), a run per
  // output row, a group per image.
  InPlaceB<T> in_place() const { return InPlaceB<T>{src_, rows_, g_.OW, g_.OH, p_.stride_h * Wq_, image_stride_}; }

  // The strip of col (rows [pc, pc + kc), columns [j0, j0 + n)) in the GEMM's packed layout:
  // out[k * R + j], zeros for n <= j < R. The strip's columns are the same runs (an output row's
  // stretch each) in every one of its rows, so each run is copied down all kc rows in one loop
  // (copy_run_rows), its kind of move chosen once rather than once per row.
  void operator()(int64_t j0, int64_t n, int64_t pc, int64_t kc, int R, T* out) const {
    Run runs[kMaxRuns];  // one per output row the columns touch
    const int n_runs = split_columns(j0, n, runs);
    for (int r = 0; r < n_runs; ++r)
      copy_run_rows(src_ + runs[r].off, rows_ + pc, kc, col_step_, out + runs[r].at, R, runs[r].len);
    if (n < R)
      for (int64_t k = 0; k < kc; ++k) std::fill(out + k * R + n, out + (k + 1) * R, T(0));
  }

 private:
  // Where the row of col for channel c and tap (kh, kw) starts in the copy; a run's offset
  // (split_columns) is added to it.
  int64_t row_offset(int64_t c, int64_t kh, int64_t kw) const {
    return (c * phases_ * Hp_ + kh * p_.dil_h) * Wq_ + kw_off_[size_t(kw)];
  }
  // Runs of columns within one output row: the column offset (see above) of their first pixel.
  int split_columns(int64_t c0, int64_t cols, Run* runs) const {
    int n_runs = 0;
    for (int64_t at = 0; at < cols;) {
      const int64_t col = c0 + at, image = col / g_.ohw, pix = col % g_.ohw, oh = pix / g_.OW, ow = pix % g_.OW;
      const int64_t len = std::min(g_.OW - ow, cols - at);
      runs[n_runs++] = Run{image * image_stride_ + oh * p_.stride_h * Wq_ + ow * col_step_, len, at};
      at += len;
    }
    return n_runs;
  }
  // x [Cg, H, W] (channels H*W apart) -> out [Cg, phases, Hp, Wq] with zeros around: phase f's
  // column q holds padded column q * phases + f.
  void pad_image(const T* x, T* out) const {
    const int64_t ph = p_.pad_h, plane = Hp_ * Wq_;
    for (int64_t c = 0; c < g_.Cg; ++c)
      for (int64_t f = 0; f < phases_; ++f) {
        T* oc = out + (c * phases_ + f) * plane;
        int64_t lo = 0, hi = 0;  // the columns q of this phase that hold input, not padding
        valid_columns(f - p_.pad_w, phases_, g_.W, Wq_, lo, hi);
        const int64_t w0 = lo * phases_ + f - p_.pad_w;  // the input column of q = lo
        std::fill(oc, oc + ph * Wq_, T(0));
        for (int64_t h = 0; h < g_.H; ++h) {
          T* row = oc + (ph + h) * Wq_;
          std::fill(row, row + lo, T(0));
          copy_every(x + (c * g_.H + h) * g_.W + w0, phases_, row + lo, hi - lo);
          std::fill(row + hi, row + Wq_, T(0));
        }
        std::fill(oc + (ph + g_.H) * Wq_, oc + plane, T(0));
      }
  }

  const Geom& g_;
  const Conv2dParams& p_;
  const int64_t phases_;         // column phases of the copy: stride_w when it is split (see above), else 1
  const int64_t Hp_;             // the padded input's height
  const int64_t Wq_;             // a phase's width: the padded width / phases, rounded up
  const int64_t col_step_;       // how far apart a run's reads are: stride_w, or 1 in a split copy
  std::vector<int64_t> kw_off_;  // per tap column kw: its offset from its channel's first row
  const T* src_;                 // the padded (and split) images, or x itself when there is neither
  bool copied_ = false;          // whether src_ is the copy (with room around it), not x
  int64_t image_stride_;
  const int64_t* rows_;  // rows_[k]: where row k of col (channel and tap) starts in src_, before a run's offset
};

// The weight gradient's B operand, col^T [nbc*OH*OW, Cg*KH*KW], with its columns in tap-major
// order (kh, kw, c) rather than col's (c, kh, kw). A strip of col^T holds, for each output pixel
// (a k of the GEMM), 32 or so columns; read from col's layout, that is a transpose per strip. So
// the images are first copied channels-last with their zero padding, [nbc, Hp, Wp, Cg]: then a
// run of columns with one tap and consecutive channels is contiguous, and each pixel's row of a
// strip is one or two vector copies. Each element of the product still sums over the same pixels
// in the same order, so the gradient, put back in (c, kh, kw) order, is bitwise that of col^T.
template <class T>
class UnrolledChannelsLast {
 public:
  UnrolledChannelsLast(const T* x0, int64_t nbc, const Geom& g, const Conv2dParams& p, std::vector<T>& buf)
      : g_(g), p_(p), Wp_(g.W + 2 * p.pad_w), image_stride_((g.H + 2 * p.pad_h) * Wp_ * g.Cg) {
    if (buf.size() < size_t(nbc * image_stride_)) buf.resize(size_t(nbc * image_stride_));
    const int64_t pixel_row = Wp_ * g.Cg, border = p.pad_w * g.Cg;  // one padded row; its left/right pad
    for (int64_t b = 0; b < nbc; ++b) {
      T* image = buf.data() + b * image_stride_;
      std::fill(image, image + p.pad_h * pixel_row, T(0));
      for (int64_t h = 0; h < g.H; ++h) {
        T* row = image + (h + p.pad_h) * pixel_row;
        std::fill(row, row + border, T(0));
        // [Cg, W] (channels H*W apart) -> [W, Cg]
        transpose_lines<T>(g.Cg, g.W, x0 + (b * g.C * g.H + h) * g.W, g.H * g.W, row + border, g.Cg);
        std::fill(row + border + g.W * g.Cg, row + pixel_row, T(0));
      }
      std::fill(image + (g.H + p.pad_h) * pixel_row, image + image_stride_, T(0));
    }
    src_ = buf.data();
  }

  // The strip of col^T (tap-major columns [j0, j0 + n), pixels [pc, pc + kc)) in the GEMM's packed
  // layout: out[kk * R + j], zeros for n <= j < R.
  void operator()(int64_t j0, int64_t n, int64_t pc, int64_t kc, int R, T* out) const {
    Run runs[kMaxRuns];  // one per tap the columns touch; offsets from the pixel's corner
    int n_runs = 0;
    for (int64_t at = 0; at < n;) {
      const int64_t q = j0 + at, tap = q / g_.Cg, c = q % g_.Cg, len = std::min(g_.Cg - c, n - at);
      const int64_t kh = tap / g_.KW, kw = tap % g_.KW;
      runs[n_runs++] = Run{(kh * p_.dil_h * Wp_ + kw * p_.dil_w) * g_.Cg + c, len, at};
      at += len;
    }
    int64_t image = pc / g_.ohw, oh = pc % g_.ohw / g_.OW, ow = pc % g_.OW;
    for (int64_t kk = 0; kk < kc; ++kk) {
      const T* corner = src_ + image * image_stride_ + (oh * p_.stride_h * Wp_ + ow * p_.stride_w) * g_.Cg;
      T* o = out + kk * R;
      for (int r = 0; r < n_runs; ++r) copy_run(corner + runs[r].off, 1, o + runs[r].at, runs[r].len);
      std::fill(o + n, o + R, T(0));
      if (++ow == g_.OW) {
        ow = 0;
        if (++oh == g_.OH) oh = 0, ++image;
      }
    }
  }

 private:
  const Geom& g_;
  const Conv2dParams& p_;
  const int64_t Wp_, image_stride_;
  const T* src_;
};

// Accumulates one image's columns of col (rows ld apart) back into gx [Cg, H, W] (which the
// caller zeroed).
template <class T>
void col2im(const T* col, const Geom& g, const Conv2dParams& p, T* gx, int64_t ld) {
  const int64_t sw = p.stride_w;
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        const int64_t off = kw * p.dil_w - p.pad_w;
        int64_t lo, hi;
        valid_columns(off, sw, g.W, g.OW, lo, hi);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          if (ih < 0 || ih >= g.H) continue;
          T* xr = gx + (c * g.H + ih) * g.W;
          const T* r = row + oh * g.OW;
          if (sw == 1) {
            T* xo = xr + lo + off;  // input column lo + off onwards
            for (int64_t ow = lo; ow < hi; ++ow) xo[ow - lo] += r[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) xr[ow * sw + off] += r[ow];
          }
        }
      }
}

// Images per GEMM. A small feature map makes a thin GEMM (N = OH*OW columns) whose cost is
// dominated by packing the weights (forward, input grad) or by reading and writing the weight
// gradient (K = OH*OW): on 8x8 maps, once per 64 columns. So images are batched side by side until
// a chunk has about 256 columns, as long as every thread still gets a chunk. Maps of 16x16 and
// larger keep one image per GEMM.
int64_t images_per_chunk(const Geom& g, int threads) {
  constexpr int64_t kTargetColumns = 256;
  int64_t nb = std::max<int64_t>(1, kTargetColumns / std::max<int64_t>(1, g.ohw));
  int64_t per_thread = std::max<int64_t>(1, g.N / threads);  // rounded down: chunks >= threads
  return std::min(nb, per_thread);
}

// Images per GEMM for the products with a column per output pixel: the forward and the input
// gradient. Their columns run in strips of 32 (or 16, or 8), and a chunk whose column count is
// not a multiple of the strip pays for the rest of its last strip: one 14x14 image is 196
// columns in seven strips, 12.5 % of them padding. So from images_per_chunk's count up to four
// times it (still a chunk per thread), take the count that leaves each thread the fewest strips
// to run: four 14x14 images are 784 columns in 25 strips. The columns of a product are
// independent of each other, so the results do not depend on the count. (The weight gradient
// takes images_per_chunk's for kWeightGradParts threads, whatever the thread count: its chunks
// are its K blocks, which set the order of its sums.)
int64_t images_per_product(const Geom& g, int threads) {
  constexpr int64_t kStrip = 32;
  const int64_t nb0 = images_per_chunk(g, threads);
  const int64_t most = std::min(4 * nb0, std::max<int64_t>(1, g.N / threads));
  auto strips_per_thread = [&](int64_t nb) {
    const int64_t chunks = (g.N + nb - 1) / nb;
    return (chunks + threads - 1) / threads * ((nb * g.ohw + kStrip - 1) / kStrip);
  };
  int64_t best = nb0;
  for (int64_t nb = nb0 + 1; nb <= most; ++nb)
    if (strips_per_thread(nb) < strips_per_thread(best)) best = nb;
  return best;
}

// Per-thread scratch: col [ck, nb*ohw] for the input gradient's receptive fields, mat [Og, nb*ohw]
// for a chunk's outputs or output gradients, padded for a chunk's padded images (Unrolled). Kept per thread and only
// ever grown: buffers of megabytes freed after every call would come back from the OS as fresh pages, a page fault per
// 4 KiB.
template <class T>
struct Scratch {
  std::vector<T> col, mat, padded;
  std::vector<int64_t> rows;  // col's row offsets (Unrolled)
};
template <class T>
Scratch<T>& thread_scratch(size_t col_size, size_t mat_size) {
  thread_local Scratch<T> s;
  if (s.col.size() < col_size) s.col.resize(col_size);
  if (s.mat.size() < mat_size) s.mat.resize(mat_size);
  return s;
}

// Runs body(n0, nb, scratch, gemm_parallel) for every chunk of images [n0, n0+nb), spreading
// chunks over threads when there are enough of them, else running the GEMMs in parallel.
template <class T, class F>
void for_each_chunk(const Geom& g, int64_t nb, bool need_col, bool need_mat, F&& body) {
  int nt = omp_get_max_threads();
  int64_t chunks = (g.N + nb - 1) / nb;
  size_t col_size = need_col ? size_t(g.ck * g.ohw * nb) : 0;
  size_t mat_size = need_mat ? size_t(g.Og * g.ohw * nb) : 0;
  auto run = [&](int64_t c, Scratch<T>& s, bool par) {
    int64_t n0 = c * nb;
    body(n0, std::min(nb, g.N - n0), s, par);
  };
  if (chunks >= nt && nt > 1) {
#pragma omp parallel
    {
      Scratch<T>& s = thread_scratch<T>(col_size, mat_size);
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c) run(c, s, false);
    }
  } else {
    Scratch<T>& s = thread_scratch<T>(col_size, mat_size);
    for (int64_t c = 0; c < chunks; ++c) run(c, s, true);
  }
}

// The GEMM operand [Og, nbc*ohw] holding the output gradients of images [n0, n0+nbc), group gi:
// gy itself for one image, else copied into mat side by side.
template <class T>
const T* chunk_rows(const T* gyp, const Geom& g, int64_t n0, int64_t nbc, int64_t gi, T* mat) {
  const T* gy0 = gyp + (n0 * g.O + gi * g.Og) * g.ohw;
  if (nbc == 1) return gy0;
  const int64_t ld = nbc * g.ohw;
  for (int64_t b = 0; b < nbc; ++b)
    for (int64_t o = 0; o < g.Og; ++o)
      std::copy_n(gyp + ((n0 + b) * g.O + gi * g.Og + o) * g.ohw, g.ohw, mat + o * ld + b * g.ohw);
  return mat;
}

// Each group's weights [Og, ck] packed for the GEMM once per call, rather than once per chunk of
// images and thread (a megabyte or more for the deep layers). Kept per thread and only ever grown.
template <class T>
PackedA<T>* weight_packs(int64_t groups) {
  thread_local std::vector<PackedA<T>> packs;
  if (packs.size() < size_t(groups)) packs.resize(size_t(groups));
  return packs.data();
}

// Pointwise convs whose products all have fewer columns than this (one image per chunk, maps
// under 32 pixels) multiply the weights as stored: gemm_strided runs such thin products as
// matrix-vector or transposed products, which an A packed beforehand cannot take part in.
constexpr int64_t kThinColumns = 32;
bool thin_pointwise(const Geom& g, const Conv2dParams& p) {
  return is_pointwise(g, p) && images_per_chunk(g, omp_get_max_threads()) == 1 && g.ohw < kThinColumns;
}

// The forward conv over weights packed by group (wpk[gi]: rows Og, depth ck), or, for a thin
// pointwise conv (wpk null), over the weights as stored (wp).
template <class T>
void conv_forward(const Geom& g, const Conv2dParams& p, const T* xp, const T* wp, const PackedA<T>* wpk, const T* bp,
                  T* yp) {
  bool pw = is_pointwise(g, p);
  int64_t nb = images_per_product(g, omp_get_max_threads());
  for_each_chunk<T>(g, nb, false, nb > 1, [&](int64_t n0, int64_t nbc, Scratch<T>& s, bool par) {
    int64_t ld = nbc * g.ohw;  // columns of this chunk's GEMM
    for (int64_t gi = 0; gi < g.G; ++gi) {
      // One image writes straight into y; a chunk goes through mat [Og, ld] and is scattered.
      T* dst = nbc > 1 ? s.mat.data() : yp + (n0 * g.O + gi * g.Og) * g.ohw;
      const T* x0 = xp + (n0 * g.C + gi * g.Cg) * g.H * g.W;
      if (pw && nbc == 1 && !wpk) {  // col is x itself
        gemm_strided<T>(g.Og, ld, g.ck, T(1), wp + gi * g.Og * g.ck, g.ck, 1, x0, ld, 1, T(0), dst, ld, 1, par);
      } else if (pw && nbc == 1) {
        gemm_prepacked<T>(ld, T(1), wpk[gi], x0, ld, 1, T(0), dst, ld, 1, par);
      } else {  // col read in place, or unrolled straight into the GEMM's packed strips of B
        const Unrolled<T> col(x0, nbc, g, p, s.padded, s.rows);
        if (col.reads_in_place())
          gemm_in_place<T>(ld, T(1), wpk[gi], col.in_place(), T(0), dst, ld, 1, par);
        else
          gemm_prepacked<T>(ld, T(1), wpk[gi], StripPacker<T>(col), T(0), dst, ld, 1, par);
      }
      for (int64_t b = 0; b < nbc; ++b)
        for (int64_t o = 0; o < g.Og; ++o) {
          T* r = yp + ((n0 + b) * g.O + gi * g.Og + o) * g.ohw;
          if (nbc > 1) std::copy_n(dst + o * ld + b * g.ohw, g.ohw, r);
          if (bp) {
            T bv = bp[gi * g.Og + o];
            for (int64_t i = 0; i < g.ohw; ++i) r[i] += bv;
          }
        }
    }
  });
}

template <class T>
void conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  const Geom g = geom(x, w, y, p);
  const T* wp = w.data<T>();
  PackedA<T>* packs = nullptr;
  if (!thin_pointwise(g, p)) {
    packs = weight_packs<T>(g.G);
    for (int64_t gi = 0; gi < g.G; ++gi) pack_a<T>(packs[gi], g.Og, g.ck, wp + gi * g.Og * g.ck, g.ck, 1);
  }
  conv_forward<T>(g, p, x.data<T>(), wp, packs, bias.defined() ? bias.data<T>() : nullptr, y.data<T>());
}

// With stride 1, the input gradient is itself a convolution: of gy, padded by dil*(K-1) - pad,
// with the kernel flipped in both spatial directions and its in/out channels swapped (per group):
// gx[c, ih, iw] = sum over o, kh, kw of W[o, c, kh, kw] * gy[o, ih + pad - dil*kh, iw + ...].
// Run as conv_forward, it never stores col (a forward GEMM over W^T @ gy would write col, KH*KW
// times gx, and col2im read it back). Needs the padding within dil*(K-1), and enough input
// channels per group: they are the rows of that forward's GEMM, and an RGB layer's 3 would fill
// a quarter of the micro-kernel's 12-row tile (four times slower than through col).
bool input_grad_as_forward(const Geom& g, const Conv2dParams& p) {
  constexpr int64_t kMinRows = 32;
  return p.stride_h == 1 && p.stride_w == 1 && !is_pointwise(g, p) && g.Cg >= kMinRows &&
         p.pad_h <= p.dil_h * (g.KH - 1) && p.pad_w <= p.dil_w * (g.KW - 1);
}

template <class T>
void conv_backward_input_as_forward(const Geom& g, const Conv2dParams& p, const T* gyp, const T* wp, T* gxp) {
  Geom f = g;  // the forward conv gy -> gx
  f.C = g.O, f.H = g.OH, f.W = g.OW, f.O = g.C, f.OH = g.H, f.OW = g.W;
  f.Cg = g.Og, f.Og = g.Cg, f.ck = g.Og * g.KH * g.KW, f.ohw = g.H * g.W;
  Conv2dParams fp = p;
  fp.pad_h = p.dil_h * (g.KH - 1) - p.pad_h;
  fp.pad_w = p.dil_w * (g.KW - 1) - p.pad_w;
  // The flipped kernel is packed straight from W, never stored: row c of group gi's, column
  // (o, kh, kw), is W[gi*Og + o, c, KH-1-kh, KW-1-kw].
  const int64_t taps = g.KH * g.KW;
  PackedA<T>* packs = weight_packs<T>(g.G);
  for (int64_t gi = 0; gi < g.G; ++gi) {
    const T* wg = wp + gi * g.Og * g.ck;
    auto flipped = [&](int64_t c0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t o = (pc + k) / taps, tap = (pc + k) % taps;
        const T* src = wg + (o * g.Cg + c0) * taps + (taps - 1 - tap);
        T* dst = out + k * R;
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i * taps];
        std::fill(dst + n, dst + R, T(0));
      }
    };
    pack_a<T>(packs[gi], f.Og, f.ck, StripPacker<T>(flipped));
  }
  conv_forward<T>(f, fp, gyp, nullptr, packs, nullptr, gxp);  // not pointwise: never thin
}

template <class T>
void conv_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) {
  Geom g = geom(gx, w, gy, p);
  const T* gyp = gy.data<T>();
  const T* wp = w.data<T>();
  T* gxp = gx.data<T>();
  if (input_grad_as_forward(g, p)) {
    conv_backward_input_as_forward<T>(g, p, gyp, wp, gxp);
    return;
  }
  bool pw = is_pointwise(g, p);
  int64_t nb = images_per_product(g, omp_get_max_threads());
  for_each_chunk<T>(g, nb, !pw || nb > 1, nb > 1, [&](int64_t n0, int64_t nbc, Scratch<T>& s, bool par) {
    int64_t ld = nbc * g.ohw;
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* gyg = chunk_rows(gyp, g, n0, nbc, gi, s.mat.data());
      // col = W_g^T [ck, Og] @ gy_g [Og, ld]; one pointwise image writes gx directly.
      T* gx0 = gxp + (n0 * g.C + gi * g.Cg) * g.H * g.W;
      bool direct = pw && nbc == 1;
      T* dst = direct ? gx0 : s.col.data();
      gemm_strided<T>(g.ck, ld, g.Og, T(1), wp + gi * g.Og * g.ck, 1, g.ck, gyg, ld, 1, T(0), dst, ld, 1, par);
      if (direct) continue;
      for (int64_t b = 0; b < nbc; ++b) {
        T* gxg = gxp + ((n0 + b) * g.C + gi * g.Cg) * g.H * g.W;
        std::fill(gxg, gxg + g.Cg * g.H * g.W, T(0));
        col2im(s.col.data() + b * g.ohw, g, p, gxg, ld);
      }
    }
  });
}

// The weight gradient without unrolling. Flatten a chunk's padded images channels last, one row
// of Cg channels per padded pixel (image b, hp, wp) at row (b * Hp + hp) * Wp + wp. Output pixel
// (oh, ow) of image b reads, for tap (kh, kw), the row of input pixel (oh * stride_h + dil_h * kh,
// ow * stride_w + dil_w * kw), which is row(b, oh, ow) + d with row(b, oh, ow) = (b * Hp + oh *
// stride_h) * Wp + ow * stride_w and d = dil_h * kh * Wp + dil_w * kw. So along an output row the
// rows read are stride_w apart, and each tap's gradient [Og, Cg] is gy [Og, nbc * OH * OW] times
// the rows that the output pixels pick, shifted by d: gemm_row_runs, with one run per output row,
// over a single packed copy of the input that every tap shares. Unrolling (UnrolledChannelsLast)
// packs KH * KW copies of it, one value copied for every Og multiply-adds. Each element of the
// gradient sums the same products in the same K blocks as the unrolled product, so the result is
// bitwise the same; only the channels are rounded up to whole strips (32 with AVX-512 floats)
// where the unrolled columns ran on across taps.
template <class T>
class RowRuns {
 public:
  RowRuns(const Geom& g, const Conv2dParams& p) : g_(g), p_(p), Hp_(g.H + 2 * p.pad_h), Wp_(g.W + 2 * p.pad_w) {}

  // Stride 1 and more than one tap, when the unrolling saved costs more than the channels'
  // padding to whole strips adds. Unrolling copies each value once and then spends Og
  // multiply-adds on it; a copy costs about as much as 13 of them (fitted to the weight gradients
  // of ResNet18's, the small Inception's, AlexNet's and smallcnn's layers at batch 32 and 128:
  // 1.36x as fast with 32 outputs on 32x32 maps, 1.03x with 160 on 8x8, 0.96x with 512 on 4x4,
  // which stays unrolled). The 5 % margin leaves layers near break-even unrolled. Strided layers
  // pack input pixels that no output reads, and read every stride_w-th row: with stride 2 the
  // runs measured no faster on the small Inception's and ResNet18's layers and up to 10 % slower,
  // so those unroll.
  static bool pays(const Geom& g, const Conv2dParams& p) {
    if (p.stride_h != 1 || p.stride_w != 1 || g.KH * g.KW <= 1 || g.KH * g.KW > kMaxTaps || g.ohw == 0 || g.Cg == 0 ||
        g.Og == 0)
      return false;
    constexpr double kCopyCost = 13.0, kMargin = 1.05;
    auto padded = [](int64_t n) {  // n columns rounded up to whole strips, over n
      const int64_t strips = (n + kStrip - 1) / kStrip;
      return double(strips * kStrip) / double(n);
    };
    return kMargin * padded(g.Cg) <= (1.0 + kCopyCost / double(g.Og)) * padded(g.ck);
  }

  // gw [Og, KH*KW*Cg] (one group's, tap-major columns) += the gradient of images [n0, n0 + nbc),
  // group gi.
  void add_chunk(const T* gyp, const T* xp, int64_t n0, int64_t nbc, int64_t gi, T* gw, bool par) const {
    thread_local PackedA<T> a;
    thread_local PackedB<T> b;
    thread_local std::vector<RowRun> runs;
    const Geom& g = g_;
    const int64_t ohw = g.ohw, image_rows = Hp_ * Wp_;
    // gy's rows for the chunk: column k is pixel k % ohw of image k / ohw.
    auto gy_rows = [&](int64_t o0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
      for (int64_t k = pc; k < pc + kc;) {
        const int64_t image = k / ohw, pix = k % ohw, len = std::min(ohw - pix, pc + kc - k);
        transpose_lines<T>(n, len, gyp + ((n0 + image) * g.O + gi * g.Og + o0) * ohw + pix, ohw, out + (k - pc) * R, R);
        if (n < R)
          for (int64_t i = 0; i < len; ++i) std::fill(out + (k - pc + i) * R + n, out + (k - pc + i + 1) * R, T(0));
        k += len;
      }
    };
    const int64_t ph = p_.pad_h, pw = p_.pad_w, H = g.H, W = g.W;
    auto flat_x = [&](int64_t c0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
      std::fill(out, out + kc * R, T(0));
      for (int64_t r = pc; r < pc + kc;) {  // a piece of one padded row at a time
        const int64_t image = r / image_rows, hp = r % image_rows / Wp_, w0 = r % Wp_;
        const int64_t w1 = std::min(Wp_, w0 + (pc + kc - r)), lo = std::max(w0, pw), hi = std::min(w1, pw + W);
        if (hp >= ph && hp < ph + H && lo < hi)
          transpose_lines<T>(n, hi - lo, xp + (((n0 + image) * g.C + gi * g.Cg + c0) * H + hp - ph) * W + lo - pw,
                             H * W, out + (r - pc + lo - w0) * R, R);
        r += w1 - w0;
      }
    };
    pack_a<T>(a, g.Og, nbc * ohw, StripPacker<T>(gy_rows), par);
    pack_b<T>(b, nbc * image_rows, g.Cg, StripPacker<T>(flat_x), par);
    runs.clear();
    for (int64_t image = 0; image < nbc; ++image)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        runs.push_back(RowRun{image * ohw + oh * g.OW, g.OW, (image * Hp_ + oh * p_.stride_h) * Wp_});
    int64_t shifts[kMaxTaps];
    for (int64_t kh = 0, t = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) shifts[t++] = kh * p_.dil_h * Wp_ + kw * p_.dil_w;
    gemm_row_runs<T>(a, b, runs.data(), int64_t(runs.size()), p_.stride_w, shifts, g.KH * g.KW, gw, g.ck, g.Cg, par);
  }

 private:
  static constexpr int64_t kMaxTaps = 64;  // (a 7x7 kernel has 49)
  static constexpr int64_t kStrip = 32;    // the widest micro-kernel's strip of B columns
  const Geom& g_;
  const Conv2dParams& p_;
  const int64_t Hp_, Wp_;
};

// The weight gradient sums over the whole batch, so how the batch is split sets the order of its
// sums. The split is fixed by the batch and map sizes alone: chunks of images_per_chunk(g,
// kWeightGradParts) images (each one product, whose K runs over the chunk's pixels), gathered into
// at most kWeightGradParts parts of consecutive chunks. A part adds its chunks' products in order
// into its own buffer, and the parts' buffers are added in order. So any thread count gives the
// same bits. Threads share out the parts; with more threads than parts, the parts run one after
// another and each product runs in parallel (its K blocks stay in order, so the bits stay too).
// Eight parts keep two to eight threads busy; the price is eight buffers of the weight's size to
// add at the end (9.4 MB each for ResNet18's 512-channel layers) where one per thread would do.
constexpr int64_t kWeightGradParts = 8;

template <class T>
void conv_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) {
  Geom g = geom(x, gw, gy, p);
  const T* gyp = gy.data<T>();
  const T* xp = x.data<T>();
  T* gwp = gw.data<T>();
  bool pw = is_pointwise(g, p);
  int64_t wsize = g.O * g.ck;
  const int nt = omp_get_max_threads();
  const int64_t nb = images_per_chunk(g, int(kWeightGradParts));
  const int64_t chunks = (g.N + nb - 1) / nb;
  const int64_t parts = std::min(kWeightGradParts, chunks);
  const bool by_part = nt > 1 && parts >= nt;  // else parts in turn, each product in parallel
  // The parts' sums, added in order below. The buffers belong to the calling thread and are
  // reused from call to call, only ever grown: resizing one down after a deep layer and up again
  // at the next would zero megabytes each time.
  thread_local std::vector<std::vector<T>> pool;
  if (pool.size() < size_t(parts)) pool.resize(size_t(parts));
  for (int64_t i = 0; i < parts; ++i)
    if (pool[size_t(i)].size() < size_t(wsize)) pool[size_t(i)].resize(size_t(wsize));
  // The worker threads must reach the calling thread's pool, and a lambda does not capture a
  // thread_local (each thread would see its own, empty one): they go through this reference.
  auto& partial = pool;
  // A part's first product writes its buffer (beta 0) and the rest add to it; the row runs only
  // add, so for them the buffers are zeroed first. Zeroed and summed by all threads, a row of the
  // weight at a time: for the deep layers (2.4 million weights) each is a pass over megabytes,
  // which on one thread took up to a quarter of the call.
  const bool par_rows = nt > 1 && wsize >= (int64_t(1) << 16);
  const bool row_runs = RowRuns<T>::pays(g, p);
  if (row_runs) {
#pragma omp parallel for schedule(static) if (par_rows)
    for (int64_t i = 0; i < parts; ++i) std::fill_n(partial[size_t(i)].begin(), wsize, T(0));
  }
  const bool need_mat = nb > 1 && !row_runs;
  // acc = beta * acc + the gradient of images [n0, n0 + nbc), beta 0 or 1 (row runs: always 1).
  auto add_chunk = [&](int64_t n0, int64_t nbc, Scratch<T>& s, bool par, T beta, T* acc) {
    if (row_runs) {
      const RowRuns<T> rr(g, p);
      for (int64_t gi = 0; gi < g.G; ++gi) rr.add_chunk(gyp, xp, n0, nbc, gi, acc + gi * g.Og * g.ck, par);
      return;
    }
    int64_t ld = nbc * g.ohw;
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* gyg = chunk_rows(gyp, g, n0, nbc, gi, s.mat.data());
      const T* x0 = xp + (n0 * g.C + gi * g.Cg) * g.H * g.W;
      T* gwg = acc + gi * g.Og * g.ck;
      // gw_g [Og, ck] += gy_g [Og, ld] @ col^T [ld, ck]
      if (pw && nbc == 1) {  // col is x itself
        gemm_strided<T>(g.Og, g.ck, ld, T(1), gyg, ld, 1, x0, 1, ld, beta, gwg, g.ck, 1, par);
      } else {  // tap-major columns (put back in order below), read from a channels-last copy
        const UnrolledChannelsLast<T> colt(x0, nbc, g, p, s.padded);
        gemm_packed_b<T>(g.Og, g.ck, ld, T(1), gyg, ld, 1, StripPacker<T>(colt), beta, gwg, g.ck, 1, par);
      }
    }
  };
  auto run_part = [&](int64_t part, Scratch<T>& s, bool par) {
    const int64_t first = part * chunks / parts;
    for (int64_t c = first; c < (part + 1) * chunks / parts; ++c)
      add_chunk(c * nb, std::min(nb, g.N - c * nb), s, par, c == first ? T(0) : T(1), partial[size_t(part)].data());
  };
  const size_t mat_size = need_mat ? size_t(g.Og * g.ohw * nb) : 0;
  if (by_part) {
#pragma omp parallel
    {
      Scratch<T>& s = thread_scratch<T>(0, mat_size);
#pragma omp for schedule(static)
      for (int64_t part = 0; part < parts; ++part) run_part(part, s, false);
    }
  } else {
    Scratch<T>& s = thread_scratch<T>(0, mat_size);
    for (int64_t part = 0; part < parts; ++part) run_part(part, s, nt > 1);
  }
  // The partial sums are in tap-major column order (tap * Cg + c), put back in the weight's
  // (c * taps + tap); a pointwise conv's direct product has one tap, where both orders agree.
  const int64_t taps = g.KH * g.KW;
#pragma omp parallel for schedule(static) if (par_rows)
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t tap = 0; tap < taps; ++tap)
      for (int64_t c = 0; c < g.Cg; ++c) {
        const size_t j = size_t(o * g.ck + tap * g.Cg + c);
        T sum = T(0);
        for (int64_t t = 0; t < parts; ++t) sum += partial[size_t(t)][j];
        gwp[o * g.ck + c * taps + tap] = sum;
      }
}

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                                const Conv2dParams& p) {
  if (x.dtype() == DType::bf16) {
    Tensor yf = empty(y.shape(), DType::f32);
    conv2d_forward(yf, x.to(DType::f32), w.to(DType::f32), bias.defined() ? bias.to(DType::f32) : Tensor(), p);
    copy(y, yf);
    return;
  }
  if (x.dtype() == DType::f32)
    conv_forward<float>(y, x, w, bias, p);
  else
    conv_forward<double>(y, x, w, bias, p);
}

void CpuBackend::conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) {
  if (gy.dtype() == DType::bf16) {
    Tensor gf = empty(gx.shape(), DType::f32);
    conv2d_backward_input(gf, gy.to(DType::f32), w.to(DType::f32), p);
    copy(gx, gf);
    return;
  }
  if (gy.dtype() == DType::f32)
    conv_backward_input<float>(gx, gy, w, p);
  else
    conv_backward_input<double>(gx, gy, w, p);
}

void CpuBackend::conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) {
  if (gy.dtype() == DType::bf16) {
    Tensor gf = empty(gw.shape(), DType::f32);
    conv2d_backward_weight(gf, gy.to(DType::f32), x.to(DType::f32), p);
    copy(gw, gf);
    return;
  }
  if (gy.dtype() == DType::f32)
    conv_backward_weight<float>(gw, gy, x, p);
  else
    conv_backward_weight<double>(gw, gy, x, p);
}

}  // namespace minima::cpu
