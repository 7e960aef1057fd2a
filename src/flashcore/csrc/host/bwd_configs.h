// The catalog of compiled backward-kernel configs (docs/design/backward.md,
// section 6): the one list that the instantiation files (inst/bwd_*.cu), the
// launcher, the heuristic, the workspace sizing and the C entry points read.
// Beside host/configs.h rather than inside it, so that editing this list does
// not rebuild every forward kernel.
//
// Every config is compiled for both element types, as an unmasked and a
// masked (causal / window) main kernel with softcap off and on, plus the
// masked kernels' element-wise-load builds for rows that are not 16-byte
// aligned (host/bwd_launch.cuh): six main kernels per config and dtype, with
// one preprocess pair per tile head dim and one postprocess. The deterministic
// mode doubles the main kernels (kComputeDq false) and adds, per tile head dim
// and dtype, a preprocess pair without zeroing and six dQ kernels
// (sm80/bwd_dq_kernel.cuh, the same mask / softcap / alignment variants).
//
// Columns: name, tile head dim, block M (query rows per m-step), block N (keys
// per thread block), warps, the warp grids of the GEMMs (warps along the query
// rows of S/dP, along the head dim of dK/dV, along the query rows of dQ), and
// the numbers of Q and dO buffers (bwd_traits.h).
//
// First cut: FlashAttention-2's tile shapes (flash_bwd_launch_template.h), not
// yet measured on our kernels. bwd_d64 and bwd_d128 are its >= 144 KB shapes;
// with Q and dO both double-buffered they take 160 KB, which fits compute
// capability 8.0 / 8.7 (163 KB) and 9.0 (227 KB). The _s configs are its
// shapes for 99 KB GPUs (8.6, 8.9, 12.0): 96 KB each, bwd_d128_s with one dO
// buffer. bwd_d256 is its 64 x 64 shape with single Q and dO buffers
// (144 KB: compute capability 8.0 and 9.0; nothing at 256 fits 99 KB GPUs
// yet). The heuristic takes the first mma.sync config of a width that fits.
#pragma once

#include "flashcore/sm80/bwd_traits.h"
#include "flashcore/sm90/bwd_traits.h"

// X(name, head_dim, block_m, block_n, warps, warps_sdp_m, warps_dkv_n, warps_dq_m,
//   q_stages, do_stages)
#define FLASHCORE_BWD_CONFIGS(X)                \
  X(bwd_d64, 64, 128, 128, 8, 4, 2, 4, 2, 2)    \
  X(bwd_d64_s, 64, 64, 128, 8, 2, 2, 2, 2, 2)   \
  X(bwd_d128, 128, 64, 128, 8, 2, 2, 2, 2, 2)   \
  X(bwd_d128_s, 128, 64, 64, 8, 2, 2, 2, 2, 1)  \
  X(bwd_d256, 256, 64, 64, 8, 2, 4, 2, 1, 1)

// The Hopper family (sm90/bwd_kernel.cuh; compiled for sm_90a, launched on
// compute capability 9.0 only, with TMA-readable q, k, v and dout): 128 keys
// per thread block over two consumer warpgroups, query blocks of block M rows
// (design section 7's tiles: 128 at head dim 64, 64 at 128), the default
// (non-deterministic) mode with the GQA group walked inside the block (no
// split). choose_bwd_config picks them for TMA-readable default-mode calls
// whose grid fills at least 48% of a wave (host/heuristics.cpp);
// flashcore._debug.forced_bwd_config forces them anywhere.
// X(name, head_dim, block_m)
#define FLASHCORE_BWD_SM90_CONFIGS(X) \
  X(sm90_bwd_d64, 64, 128)            \
  X(sm90_bwd_d128, 128, 64)

namespace flashcore {

enum class BwdConfig : int {
#define FLASHCORE_X(name, ...) name,
  FLASHCORE_BWD_CONFIGS(FLASHCORE_X)
  FLASHCORE_BWD_SM90_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
      kCount
};

constexpr int kNumBwdConfigs = static_cast<int>(BwdConfig::kCount);

// Catalog index of the first Hopper-family backward config (they follow the
// mma.sync ones).
constexpr int kFirstSm90BwdConfig = static_cast<int>(BwdConfig::sm90_bwd_d64);

// The tile head dims compiled, ascending; a call is served by the narrowest
// one at least its head_dim.
constexpr int kBwdTileHeadDims[] = {64, 128, 256};

// Rows of the backward workspaces (dq_accum, dpsum, lse_log2) per (batch,
// head) are seqlen_q rounded up to this: whole preprocess blocks and whole
// m-blocks of every config (bwd_traits.h asserts 128 % block M == 0).
constexpr int kBwdRowRound = 128;

template <int D, int BM, int BN, int W, int SM, int KN, int QM, int QS, int DOS>
using BwdTraitsOf = BwdKernelTraits<D, BM, BN, W, SM, KN, QM, QS, DOS>;

// The deterministic mode's dQ kernel (sm80/bwd_dq_kernel.cuh) per tile head
// dim: 64 query rows (4 warps of 16) x 64 keys; 32 keys at 256, so that the
// 128 fp32 dQ values per thread plus S and dP (16 each) stay under the
// 255-register cap. Shared memory 48 / 96 / 128 KB (K and V double-buffered):
// at most each width's smallest main config (launch_bwd asserts it), so it
// runs wherever those do. First cut, not measured.
template <int D>
using BwdDqTraitsOf = BwdDqTraits<D, 64, D == 256 ? 32 : 64>;

struct BwdConfigDesc {
  const char* name;
  int head_dim;
  int block_m;
  int block_n;
  int warps;
  int smem_bytes;
  // The Hopper wgmma/TMA family: compute capability 9.0, TMA-ready inputs, the
  // default mode only (a GQA split only when forced).
  bool sm90;
};

constexpr BwdConfigDesc kBwdConfigs[] = {
#define FLASHCORE_X(name, D, BM, BN, W, SM, KN, QM, QS, DOS) \
  {#name, D, BM, BN, W, BwdTraitsOf<D, BM, BN, W, SM, KN, QM, QS, DOS>::kSmemBytes, false},
    FLASHCORE_BWD_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
#define FLASHCORE_X(name, D, BM)                                                          \
  {#name, D, BM, sm90::BwdTraits<D, BM>::kBlockN, sm90::BwdTraits<D, BM>::kNThreads / 32, \
   sm90::BwdTraits<D, BM>::kSmemBytes, true},
    FLASHCORE_BWD_SM90_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
};
static_assert(sizeof(kBwdConfigs) / sizeof(kBwdConfigs[0]) == kNumBwdConfigs,
              "one descriptor per config");

}  // namespace flashcore
