// The catalog of compiled forward-kernel configs: the one list that the
// instantiation files, the launcher, the heuristic and the debug override
// read. Every config is compiled for both element types (fp16, bf16), each in
// an unmasked and a masked (causal / window) variant with softcap off and on,
// plus the masked variants' element-wise-load builds for rows that are not
// 16-byte aligned (host/fwd_launch.cuh): six kernels per config and dtype.
//
// Columns: name, tile head dim, block M (query rows), block N (keys per
// iteration), warps, min blocks per SM (register cap), key groups, Q reloaded
// per key tile (QReload: never, always, in the masked kernel only), two-pass
// softmax order in the unmasked kernel, PDL launch.
//
// Evidence for the head-dim-64 choices (H100, benchmarks/NOTES.md):
// - d64_m128: 128 x 64, 4 warps of 32 rows: 15-25% faster than 4 warps x 16
//   rows and 4-15% faster than 8 warps x 16 rows at (4,16,2048)..(2,16,16384)
//   (v2); Q reloaded per key tile: no spills at the 2-blocks-per-SM register
//   cap and 3-5% faster (v6). Plain launch: PDL measured neutral to -3% (v2).
// - d64_m64: twice the blocks of d64_m128, 3 per SM; 7-12% faster than it at
//   (2,8,1024) (v2).
// - d64_m64_g2: at (1,8,{256,512,1024}) 7-21% faster than d64_m64 and every
//   split of the keys over a thread-block cluster (v3).
// - d64_m32_g4 (needs > 99 KB of shared memory): at (1,8,256/512) 11-21% faster
//   than two groups (v4). d64_m64_g4: 4-13% faster than two groups with 16+
//   key tiles, 11% slower with 8 (v4); its unmasked kernel uses the two-pass
//   softmax order, 5-7% faster at (1,8,1024) there and 8% slower causal (v6).
//   Q stays in registers in its unmasked kernel and is reloaded per key tile in
//   the masked one: at (1,8,1024) on H200 4% faster non-causal, and reloading
//   2% faster causal (v8).
// - PDL on the small-grid configs: -0.2..0.4 us per call, and back-to-back
//   calls overlap by ~0.6 us more with the trigger at kernel start (v2, v5).
// The other head dims follow the same pattern (a 128-row tile for large grids,
// a 64-row one otherwise; key groups at 128) with the tile shapes FA2 uses
// where registers or shared memory do not allow 4 warps x 32 rows; their
// measurements are in benchmarks/NOTES.md (v7). Their 64-row configs launch
// without PDL: with it, back-to-back calls at (1,8,1024) took 27-31% longer
// at head dims 8, 96, 160 and 256 on H200 (12.2 vs 17.8 us at 8, 45.8 vs
// 66.4 us at 256), and calls after a non-PDL kernel were equal either way.
#pragma once

#include "flashcore/sm80/fwd_traits.h"
#include "flashcore/sm90/fwd_traits.h"

// X(name, head_dim, block_m, block_n, warps, min_blocks, key_groups, reload_q, two_pass, pdl)
#define FLASHCORE_FWD_CONFIGS(X)                                  \
  X(d32_m128, 32, 128, 64, 4, 2, 1, kNever, false, false)         \
  X(d32_m64, 32, 64, 64, 4, 3, 1, kNever, false, false)           \
  X(d64_m128, 64, 128, 64, 4, 2, 1, kAlways, false, false)        \
  X(d64_m64, 64, 64, 64, 4, 3, 1, kNever, false, true)            \
  X(d64_m64_g2, 64, 64, 64, 8, 1, 2, kNever, false, true)         \
  X(d64_m32_g4, 64, 32, 64, 8, 1, 4, kNever, false, true)         \
  X(d64_m64_g4, 64, 64, 64, 8, 1, 4, kMasked, true, true)         \
  X(d96_m128, 96, 128, 64, 4, 2, 1, kAlways, false, false)        \
  X(d96_m64, 96, 64, 64, 4, 2, 1, kNever, false, false)           \
  X(d128_m128, 128, 128, 64, 4, 2, 1, kAlways, false, false)      \
  X(d128_m64, 128, 64, 64, 4, 2, 1, kNever, false, true)          \
  X(d128_m64_g2, 128, 64, 64, 8, 1, 2, kNever, false, true)       \
  X(d128_m32_g4, 128, 32, 32, 8, 1, 4, kNever, false, true)       \
  X(d192_m128, 192, 128, 64, 8, 1, 1, kAlways, false, false)      \
  X(d192_m64, 192, 64, 32, 4, 2, 1, kAlways, false, false)        \
  X(d256_m128, 256, 128, 32, 8, 1, 1, kAlways, false, false)      \
  X(d256_m64, 256, 64, 32, 4, 2, 1, kAlways, false, false)

// The Hopper family (sm90/fwd_kernel.cuh; compiled for sm_90a, launched on
// compute capability 9.0 only): one producer and two consumer warpgroups,
// 128 query rows, K/V tiles of block N keys in a ring of `stages`; overlap:
// a warpgroup issues tile n's Q K^T with tile n+1's P V in one batch (its
// softmax then runs after both: ptxas's order, measured the faster one in
// v20); pingpong: the two
// warpgroups alternate their GEMM batches. Both on, against neither / overlap
// alone on H200 (fp16 and bf16, (4,16,2048) .. (2,16,16384) and (1,8,1024)):
// head dim 128 4-30% / -2..+17% faster, head dim 64 non-causal 10-20% /
// 11-25%, causal 1-14% / 0-15% (benchmarks/NOTES.md, v9).
// Persistent twins (_p, v10): at most one block per SM taking tiles from an
// atomic counter; +1-6% at head dim 64 and +0-3% at 128 without a mask, 2-6%
// slower causal at (2,16,16384) with the head-major tile order, so the
// heuristic picks them for calls without a mask only. Their masked kernels now
// take tiles longest-first across heads (sm90/tile_order.h; not measured:
// benchmarks/NOTES.md v15, _debug.sm90_persistent_masked for the A/B).
// Tried and not kept (v9): a static persistent grid (one block per SM walking
// tiles: equal non-causal, 10% slower causal at (2,16,16384)), O stored from
// registers instead of through shared memory (3-5% slower non-causal), K/V
// tiles of 176 keys at head dim 128 and a third stage at 64 (no gain).
// Three consumer warpgroups of 64 rows at head dim 64 (192-row tiles, FA3's
// shape there; benchmarks/NOTES.md v17): sm90_d64_w3 and its persistent twin
// _w3_p are the heuristic's picks for long rows without softcap
// (host/heuristics.cpp sm90_d64_pick); _w3_np, without the ping-pong turns
// (9-16% slower), is forced only.
// X(name, head_dim, block_n, stages, pingpong, consumer warpgroups, persistent, pdl)
#define FLASHCORE_FWD_SM90_CONFIGS(X)                 \
  X(sm90_d64, 64, 128, 2, true, 2, false, false)      \
  X(sm90_d128, 128, 128, 2, true, 2, false, false)    \
  X(sm90_d64_p, 64, 128, 2, true, 2, true, false)     \
  X(sm90_d128_p, 128, 128, 2, true, 2, true, false)   \
  X(sm90_d64_w3, 64, 128, 2, true, 3, false, false)   \
  X(sm90_d64_w3_np, 64, 128, 2, false, 3, false, false) \
  X(sm90_d64_w3_p, 64, 128, 2, true, 3, true, false)

namespace flashcore {

enum class FwdConfig : int {
#define FLASHCORE_X(name, ...) name,
  FLASHCORE_FWD_CONFIGS(FLASHCORE_X)
  FLASHCORE_FWD_SM90_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
      kCount
};

// Catalog index of the first Hopper-family config (they follow the mma.sync ones).
constexpr int kFirstSm90Config = static_cast<int>(FwdConfig::sm90_d64);

constexpr int kNumFwdConfigs = static_cast<int>(FwdConfig::kCount);

// The tile head dims compiled, ascending; a call is served by the narrowest
// one at least its head_dim.
constexpr int kFwdTileHeadDims[] = {32, 64, 96, 128, 192, 256};

template <int D, int BM, int BN, int W, int MB, int G, QReload RQ, bool TP>
using FwdTraitsOf = FwdKernelTraits<D, BM, BN, W, MB, G, RQ, TP>;

// Host-side description of a config (names and numbers for the heuristic,
// the error messages and the debug override).
struct FwdConfigDesc {
  const char* name;
  int head_dim;
  int block_m;
  int block_n;
  int warps;
  int key_groups;
  int smem_bytes;
  bool pdl;
  bool sm90;  // the Hopper wgmma/TMA family: compute capability 9.0 and TMA-ready inputs only
  bool persistent;  // needs FwdParams::tile_counter (the scheduler buffer: sm90/tile_order.h)
  bool tail_split;  // persistent and splits the last wave without a mask (sm90/tile_order.h)
};

constexpr FwdConfigDesc kFwdConfigs[] = {
#define FLASHCORE_X(name, D, BM, BN, W, MB, G, RQ, TP, PDL) \
  {#name, D, BM, BN, W, G, FwdTraitsOf<D, BM, BN, W, MB, G, QReload::RQ, TP>::kSmemBytes, PDL, \
   false, false, false},
    FLASHCORE_FWD_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
#define FLASHCORE_X(name, D, BN, ST, PP, WG, PS, PDL)                                 \
  {#name, D, sm90::FwdTraits<D, BN, ST, PP, WG, PS>::kBlockM, BN,                       \
   sm90::FwdTraits<D, BN, ST, PP, WG, PS>::kNThreads / 32, 1,                           \
   sm90::FwdTraits<D, BN, ST, PP, WG, PS>::kSmemBytes, PDL, true, PS,                   \
   sm90::FwdTraits<D, BN, ST, PP, WG, PS>::kTailSplit},
    FLASHCORE_FWD_SM90_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
};
static_assert(sizeof(kFwdConfigs) / sizeof(kFwdConfigs[0]) == kNumFwdConfigs,
              "one descriptor per config");

}  // namespace flashcore
