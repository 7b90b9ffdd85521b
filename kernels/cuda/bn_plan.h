// kernels/cuda/bn_plan.h: how the persistent batch-norm kernels (batchnorm.cu, --bn persistent)
// split a tensor into rounds and chunks. Plain C++, so the CPU tests can check the plan's
// invariants on any machine.
//
// A [N, C, H, W] tensor has M = N*H*W values per channel. Each channel is split into P chunks of
// `chunk` values (the last may be shorter), and the C*P chunks are numbered channel by channel:
// chunk i is part i % P of channel i / P. The grid's B blocks, all resident at once, take them in
// rounds: block b holds chunk r*B + b in round r. A channel's chunks therefore lie in at most two
// consecutive rounds (P <= B), and every block has a chunk in every round but the last. A chunk
// must fit one stage of the block's shared memory (`stage` values per input).
#pragma once
#include <algorithm>
#include <cstdint>

#ifdef __CUDACC__
#define MINIMA_BN_HD __host__ __device__
#else
#define MINIMA_BN_HD
#endif

namespace minima::cuda {

struct BnPlan {
  int64_t P = 0;       // chunks per channel
  int64_t B = 0;       // blocks of the grid: min(resident blocks, C * P)
  int64_t chunk = 0;   // values per chunk, a multiple of the pack (a channel's last chunk may be shorter)
  int64_t stage = 0;   // values one stage of shared memory holds, per input
  int64_t rounds = 0;  // ceil(C * P / B)
};

// The plan for M values per channel and C channels, with `blocks` resident blocks of `threads`
// threads whose stages hold `stage` values (a multiple of the pack width V); false when a channel
// does not fit in the blocks' shared memory. As few chunks per channel as the stage allows (fewer
// rounds, each a wait for the slowest block), except when every chunk fits in one round with blocks
// to spare: then the channels are spread over the idle blocks too, but no chunk is made smaller
// than one pack per thread.
inline bool plan_bn_persistent(int64_t M, int64_t C, int64_t blocks, int64_t threads, int64_t stage, int64_t V,
                               BnPlan& p) {
  if (M <= 0 || C <= 0 || blocks <= 0 || V <= 0 || stage < V || stage % V != 0) return false;
  const int64_t min_parts = (M + stage - 1) / stage;
  if (min_parts > blocks) return false;
  int64_t parts = min_parts;
  if (C <= blocks / min_parts) {  // one round
    const int64_t thread_parts = (M + threads * V - 1) / (threads * V);
    parts = std::max(min_parts, std::min(blocks / C, thread_parts));
  }
  p.chunk = ((M + parts - 1) / parts + V - 1) / V * V;  // <= stage: parts >= min_parts, stage % V == 0
  p.P = (M + p.chunk - 1) / p.chunk;
  p.B = std::min(blocks, C * p.P);
  p.stage = stage;
  p.rounds = (C * p.P + p.B - 1) / p.B;
  return true;
}

// The chunk that block b holds in round r: values [j0, j0 + len) of channel c (value j of a
// channel lies in plane j / S, at offset (j / S * C + c) * S + j % S); c < 0 when the block holds
// none (past the last chunk).
struct BnChunk {
  int64_t c = -1, part = 0, j0 = 0, len = 0;
};
MINIMA_BN_HD inline BnChunk bn_chunk_of(const BnPlan& p, int64_t M, int64_t C, int64_t b, int64_t r) {
  BnChunk k;
  const int64_t i = r * p.B + b;
  if (r < 0 || b >= p.B || i >= C * p.P) return k;
  k.c = i / p.P;
  k.part = i % p.P;
  k.j0 = k.part * p.chunk;
  k.len = M - k.j0 < p.chunk ? M - k.j0 : p.chunk;
  return k;
}

}  // namespace minima::cuda
