// Compile-time tile configuration of the mma.sync backward kernels
// (sm80/bwd_kernel.cuh; docs/design/backward.md, section 6) and every constant
// derived from it. Plain C++ (no CUDA types), so the host-side heuristic and
// workspace sizing read the same numbers the kernels use. Each divisibility
// assumption the kernels make is asserted here.
#pragma once

namespace flashcore {

// Row geometry of a shared tile whose rows hold kWidth 2-byte elements, in the
// form TileLayout (smem_layout.cuh) reads: Q, dO, K and V tiles have rows of
// the head dim, the P and dS tiles rows of kBlockN keys.
template <int kWidth>
struct BwdRowTraits {
  static constexpr int kChunksPerRow = kWidth / 8;
  // Whole 128-byte lines are XOR-swizzled (every width used here is a
  // multiple of 64 elements); see smem_layout.cuh.
  static constexpr bool kSwizzled = kChunksPerRow % 8 == 0;
  static constexpr int kRowPitchChunks = kSwizzled ? kChunksPerRow : kChunksPerRow + 1;
  static constexpr int kRowPitchBytes = kRowPitchChunks * 16;
};

// kWarpsSdpM: warps along the query rows of S and dP (the rest along keys).
// kWarpsDkvN: warps along the head dim of dK and dV (the rest along keys).
// kWarpsDqM: warps along the query rows of dQ (the rest along the head dim).
// kQStages, kDoStages: Q and dO buffers. 2: the next m-step's tile loads at
// the top of a step, under all of this step's GEMMs. 1: it loads once this
// step's dK (Q) or dV (dO) GEMM has read the buffer, behind a third barrier
// per step, under the dQ GEMM only; this is how the wide or 99 KB configs fit.
template <int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, int kWarpsSdpM_,
          int kWarpsDkvN_, int kWarpsDqM_, int kQStages_, int kDoStages_>
struct BwdKernelTraits {
  // Tile width over the head dim: the caller's head_dim is at most this; the
  // columns past it are zero-filled on load and never stored.
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;  // query rows per m-step
  static constexpr int kBlockN = kBlockN_;  // keys per thread block (the CTA's key block)
  static constexpr int kNWarps = kNWarps_;
  static constexpr int kNThreads = kNWarps * 32;
  // One block per SM: dK and dV live in registers for the block's whole life
  // and take the 255-register cap (design section 6's budget).
  static constexpr int kMinBlocksPerSm = 1;

  // Row geometry of the head-dim-wide tiles (Q, dO, K, V; also what
  // TileLoader and store_tile read from their Traits argument).
  using Rows = BwdRowTraits<kHeadDim>;
  static constexpr int kChunksPerRow = Rows::kChunksPerRow;
  static constexpr bool kSwizzled = Rows::kSwizzled;
  static constexpr int kRowPitchBytes = Rows::kRowPitchBytes;
  // Row geometry of the key-wide P and dS tiles (kBlockM rows of kBlockN keys).
  using PRows = BwdRowTraits<kBlockN>;

  // ---- warp tiles of the five GEMMs (mma.sync m16n8k16) ----
  // S = Q K^T and dP = dO V^T: kBlockM x kBlockN, warps kWarpsSdpM x kWarpsSdpN.
  static constexpr int kWarpsSdpM = kWarpsSdpM_;
  static constexpr int kWarpsSdpN = kNWarps / kWarpsSdpM;
  static constexpr int kSdpRows = kBlockM / kWarpsSdpM;  // query rows per warp
  static constexpr int kSdpCols = kBlockN / kWarpsSdpN;  // keys per warp
  static constexpr int kSdpMTiles = kSdpRows / 16;
  static constexpr int kSdpNTiles = kSdpCols / 8;
  static constexpr int kSdpKSteps = kHeadDim / 16;
  // dV += P^T dO and dK += dS^T Q: kBlockN x kHeadDim, warps kWarpsDkvM x kWarpsDkvN.
  static constexpr int kWarpsDkvN = kWarpsDkvN_;
  static constexpr int kWarpsDkvM = kNWarps / kWarpsDkvN;
  static constexpr int kDkvRows = kBlockN / kWarpsDkvM;  // keys per warp
  static constexpr int kDkvCols = kHeadDim / kWarpsDkvN;
  static constexpr int kDkvMTiles = kDkvRows / 16;
  static constexpr int kDkvNTiles = kDkvCols / 8;
  static constexpr int kDkvKSteps = kBlockM / 16;
  // dQ = dS K: kBlockM x kHeadDim, warps kWarpsDqM x kWarpsDqN.
  static constexpr int kWarpsDqM = kWarpsDqM_;
  static constexpr int kWarpsDqN = kNWarps / kWarpsDqM;
  static constexpr int kDqRows = kBlockM / kWarpsDqM;
  static constexpr int kDqCols = kHeadDim / kWarpsDqN;
  static constexpr int kDqMTiles = kDqRows / 16;
  static constexpr int kDqNTiles = kDqCols / 8;
  static constexpr int kDqKSteps = kBlockN / 16;
  // fp32 dQ values one thread adds per m-step (its slice of dq_accum).
  static constexpr int kDqValues = kDqMTiles * kDqNTiles * 4;

  // ---- shared memory ----
  // K and V: loaded once. Q and dO: kQStages and kDoStages buffers. P and dS:
  // one kBlockM x kBlockN 16-bit tile each. The epilogue stages dK and dV in
  // the K and V buffers.
  static constexpr int kQStages = kQStages_;
  static constexpr int kDoStages = kDoStages_;
  // Whether some tile loads after the dK / dV GEMMs (the third barrier).
  static constexpr bool kLateLoads = kQStages == 1 || kDoStages == 1;
  static constexpr int kSmemKBytes = kBlockN * kRowPitchBytes;
  static constexpr int kSmemVBytes = kSmemKBytes;
  static constexpr int kSmemQBytes = kBlockM * kRowPitchBytes;  // one stage
  static constexpr int kSmemDoBytes = kSmemQBytes;              // one stage
  static constexpr int kSmemPBytes = kBlockM * PRows::kRowPitchBytes;
  static constexpr int kSmemDsBytes = kSmemPBytes;
  static constexpr int kSmemOffV = kSmemKBytes;
  static constexpr int kSmemOffQ = kSmemOffV + kSmemVBytes;
  static constexpr int kSmemOffDo = kSmemOffQ + kQStages * kSmemQBytes;
  static constexpr int kSmemOffP = kSmemOffDo + kDoStages * kSmemDoBytes;
  static constexpr int kSmemOffDs = kSmemOffP + kSmemPBytes;
  static constexpr int kSmemBytes = kSmemOffDs + kSmemDsBytes;

  // The postprocess stages one kBlockM x kHeadDim 16-bit dQ tile.
  static constexpr int kPostSmemBytes = kSmemQBytes;

  static_assert(kHeadDim % 64 == 0 && kHeadDim >= 64 && kHeadDim <= 256,
                "backward tile widths are multiples of 64 up to 256 (swizzled 128-byte rows)");
  static_assert(kBlockN % 64 == 0, "P/dS rows of kBlockN keys must be whole 128-byte lines");
  static_assert(kSwizzled && PRows::kSwizzled, "every backward tile is XOR-swizzled");
  static_assert(kNWarps % kWarpsSdpM == 0 && kNWarps % kWarpsDkvN == 0 &&
                    kNWarps % kWarpsDqM == 0,
                "each GEMM's warp grid must use every warp");
  static_assert(kBlockM % (16 * kWarpsSdpM) == 0, "S/dP warps must own whole m16 row tiles");
  static_assert(kBlockN % (16 * kWarpsSdpN) == 0,
                "S/dP warps must own pairs of n8 key tiles (one ldmatrix.x4 each)");
  static_assert(kBlockN % (16 * kWarpsDkvM) == 0, "dK/dV warps must own whole m16 key tiles");
  static_assert(kHeadDim % (16 * kWarpsDkvN) == 0,
                "dK/dV warps must own pairs of n8 head-dim tiles");
  static_assert(kBlockM % (16 * kWarpsDqM) == 0, "dQ warps must own whole m16 row tiles");
  static_assert(kHeadDim % (16 * kWarpsDqN) == 0, "dQ warps must own pairs of n8 head-dim tiles");
  static_assert(kBlockM % 16 == 0 && kBlockN % 16 == 0, "k16 steps over queries and keys");
  static_assert((kQStages == 1 || kQStages == 2) && (kDoStages == 1 || kDoStages == 2),
                "one or two Q and dO buffers");
  static_assert(128 % kBlockM == 0,
                "seqlen_q_rounded (a multiple of 128) must hold whole m-blocks");
  // Over 48 KB needs the launch-time opt-in. Configs over an architecture's
  // limit are compiled empty for it and never chosen there.
  static_assert(kSmemBytes <= 227 * 1024, "tiles must fit 227 KB of shared memory per block");
};

// The deterministic mode's dQ kernel (sm80/bwd_dq_kernel.cuh): one block per
// query block of kBlockM rows, kNWarps warps of 16 rows each, walking key
// blocks of kBlockN keys. Each warp owns whole rows of S, dP and dS, so dS
// stays in registers as the A operand of dQ += dS K (the forward's P V form,
// warp_gemm.cuh gemm_pv) and no shared P / dS tile or block-wide reduction is
// needed. Shared memory: Q and dO (one buffer each, loaded once), K and V
// (two buffers each: the next key block loads under this one's GEMMs).
// Registers per thread: dQ kHeadDim / 2 fp32, S and dP kBlockN / 2 each.
template <int kHeadDim_, int kBlockM_, int kBlockN_>
struct BwdDqTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kNWarps = kBlockM / 16;
  static constexpr int kNThreads = kNWarps * 32;
  // dQ lives in registers for the block's whole life (kHeadDim / 2 floats).
  static constexpr int kMinBlocksPerSm = 1;

  using Rows = BwdRowTraits<kHeadDim>;
  static constexpr int kChunksPerRow = Rows::kChunksPerRow;
  static constexpr bool kSwizzled = Rows::kSwizzled;
  static constexpr int kRowPitchBytes = Rows::kRowPitchBytes;

  // The forward's names, read by warp_gemm.cuh gemm_pv (dQ += dS K).
  static constexpr int kMTiles = 1;                // m16 tiles per warp
  static constexpr int kNTilesS = kBlockN / 8;     // n8 key tiles of S, dP, dS
  static constexpr int kKStepsQK = kHeadDim / 16;  // k16 steps of S = Q K^T, dP = dO V^T
  static constexpr int kNTilesO = kHeadDim / 8;    // n8 head-dim tiles of dQ
  static constexpr int kKStepsPV = kBlockN / 16;   // k16 steps of dQ += dS K

  static constexpr int kSmemQBytes = kBlockM * kRowPitchBytes;
  static constexpr int kSmemKBytes = kBlockN * kRowPitchBytes;  // one stage
  static constexpr int kSmemOffDo = kSmemQBytes;
  static constexpr int kSmemOffK = kSmemOffDo + kSmemQBytes;      // [2 stages]
  static constexpr int kSmemOffV = kSmemOffK + 2 * kSmemKBytes;   // [2 stages]
  static constexpr int kSmemBytes = kSmemOffV + 2 * kSmemKBytes;

  static_assert(kHeadDim % 64 == 0 && kHeadDim >= 64 && kHeadDim <= 256,
                "backward tile widths are multiples of 64 up to 256 (swizzled 128-byte rows)");
  static_assert(kSwizzled, "every backward tile is XOR-swizzled");
  static_assert(kBlockM % 16 == 0 && kNWarps >= 1, "one m16 row tile per warp");
  static_assert(kBlockN % 16 == 0, "S / dP n8 tiles come in pairs (ldmatrix.x4)");
  static_assert(128 % kBlockM == 0,
                "seqlen_q_rounded (a multiple of 128) must hold whole query blocks");
  static_assert(kSmemBytes <= 227 * 1024, "tiles must fit 227 KB of shared memory per block");
};

}  // namespace flashcore
