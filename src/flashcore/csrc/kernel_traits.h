// Compile-time tile configuration of the forward kernel and every constant
// derived from it. Each divisibility assumption the kernel makes is asserted here.
#pragma once

namespace flashcore {

template <int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, int kMinBlocksPerSm_,
          int kKeyGroups_ = 1, bool kReloadQ_ = false>
struct FwdKernelTraits {
  static constexpr int kHeadDim = kHeadDim_;  // D
  static constexpr int kBlockM = kBlockM_;    // query rows per thread block
  static constexpr int kBlockN = kBlockN_;    // key/value rows per inner iteration
  static constexpr int kNWarps = kNWarps_;
  static constexpr int kNThreads = kNWarps * 32;
  // Register budget: ptxas caps registers so this many blocks fit on one SM.
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;

  // Key groups: the warps split into kKeyGroups groups that share the Q tile and
  // walk interleaved key tiles, each with its own K/V buffers and barrier; the
  // groups' softmax states merge in shared memory at the end. More warps per
  // query tile for grids too small to fill the GPU.
  static constexpr int kKeyGroups = kKeyGroups_;
  static constexpr int kGroupWarps = kNWarps / kKeyGroups;
  static constexpr int kGroupThreads = kGroupWarps * 32;

  // Q fragments: loaded from shared memory once and kept in registers for the
  // whole key loop (false), or reloaded at every key tile (true), which frees
  // their registers during softmax and P V.
  static constexpr bool kReloadQ = kReloadQ_;

  // Each warp owns kRowsPerWarp consecutive query rows for the whole kernel, so
  // row max / row sum need only shuffles inside a quad of lanes.
  static constexpr int kRowsPerWarp = kBlockM / kGroupWarps;
  static constexpr int kMTiles = kRowsPerWarp / 16;  // m16 tiles per warp

  // mma.sync.m16n8k16 tiling.
  static constexpr int kNTilesS = kBlockN / 8;     // n8 tiles of S = Q K^T per m16 tile
  static constexpr int kKStepsQK = kHeadDim / 16;  // k16 steps over head_dim for Q K^T
  static constexpr int kNTilesO = kHeadDim / 8;    // n8 tiles of O per m16 tile
  static constexpr int kKStepsPV = kBlockN / 16;   // k16 steps over keys for P V

  // Shared-memory tiles are rows of kHeadDim halves; 16-byte chunks per row.
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kChunksPerRow = kRowBytes / 16;

  // K and V are double-buffered: tile n-1 is fetched while tile n is computed.
  static constexpr int kStages = 2;
  static constexpr int kSmemQBytes = kBlockM * kRowBytes;
  static constexpr int kSmemKBytes = kBlockN * kRowBytes;  // one stage
  static constexpr int kSmemVBytes = kBlockN * kRowBytes;  // one stage
  static constexpr int kSmemGroupKVBytes = kStages * (kSmemKBytes + kSmemVBytes);
  static constexpr int kSmemKVBytes = kKeyGroups * kSmemGroupKVBytes;
  static constexpr int kSmemBytes = kSmemQBytes + kSmemKVBytes;

  static_assert(kHeadDim == 64,
                "the XOR swizzle assumes 128-byte rows (head_dim 64 halves)");
  static_assert(kChunksPerRow == 8, "swizzle pattern is 8 chunks of 16 bytes per row");
  static_assert(kNTilesO % kKeyGroups == 0,
                "the key-group merge gives each group whole n8 tiles of O's columns");
  static_assert(kKeyGroups == 1 || kKeyGroups == 2 || kKeyGroups == 4,
                "1, 2 or 4 key groups (named barriers 1..4)");
  static_assert(kNWarps % kKeyGroups == 0, "warps must split evenly into key groups");
  static_assert(kBlockM % kGroupWarps == 0, "kBlockM must split evenly across a group's warps");
  static_assert(kRowsPerWarp % 16 == 0, "each warp must own whole m16 tiles");
  static_assert(kBlockN % 16 == 0, "kBlockN must be a multiple of the k16 step of P V");
  static_assert(kHeadDim % 16 == 0, "head_dim must be a multiple of the k16 step");
  static_assert((kBlockM * kChunksPerRow) % kNThreads == 0,
                "Q tile chunks must split evenly across threads");
  static_assert((kBlockN * kChunksPerRow) % kGroupThreads == 0,
                "K/V tile chunks must split evenly across a group's threads");
  // Fragment exchange of the key-group merge: O, m and l of each thread.
  static constexpr int kMergeFloats = kMTiles * (kHeadDim / 8 * 4 + 4);
  static_assert(kKeyGroups == 1 || kMergeFloats * kGroupThreads * 4 <= kSmemGroupKVBytes,
                "key-group merge must fit in one group's K/V buffers");
  // Over 48 KB needs the launch-time opt-in. 227 KB is sm_90's per-block limit;
  // configs over sm_86/sm_89's 99 KB are chosen only where the device allows them.
  static_assert(kSmemBytes <= 227 * 1024, "tiles must fit 227 KB of shared memory per block");
};

}  // namespace flashcore
