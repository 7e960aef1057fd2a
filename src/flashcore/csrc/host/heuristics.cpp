#include "heuristics.h"

#include <algorithm>
#include <atomic>

#include "build_config.h"
#include "bwd_configs.h"
#include "configs.h"
#include "debug_overrides.h"
#include "flashcore/sm90/tile_order.h"

namespace flashcore {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

const FwdConfigDesc& desc(FwdConfig c) { return kFwdConfigs[static_cast<int>(c)]; }

bool fits(FwdConfig c, const DeviceDesc& dev) { return desc(c).smem_bytes <= dev.smem_optin; }

// Query tiles of `block_m` rows over the whole call.
int64_t tiles(const FwdShape& s, int block_m) {
  return s.batch * s.heads_q * ceil_div(s.seqlen_q, block_m);
}

// Head dim 64 and 128: a 128-row tile when the grid gives two blocks per SM,
// key-group configs when at most one small tile per SM (the latency-bound
// small grids), a 64-row tile in between. Rules and evidence: host/configs.h.
FwdConfig choose_grouped(const FwdShape& s, const DeviceDesc& dev, FwdConfig large,
                         FwdConfig small, FwdConfig two_groups, FwdConfig quad16,
                         FwdConfig quad32) {
  if (tiles(s, desc(large).block_m) >= 2 * dev.sm_count && fits(large, dev)) return large;
  if (tiles(s, desc(quad16).block_m) <= dev.sm_count && fits(quad16, dev)) return quad16;
  if (tiles(s, desc(two_groups).block_m) <= dev.sm_count) {
    // 32 rows per warp in four groups pay off only over 16+ key tiles.
    if (quad32 != two_groups && fits(quad32, dev) &&
        ceil_div(s.seqlen_k, desc(quad32).block_n) >= 16) {
      return quad32;
    }
    if (fits(two_groups, dev)) return two_groups;
  }
  return small;
}

// Other head dims: a 128-row tile when it fills every SM, else a 64-row tile.
FwdConfig choose_plain(const FwdShape& s, const DeviceDesc& dev, FwdConfig large,
                       FwdConfig small) {
  if (tiles(s, desc(large).block_m) >= dev.sm_count && fits(large, dev)) return large;
  return small;
}

// The Hopper family on compute capability 9.0 when the build has it, the
// inputs suit TMA and the grid of 128-row tiles fills the GPU; the small grids
// keep the mma.sync key-group configs (benchmarks/NOTES.md, v9).
bool use_sm90(const FwdShape& s, const DeviceDesc& dev, FwdConfig c) {
  return built_with_sm90a() && dev.cc_major == 9 && dev.cc_minor == 0 && s.tma_ok &&
         fits(c, dev) && tiles(s, desc(c).block_m) >= dev.sm_count;
}

std::atomic<bool> g_sm90_persistent_masked{false};

// Within the Hopper family: the persistent build of a config, whose tiles
// come from an atomic counter (in cross-head longest-first order under a
// mask), except under a causal mask or a window with more than 64 query tiles
// per head (seqlen_q > 8192), where the one-block-per-tile build stays. Without
// a mask the persistent build measured +0-6% (benchmarks/NOTES.md v10). Under
// a causal mask, with the longest-first order: +3-9% at (4,16,2048) and
// (8,16,4096), D64 and D128, but at (2,16,16384) +1% at D64 and -2.5% at D128
// (NOTES v15). Windows ride the same rule unmeasured. The debug switch
// (debug_overrides.h) takes the persistent build for every masked call.
constexpr int64_t kMaxPersistentMaskedTiles = 64;

int sm90_pick(const FwdShape& s, FwdConfig per_tile, FwdConfig persistent) {
  if (s.masked && !sm90_persistent_masked() &&
      ceil_div(s.seqlen_q, desc(persistent).block_m) > kMaxPersistentMaskedTiles) {
    return static_cast<int>(per_tile);
  }
  return static_cast<int>(persistent);
}

// Head dim 128 without a mask: the persistent build below rows of 16384, the
// one-block-per-tile build from there. Since v29 (the next tile's Q a whole
// tile ahead) the persistent build measured 2-9% faster at 3072, 4096 and
// 8192 rows and at (1,32/8,8192), fp16 and bf16, and within 1% at
// (2,16,16384) (benchmarks/NOTES.md v30; v26 had the one-block-per-tile build
// ahead from 4096). Rows are min(seqlen_q, seqlen_k). Masked calls keep
// sm90_pick's rule.
constexpr int64_t kMinPerTileUnmaskedRowsD128 = 16384;

int sm90_d128_pick(const FwdShape& s) {
  if (!s.masked && std::min(s.seqlen_q, s.seqlen_k) >= kMinPerTileUnmaskedRowsD128) {
    return static_cast<int>(FwdConfig::sm90_d128);
  }
  return sm90_pick(s, FwdConfig::sm90_d128, FwdConfig::sm90_d128_p);
}

// Head dim 64 on Hopper with long rows and no softcap: three consumer
// warpgroups (192-row tiles), so each K/V tile the producer loads serves 50%
// more query rows. Against the two-warpgroup pick (benchmarks/NOTES.md v17,
// H200, fp16 and bf16): without a mask +1..+7% at 4K and 8K, +8..+11% at 16K
// and 32K, and since v27 (uniform datapath) +3..+4% at 2K as well (-4% in
// v17); under a causal mask -1..-10% up to 4K, +4..+8% from 8K in v17,
// since v28 (O stored from registers) the persistent three-warpgroup twin
// +5% at 4K (fp16, 475 vs 452 TFLOP/s), -4% at 2K, and since v30 (a
// warpgroup skips the softmax of the diagonal key tile it does not see) +1%
// to +9% from 1536 rows to 3072, -3% at 1024. There the persistent twin
// (longest-first order) led up to 16K in v17; since v27 the
// one-block-per-tile build leads at 16K (+1..+2%, three builds), so the twin
// keeps rows up to 8192 (43 tiles; 8K-16K unmeasured). Softcap keeps two
// warpgroups: tanh's temporaries spill inside the key/value loop at three
// warpgroups' 160 registers a thread. Rows are min(seqlen_q, seqlen_k), the
// measured square shapes' length.
constexpr int64_t kMinW3Rows = 2048;
constexpr int64_t kMinW3MaskedRows = 1536;
constexpr int64_t kMaxW3PersistentMaskedTiles = 43;  // ceil(8192 / 192)
constexpr int64_t kMaxW3SplitRows = 8192;

int sm90_d64_pick(const FwdShape& s, const DeviceDesc& dev) {
  const int64_t rows = std::min(s.seqlen_q, s.seqlen_k);
  if (!s.softcap && rows >= (s.masked ? kMinW3MaskedRows : kMinW3Rows) &&
      use_sm90(s, dev, FwdConfig::sm90_d64_w3)) {
    if (!s.masked) {
      // The persistent twin where its tail split fills the last wave, up to
      // kMaxW3SplitRows (v28: +7% at (2,8,8192), a tie at (4,16,2048) and
      // (8,16,4096); at 16K the twin ran 10% behind the one-block-per-tile
      // build without a split, more than a split's tail can win back).
      const FwdConfigDesc& p = desc(FwdConfig::sm90_d64_w3_p);
      const sm90::TailSplit plan =
          sm90::fwd_tail_split(true, ceil_div(s.seqlen_q, p.block_m) * s.batch * s.heads_q,
                               dev.sm_count, s.seqlen_k, p.block_n);
      const bool split = plan.parts > 1 && rows <= kMaxW3SplitRows;
      return static_cast<int>(split ? FwdConfig::sm90_d64_w3_p : FwdConfig::sm90_d64_w3);
    }
    const bool persistent =
        sm90_persistent_masked() ||
        ceil_div(s.seqlen_q, desc(FwdConfig::sm90_d64_w3_p).block_m) <= kMaxW3PersistentMaskedTiles;
    return static_cast<int>(persistent ? FwdConfig::sm90_d64_w3_p : FwdConfig::sm90_d64_w3);
  }
  return sm90_pick(s, FwdConfig::sm90_d64, FwdConfig::sm90_d64_p);
}

}  // namespace

void set_sm90_persistent_masked(bool on) {
  g_sm90_persistent_masked.store(on, std::memory_order_relaxed);
}

bool sm90_persistent_masked() { return g_sm90_persistent_masked.load(std::memory_order_relaxed); }

bool built_with_sm90a() { return FLASHCORE_HAS_SM90A != 0; }

int fwd_tile_head_dim(int head_dim) {
  for (int d : kFwdTileHeadDims) {
    if (d >= head_dim) return d;
  }
  return -1;
}

int choose_fwd_config(const FwdShape& s, const DeviceDesc& dev) {
  FwdConfig c;
  switch (fwd_tile_head_dim(s.head_dim)) {
    case 32: c = choose_plain(s, dev, FwdConfig::d32_m128, FwdConfig::d32_m64); break;
    case 64:
      if (use_sm90(s, dev, FwdConfig::sm90_d64)) return sm90_d64_pick(s, dev);
      c = choose_grouped(s, dev, FwdConfig::d64_m128, FwdConfig::d64_m64, FwdConfig::d64_m64_g2,
                         FwdConfig::d64_m32_g4, FwdConfig::d64_m64_g4);
      break;
    case 96: c = choose_plain(s, dev, FwdConfig::d96_m128, FwdConfig::d96_m64); break;
    case 128:
      if (use_sm90(s, dev, FwdConfig::sm90_d128)) return sm90_d128_pick(s);
      // No 64-row four-group config: its merge exchange does not fit the K/V
      // buffers of 32-key tiles at this width (fwd_traits.h).
      c = choose_grouped(s, dev, FwdConfig::d128_m128, FwdConfig::d128_m64,
                         FwdConfig::d128_m64_g2, FwdConfig::d128_m32_g4, FwdConfig::d128_m64_g2);
      break;
    case 192: c = choose_plain(s, dev, FwdConfig::d192_m128, FwdConfig::d192_m64); break;
    case 256: c = choose_plain(s, dev, FwdConfig::d256_m128, FwdConfig::d256_m64); break;
    default: return -1;
  }
  return fits(c, dev) ? static_cast<int>(c) : -1;
}

int bwd_tile_head_dim(int head_dim) {
  for (int d : kBwdTileHeadDims) {
    if (d >= head_dim) return d;
  }
  return -1;
}

namespace {

// The Hopper backward (sm90/bwd_kernel.cuh) where it can run and has measured
// faster: 480-560 TFLOP/s against the mma.sync configs' 258-285 at (4,16,2048)
// and (8,16,4096), D64 and D128 (H200, benchmarks/NOTES.md v13, v16). It needs
// code (a build with sm_90a), compute capability 9.0 with its shared memory,
// TMA-readable tensors and the default mode (it adds dQ by atomics; no
// deterministic build; no forced GQA split unless the config is forced too).
// Its grid of batch x kv heads x 128-key
// blocks must fill at least 48% of a wave of the SMs, the smallest grid where
// it has measured faster: the GPT training step, 64 blocks on 132 SMs, 205
// TFLOP/s against 192 for mma.sync with its GQA split of 2 (NOTES v16).
// Smaller grids are unmeasured and keep the mma.sync configs and their split.
bool use_sm90_bwd(const BwdShape& s, const DeviceDesc& dev, BwdConfig c) {
  const BwdConfigDesc& cfg = kBwdConfigs[static_cast<int>(c)];
  const int64_t blocks = s.batch * s.heads_kv * ceil_div(s.seqlen_k, cfg.block_n);
  return built_with_sm90a() && dev.cc_major == 9 && dev.cc_minor == 0 &&
         cfg.smem_bytes <= dev.smem_optin && s.tma_ok && !s.deterministic &&
         s.forced_gqa_split <= 1 && 100 * blocks >= 48 * static_cast<int64_t>(dev.sm_count);
}

}  // namespace

// The narrowest compiled tile width at least head_dim: the Hopper config of
// that width where use_sm90_bwd allows it (widths 64 and 128), else of its
// mma.sync configs the first that fits the device's shared memory
// (host/bwd_configs.h: the large tiles, then the 99 KB ones); -1 past the
// widest or below compute capability 8.0.
int choose_bwd_config(const BwdShape& s, const DeviceDesc& dev) {
  if (dev.cc_major < 8) return -1;
  const int tile = bwd_tile_head_dim(s.head_dim);
  if (tile == 64 && use_sm90_bwd(s, dev, BwdConfig::sm90_bwd_d64)) {
    return static_cast<int>(BwdConfig::sm90_bwd_d64);
  }
  if (tile == 128 && use_sm90_bwd(s, dev, BwdConfig::sm90_bwd_d128)) {
    return static_cast<int>(BwdConfig::sm90_bwd_d128);
  }
  for (int i = 0; i < kNumBwdConfigs; ++i) {
    if (kBwdConfigs[i].sm90) continue;
    if (kBwdConfigs[i].head_dim == tile && kBwdConfigs[i].smem_bytes <= dev.smem_optin) return i;
  }
  return -1;
}

// Splitting trades fp32 partials (written by the main kernel, read back by
// the reduce) for thread blocks. The main kernels fit one block per SM (255
// registers, kMinBlocksPerSm 1), so the grid runs in waves of sm_count blocks
// and a part's block does 1/G of the group's work: the time is about
// waves(G) / G. Measured at the GPT training step (8 x 8/2 heads, 512 keys, D128
// bf16, 64 blocks on 132 SMs; benchmarks/NOTES.md v12): G = 1 / 2 / 4 took
// 182 / 113 / 125 us, the model's 1 / 0.5 / 0.5. Ties go to the smaller G:
// fewer partials to write and reduce. (The first version aimed at two blocks
// per SM and picked G = 4 there.)
int choose_bwd_gqa_split(const FwdShape& s, int64_t heads_kv, const DeviceDesc& dev, int config) {
  // The Hopper configs split by the same model (NOTES v19: 1.25-1.32x at the
  // GPT step's 64 blocks with G = 2, a loss where the grid is a wave already,
  // which the model keeps at G = 1); they have no split build with softcap.
  if (config < 0 || config >= kNumBwdConfigs || heads_kv <= 0 || s.heads_q % heads_kv != 0 ||
      dev.sm_count <= 0 || (kBwdConfigs[config].sm90 && s.softcap)) {
    return 1;
  }
  const int64_t q_per_kv = s.heads_q / heads_kv;
  const int64_t blocks = s.batch * heads_kv * ceil_div(s.seqlen_k, kBwdConfigs[config].block_n);
  if (blocks <= 0) return 1;
  // waves(g) / g compared as waves(g) * best_g < best_waves * g, in integers.
  int64_t best_g = 1;
  int64_t best_waves = ceil_div(blocks, int64_t{dev.sm_count});
  for (int64_t g = 2; g <= q_per_kv; ++g) {
    if (q_per_kv % g != 0) continue;
    const int64_t waves = ceil_div(blocks * g, int64_t{dev.sm_count});
    if (waves * best_g < best_waves * g) {
      best_g = g;
      best_waves = waves;
    }
  }
  return static_cast<int>(best_g);
}

}  // namespace flashcore
