// kernels/cpu/cpu_backend.h: the CPU reference backend. Plain loops, OpenMP across rows or
// channels, and a cache-blocked GEMM that conv2d also runs on (im2col: the forward and the weight
// gradient pack the unrolled inputs straight into the GEMM's layout, never storing them whole).
// Each family is one .cpp.
#pragma once
#include <vector>

#include "core/backend.h"

namespace minima::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  MINIMA_BACKEND_KERNEL_OVERRIDES
};

// Single-matrix GEMM on contiguous-or-strided row/col layouts:
// C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C, element (i,j) of X at X[i*rs + j*cs].
template <class T>
void gemm_strided(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
                  int64_t b_rs, int64_t b_cs, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel = true);

// One operand of a GEMM that is never stored as a matrix but written strip by strip straight into
// the GEMM's packed layout: conv2d's unrolled receptive fields as B, or its weights flipped for
// the input gradient as A (see kernels/cpu/conv.cpp). Its "lines" are the columns of B or the rows
// of A. Called as P(l0, n, pc, kc, R, out), it must set out[k * R + l] to element pc + k of line
// l0 + l (B[pc + k, l0 + l], or A[l0 + l, pc + k]) for k < kc, l < n, and to zero for n <= l < R,
// where R is the micro-kernel's strip width (6 or 12 rows of A; 8, 16 or 32 columns of B). It
// may be called from several threads at once. A non-owning reference to a callable, valid while
// that lives.
template <class T>
class StripPacker {
 public:
  template <class F>
  explicit StripPacker(const F& f)
      : fn_(&f), call_([](const void* fn, int64_t l0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
          (*static_cast<const F*>(fn))(l0, n, pc, kc, R, out);
        }) {}
  void operator()(int64_t l0, int64_t n, int64_t pc, int64_t kc, int R, T* out) const {
    call_(fn_, l0, n, pc, kc, R, out);
  }

 private:
  const void* fn_;
  void (*call_)(const void*, int64_t, int64_t, int64_t, int64_t, int, T*);
};

// C[M,N] = alpha * A @ B + beta * C with B given by a packer. Each element of
// C is summed exactly as gemm_strided sums it, so the result is bitwise that of a stored B.
template <class T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs,
                   const StripPacker<T>& B, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel = true);

// All of an A operand [rows, depth] in the micro-kernel's packed layout, for a matrix that
// multiplies many B's: conv2d's weights, the same for every chunk of images, are packed once per
// call instead of once per chunk and thread. The layout (strips of `mr` rows, each strip's K
// blocks k-major) belongs to the GEMM instruction set in use when it was packed; the storage is
// kept and reused by the next pack_a into the same PackedA.
template <class T>
struct PackedA {
  std::vector<T> data;
  int64_t rows = 0, depth = 0;
  int mr = 0;
};
// Packs A [M, K], its rows given by a packer, or element (i, k) at A[i * a_rs + k * a_cs].
template <class T>
void pack_a(PackedA<T>& a, int64_t M, int64_t K, const StripPacker<T>& A, bool parallel = true);
template <class T>
void pack_a(PackedA<T>& a, int64_t M, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, bool parallel = true);

// C[A.rows, N] = alpha * A @ B + beta * C with A packed by pack_a and B given by a packer or
// strided (element (k, j) at B[k * b_rs + j * b_cs]). Bitwise gemm_strided's result on the
// unpacked A. An A packed for another instruction set than the one now in use is an error.
template <class T>
void gemm_prepacked(int64_t N, T alpha, const PackedA<T>& A, const StripPacker<T>& B, T beta, T* C, int64_t c_rs,
                    int64_t c_cs, bool parallel = true);
template <class T>
void gemm_prepacked(int64_t N, T alpha, const PackedA<T>& A, const T* B, int64_t b_rs, int64_t b_cs, T beta, T* C,
                    int64_t c_rs, int64_t c_cs, bool parallel = true);

// A B operand [depth, cols] read where it lies, never packed: element (k, j) at src[rows[k] +
// col(j)]. Its columns come in runs of `run` adjacent values, `runs` runs to a group: column j is
// value j % run of run j / run % runs of group j / (run * runs), at col(j) = j / (run * runs) *
// group_step + j / run % runs * run_step + j % run. conv2d's unrolled receptive fields are one:
// a row per input channel and tap of the padded input, a run per output row, a group per image.
template <class T>
struct InPlaceB {
  const T* src;
  const int64_t* rows;  // depth offsets, one per row
  int64_t run, runs, run_step, group_step;
};
// How many runs a vector of the micro-kernel (in the instruction set in use) meets at most, over
// B's columns in runs of `run`: 1 when run is a multiple of its length. gemm_in_place takes up to
// kInPlaceMaxPieces. With more than one, a vector's load may start up to kInPlaceMargin bytes
// before a run and end as far past one (the lanes outside it are not taken): src must be
// readable that far around its runs.
constexpr int kInPlaceMaxPieces = 3;
constexpr int64_t kInPlaceMargin = 64;
template <class T>
int64_t gemm_in_place_pieces(int64_t run);
// Whether gemm_in_place beats packing B for an A of M rows and B's columns in runs of `run`: always
// when a vector is one piece; in pieces, only for an A of few strips (each piece past the first
// costs a blend per row of every strip, packing a strip once costs about eight).
template <class T>
bool gemm_in_place_pays(int64_t M, int64_t run);
// C[A.rows, N] = alpha * A @ B + beta * C with A packed by pack_a and B read in place, which saves
// packing B's strips. Bitwise gemm_prepacked's result over the same B.
template <class T>
void gemm_in_place(int64_t N, T alpha, const PackedA<T>& A, const InPlaceB<T>& B, T beta, T* C, int64_t c_rs,
                   int64_t c_cs, bool parallel = true);

// All of a B operand [depth, cols] in the micro-kernel's packed layout, whole: strip s (columns
// [s * nr, s * nr + nr), zeros past cols) holds its depth rows k-major, element (k, j) at
// data[(s * depth + k) * nr + j - s * nr]. A window of rows [d, d + K) of every strip is then a
// B operand of K rows at an offset of d rows, without repacking: see gemm_row_runs. Like PackedA,
// the layout belongs to the instruction set in use when it was packed, and the storage is reused.
template <class T>
struct PackedB {
  std::vector<T> data;
  int64_t depth = 0, cols = 0;
  int nr = 0;
};
// Packs B [K, N], its columns given by a packer (called once per strip, for all K rows).
template <class T>
void pack_b(PackedB<T>& b, int64_t K, int64_t N, const StripPacker<T>& B, bool parallel = true);

// A run of A's columns [k, k + len) that meets len rows of B: row, row + step, row + 2 * step, ...
struct RowRun {
  int64_t k, len, row;
};
// Sums of products whose B rows are picked in runs from one packed matrix, and shifted: for each
// s < n_shifts, C[:, s * c_shift + j] += sum over the runs and t < len of A[:, k + t] *
// B[row + t * step + shifts[s], j], for j < B.cols (C's rows c_rs apart, columns adjacent). The
// runs cover A's columns [0, A.depth) in order. conv2d's weight gradient is one such sum per tap:
// the columns of A are output pixels, a run one output row, B the input flattened channels last,
// and the shift a tap's offset in it, so every tap reads the same packed input. Each shift's
// product is bitwise gemm_strided's with beta 1 over the B rows it picks, stored in order. Rows
// outside B, runs that skip or repeat columns, and shifts whose columns of C overlap are errors.
template <class T>
void gemm_row_runs(const PackedA<T>& A, const PackedB<T>& B, const RowRun* runs, int64_t n_runs, int64_t step,
                   const int64_t* shifts, int64_t n_shifts, T* C, int64_t c_rs, int64_t c_shift, bool parallel = true);

// dst[j * dst_ls + i] = src[i * src_ls + j] for i < rows, j < cols: lines of src (contiguous)
// become columns of dst, through the same register transposes as the packing.
template <class T>
void transpose_lines(int64_t rows, int64_t cols, const T* src, int64_t src_ls, T* dst, int64_t dst_ls);

// The instruction set of the GEMM micro-kernel (which conv2d and matmul run on). The default is
// the widest the CPU has, or MINIMA_CPU_GEMM=avx2|avx512|auto from the environment. Both give
// bitwise the same results (same blocking along K); only the speed differs.
enum class GemmIsa { avx2, avx512 };
const char* gemm_isa_name(GemmIsa isa);
bool gemm_isa_supported(GemmIsa isa);
GemmIsa gemm_isa();
void set_gemm_isa(GemmIsa isa);  // throws when the CPU lacks it

}  // namespace minima::cpu
