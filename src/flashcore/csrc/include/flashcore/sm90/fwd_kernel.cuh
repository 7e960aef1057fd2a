// Forward attention on Hopper (sm_90a): TMA loads on an mbarrier ring, wgmma
// tensor-core GEMMs with operands in shared memory, warp specialization
// (docs/design/hopper_fwd.md).
//
// One thread block owns kBlockM = 64 * kConsumerWGs query rows of one (batch,
// query head), in the same flattened grid order as the mma.sync family (last,
// longest query tiles first), except the persistent kernels under a mask,
// which take tiles longest-first across groups of heads (sm90/tile_order.h).
//   - Warpgroup 0 is the producer. It hands most of its registers to the
//     consumers (setmaxnreg) and one of its threads issues every TMA copy: a
//     tile's Q (into one of two buffers in the persistent kernels, whose tile
//     boundary is merged: see the consumer loop), then the visible K/V tiles
//     from the last down, into a ring of kStages stages. Each stage has a "full" barrier (completed by the TMA's
//     transaction bytes) and an "empty" one (one arrival per consumer warp
//     once its wgmma reading the stage has completed).
//   - Consumer warpgroup w owns query rows 64w .. 64w + 63 of the block. Per
//     key tile: S = Q K^T by wgmma (both operands in shared memory), softcap,
//     mask, online softmax in registers, then O += P V by wgmma with P from
//     registers. The two consumer warpgroups run independently, so one's
//     softmax overlaps the other's GEMMs on the tensor cores.
// The accumulator layout of wgmma is the mma.sync m16n8 layout per warp (a
// thread holds rows lane/4 and lane/4 + 8 of its warp's 16, columns 2*(lane%4)
// and +1 of every n8 block), so mask.cuh and softmax.cuh serve both families.
//
// The body exists only in the sm_90a pass (FLASHCORE_SM90A); the host launches
// these kernels only on compute capability 9.0 (host/heuristics.cpp).
#pragma once

#include <cuda.h>

#include <cstdint>

#include "flashcore/mask.cuh"
#include "flashcore/numeric.cuh"
#include "flashcore/params.h"
#include "flashcore/sm80/ptx.cuh"
#include "flashcore/sm90/fwd_traits.h"
#include "flashcore/sm90/ptx.cuh"
#include "flashcore/sm90/tile_order.h"
#include "flashcore/sm90/wgmma.cuh"
#include "flashcore/softmax.cuh"

namespace flashcore {
namespace sm90 {

// The kernel's one parameter: the TMA descriptors of q, k and v (4-D: head
// dim, rows, heads, batch) and the plain call description.
struct FwdArgs {
  CUtensorMap q;
  CUtensorMap k;
  CUtensorMap v;
  FwdParams p;
  // The tail split of the persistent kernels without a mask (sm90/tile_order.h;
  // parts 1: none) and its arrival counters and partial results in the
  // scheduler buffer (SchedLayout).
  TailSplit split;
  int* split_counts;
  float* split_ws;
};

#if defined(FLASHCORE_SM90A)

// bar.sync / bar.arrive on a named barrier whose id is a run-time value (the
// consumer warpgroup's): ids 1 .. 3 are the warpgroups' own (128 threads),
// 4 .. 6 the ping-pong turns (256 threads: the waiting and the passing one).
__device__ __forceinline__ void bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// Byte offset of 16-byte chunk `chunk` (of 8 per 128-byte row) of row `row` in
// a 128B-swizzled column block: the pattern the TMA writes and wgmma reads.
__device__ __forceinline__ int swizzled_chunk(int row, int chunk) {
  return row * 128 + ((chunk ^ (row % 8)) * 16);
}

// The epilogue's row statistics of row r (0: lane/4, 1: +8 of this thread's
// m16 rows): 1 / l, and lse written where asked for and the row exists. A row
// that saw no key has l == 0: zeros and lse = -inf, never 0/0.
template <typename Softmax>
__device__ __forceinline__ float finish_row(const Softmax& softmax, int r, int qrow, int lane,
                                            const FwdParams& params, int64_t lse_row0) {
  const float l = quad_sum(softmax.l_i[r]);
  if (params.lse != nullptr && lane % 4 == 0 && qrow < params.seqlen_q) {
    params.lse[lse_row0 + qrow] =
        l > 0.f ? (softmax.m_i[r] * params.scale_log2 + __log2f(l)) * 0.6931471805599453f
                : -INFINITY;
  }
  return l > 0.f ? 1.f / l : 0.f;
}

// Epilogue of one consumer warpgroup, Traits::kStoreFromRegisters: normalize
// O, write lse, and each thread stores its own accumulator pairs (4 bytes
// each) straight to global memory, rows and columns that exist only.
template <typename Elem, typename Traits, typename Softmax>
__device__ __forceinline__ void store_output_registers(
    float (&acc_o)[Traits::kHeadDim / 8][4], const Softmax& softmax, const FwdParams& params,
    uint16_t* o_base, int64_t lse_row0, int row0, int tid_wg) {
  const int warp = tid_wg / 32;
  const int lane = tid_wg % 32;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int qrow = row0 + 16 * warp + lane / 4 + 8 * r;
    const float inv_l = finish_row(softmax, r, qrow, lane, params, lse_row0);
    if (qrow >= params.seqlen_q) continue;
    uint16_t* out = o_base + static_cast<int64_t>(qrow) * params.o_row_stride + 2 * (lane % 4);
#pragma unroll
    for (int j = 0; j < Traits::kHeadDim / 8; ++j) {
      if (8 * j < params.head_dim) {  // head_dim is a multiple of 8
        *reinterpret_cast<uint32_t*>(out + 8 * j) =
            Numeric<Elem>::pack2(acc_o[j][2 * r] * inv_l, acc_o[j][2 * r + 1] * inv_l);
      }
    }
  }
}

// Epilogue of one consumer warpgroup otherwise: normalize O, write lse, stage
// the 16-bit tile over this warpgroup's own Q rows (no other warpgroup reads
// them), then 16-byte coalesced stores of the rows and columns that exist.
template <typename Elem, typename Traits, typename Softmax>
__device__ __forceinline__ void store_output_staged(float (&acc_o)[Traits::kHeadDim / 8][4],
                                                    const Softmax& softmax, char* smem_rows,
                                                    const FwdParams& params, uint16_t* o_base,
                                                    int64_t lse_row0, int row0, int wg,
                                                    int tid_wg) {
  constexpr int kNCols = Traits::kHeadDim / 8;
  const int warp = tid_wg / 32;
  const int lane = tid_wg % 32;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = 16 * warp + lane / 4 + 8 * r;  // within the warpgroup's 64
    const float inv_l = finish_row(softmax, r, row0 + row, lane, params, lse_row0);
#pragma unroll
    for (int j = 0; j < kNCols; ++j) {
      char* chunk = smem_rows + (j / 8) * Traits::kQBlockBytes + swizzled_chunk(row, j % 8);
      *reinterpret_cast<uint32_t*>(chunk + (lane % 4) * 4) =
          Numeric<Elem>::pack2(acc_o[j][2 * r] * inv_l, acc_o[j][2 * r + 1] * inv_l);
    }
  }
  bar_sync(1 + wg, 128);  // this warpgroup only
  const int dchunks = params.head_dim / 8;
  for (int i = tid_wg; i < 64 * kNCols; i += 128) {
    const int row = i / kNCols;
    const int c = i % kNCols;
    const int qrow = row0 + row;
    if (qrow < params.seqlen_q && c < dchunks) {
      const uint4 val = *reinterpret_cast<const uint4*>(
          smem_rows + (c / 8) * Traits::kQBlockBytes + swizzled_chunk(row, c % 8));
      *reinterpret_cast<uint4*>(o_base + static_cast<int64_t>(qrow) * params.o_row_stride +
                                c * 8) = val;
    }
  }
}

#endif  // FLASHCORE_SM90A

// The query tile of flattened tile index t: the same order as the mma.sync
// family (tiles of one (batch, head) adjacent, so concurrent blocks share K/V
// in L2; within a head the last, longest query tiles first).
struct TileCoord {
  int b, h, h_kv, bh, m0;
};

template <int kBlockM>
__device__ __forceinline__ TileCoord tile_coord(const FwdParams& p, int t) {
  const int num_m_blocks = (p.seqlen_q + kBlockM - 1) / kBlockM;
  TileCoord c;
  c.bh = t / num_m_blocks;
  c.m0 = (num_m_blocks - 1 - t % num_m_blocks) * kBlockM;
  c.b = c.bh / p.heads_q;
  c.h = c.bh % p.heads_q;
  c.h_kv = c.h / p.q_per_kv;
  return c;
}

// The persistent kernels under a mask: the counter's index t in the
// cross-head longest-first order over groups of params.lpt_group (batch,
// head) pairs, as the flattened index tile_coord reads. The producer maps it
// once and publishes the result, so the consumers read the same tile.
template <int kBlockM>
__device__ __forceinline__ int lpt_tile(const FwdParams& p, int t) {
  const int num_m_blocks = (p.seqlen_q + kBlockM - 1) / kBlockM;
  return head_major_tile(tile_index_lpt(t, num_m_blocks, p.batch * p.heads_q, p.lpt_group),
                         num_m_blocks);
}

// One block per query tile (grid = tiles), or with Traits::kPersistent at most
// one block per SM taking tiles from FwdParams::tile_counter. Either way the
// kernel is a loop over tiles: the K/V ring's stage and phase, the Q barriers'
// phase and the ping-pong turns carry over from tile to tile. (A static
// persistent grid, tiles blockIdx.x + k * gridDim.x, measured 10% slower
// causal: benchmarks/NOTES.md, v9.)
template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap>
__global__ void __launch_bounds__(Traits::kNThreads, 1)
    fwd_kernel(const __grid_constant__ FwdArgs args) {
#if defined(FLASHCORE_SM90A)
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kStages = Traits::kStages;
  constexpr int kNTilesS = kBlockN / 8;
  constexpr int kNTilesO = Traits::kHeadDim / 8;
  constexpr int kConsumerWarps = 4 * Traits::kConsumerWGs;
  // Cross-head longest-first only where tiles differ in length and a counter
  // hands them out; every other kernel keeps the head-major order, which
  // measured best without a mask (benchmarks/NOTES.md v10).
  constexpr bool kLpt = Traits::kPersistent && kHasMask;
  const FwdParams& params = args.p;

  extern __shared__ char smem_raw[];
  char* smem = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                       ~uintptr_t{1023});
  char* smem_q = smem;
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + Traits::kBarOffset);
  uint64_t* q_full = bars;                    // [kQBufs]
  uint64_t* q_empty = bars + Traits::kQBufs;  // [kQBufs]
  uint64_t* k_full = bars + 2 * Traits::kQBufs;
  uint64_t* v_full = k_full + kStages;
  uint64_t* k_empty = v_full + kStages;
  uint64_t* v_empty = k_empty + kStages;
  // Persistent: the task whose Q is in buffer b (see the tile hand-over below).
  volatile int* q_task = reinterpret_cast<volatile int*>(smem + Traits::kQTaskOffset);
  // The Q buffer of the i-th tile a block runs, and the parity of its barriers' phase.
  auto q_buf = [](int i) { return i % Traits::kQBufs; };
  auto q_parity = [](int i) { return static_cast<uint32_t>(i / Traits::kQBufs) & 1u; };
  auto k_tile = [&](int stage) { return smem + Traits::kKOffset + stage * Traits::kKVTileBytes; };
  auto v_tile = [&](int stage) { return smem + Traits::kVOffset + stage * Traits::kKVTileBytes; };

  const int tid = threadIdx.x;
  const int warpgroup = tid / 128;
  const int num_tiles = ((params.seqlen_q + kBlockM - 1) / kBlockM) * params.batch * params.heads_q;
  // Tasks: whole query tiles, then with a tail split the key ranges of the
  // last wave's tiles (sm90/tile_order.h). Only the persistent kernels without
  // a mask whose epilogue stores from registers split (the merge below is per
  // warp, which the staged store's warpgroup barrier would not allow).
  constexpr bool kTailSplit = Traits::kTailSplit && !kHasMask;
  const bool split_on = kTailSplit && args.split.parts > 1;
  const int num_tasks = split_on ? args.split.num_tasks : num_tiles;
  // Task t's tile, and its index among the split tasks (-1: a whole tile).
  auto task_tile = [&](int t) { return split_on && t >= args.split.first_task
                                           ? args.split.first_task +
                                                 (t - args.split.first_task) / args.split.parts
                                           : t; };
  auto task_split = [&](int t) { return split_on && t >= args.split.first_task
                                            ? t - args.split.first_task
                                            : -1; };
  // The key tiles a task visits: its tile's, or its part of them.
  auto task_range = [&](const TileCoord& c, int split) {
    KeyRange<kBlockM, kBlockN, kHasMask> r(params, c.m0);
    if (split >= 0) {
      tail_part_range(r.n_begin, r.n_end, args.split.parts, split % args.split.parts,
                      &r.n_begin, &r.n_end);
    }
    return r;
  };

  if (tid == 0) {
    for (int b = 0; b < Traits::kQBufs; ++b) {
      mbarrier_init(&q_full[b], 1);
      mbarrier_init(&q_empty[b], kConsumerWarps);
    }
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&k_full[s], 1);
      mbarrier_init(&v_full[s], 1);
      mbarrier_init(&k_empty[s], kConsumerWarps);
      mbarrier_init(&v_empty[s], kConsumerWarps);
    }
    fence_mbarrier_init();
  }
  __syncthreads();  // the last block-wide barrier: the roles split here
  allow_next_grid_launch();
  wait_for_previous_grid();

  // The persistent kernel's tile hand-over rides on the Q buffers: the
  // producer's lane 0 writes a task's index into q_task[b] before it arrives
  // on q_full[b] for that task's Q (release), and the consumers read it once
  // they have waited on q_full[b] (acquire); q_empty[b], which frees the Q
  // buffer, frees the index with it. After the last task the producer writes
  // an index past the last into the next buffer and arrives with no copy.
  // (Until v31 the index went through global memory between named barriers
  // of every consumer thread and the producer warp: each tile boundary waited
  // for all consumer warpgroups, then for an L2 round trip. NOTES v31.)

  if (warpgroup == 0) {
    // ---- producer ----
    setmaxnreg_dec<Traits::kProducerRegs>();
    if (tid < 32) {
      // One warp runs the loop (its lanes take part in the named barriers);
      // lane 0 issues every copy and owns the ring's stage and phase.
      const bool leader = tid == 0;
      if (leader) {
        prefetch_tensor_map(&args.q);
        prefetch_tensor_map(&args.k);
        prefetch_tensor_map(&args.v);
      }
      int stage = 0;
      uint32_t phase = 0;
      int q_index = 0;  // tiles whose Q was loaded
      // Q of the tile at c into the next Q buffer once every consumer warp
      // released it (its epilogue staged O there: two tiles ago with two
      // buffers, the previous tile with one).
      auto load_q = [&](const TileCoord& c, int task) {
        const int b = q_buf(q_index);
        mbarrier_wait_parity(&q_empty[b], q_parity(q_index) ^ 1);
        if constexpr (Traits::kPersistent) q_task[b] = task;
        mbarrier_arrive_expect_tx(&q_full[b], Traits::kQBytes);
#pragma unroll
        for (int cb = 0; cb < Traits::kColBlocks; ++cb) {
          tma_load_4d(smem_q + b * Traits::kQBytes + cb * Traits::kQBlockBytes, &args.q,
                      &q_full[b], 64 * cb, c.m0, c.h, c.b);
        }
        ++q_index;
      };
      // K then V of key tile n into the ring's next stage, each once every
      // consumer warp released that stage (the first wait of a stage passes:
      // parity 1 is the phase before the initial one).
      auto load_kv = [&](const TileCoord& c, int n) {
        mbarrier_wait_parity(&k_empty[stage], phase ^ 1);
        mbarrier_arrive_expect_tx(&k_full[stage], Traits::kKVTileBytes);
#pragma unroll
        for (int cb = 0; cb < Traits::kColBlocks; ++cb) {
          tma_load_4d(k_tile(stage) + cb * Traits::kKVBlockBytes, &args.k, &k_full[stage],
                      64 * cb, n * kBlockN, c.h_kv, c.b);
        }
        mbarrier_wait_parity(&v_empty[stage], phase ^ 1);
        mbarrier_arrive_expect_tx(&v_full[stage], Traits::kKVTileBytes);
#pragma unroll
        for (int cb = 0; cb < Traits::kColBlocks; ++cb) {
          tma_load_4d(v_tile(stage) + cb * Traits::kKVBlockBytes, &args.v, &v_full[stage],
                      64 * cb, n * kBlockN, c.h_kv, c.b);
        }
        if (++stage == kStages) {
          stage = 0;
          phase ^= 1;
        }
      };
      // Persistent: no task left; the consumers stop on this index.
      auto stop_q = [&]() {
        const int b = q_buf(q_index);
        mbarrier_wait_parity(&q_empty[b], q_parity(q_index) ^ 1);
        q_task[b] = num_tasks;
        mbarrier_arrive(&q_full[b]);
        ++q_index;
      };
      // t counts claims; `task` is what the consumers are told: the flattened
      // tile under the longest-first order, else the task index itself.
      auto task_of = [&](int t) { return kLpt ? lpt_tile<kBlockM>(params, t) : t; };
      // Persistent (merged boundary, two Q buffers): a tile's Q goes into
      // the buffer the tile before last used, which that tile's epilogue
      // frees at this tile's start. So the next tile's Q loads a whole tile
      // ahead: once this tile's first kQLeadTiles key tiles are on their way
      // (their stages are the ones the consumers wait on at the boundary,
      // before the epilogue that frees the buffer), and before the rest.
      // The consumers read its index (q_task) at the end of the previous
      // tile, whose last P V they issue together with this tile's first Q K^T.
      static_assert(!Traits::kPersistent || Traits::kQBufs == 2, "see above");
      constexpr int kQLeadTiles = kStages;
      // One Q (or, persistent, the stop) per task, for the task after it.
      auto load_task_q = [&](int t) {
        if (t < num_tasks) {
          load_q(tile_coord<kBlockM>(params, task_tile(task_of(t))), task_of(t));
        } else if constexpr (Traits::kPersistent) {
          stop_q();
        }
      };
      if (leader) load_task_q(blockIdx.x);
      for (int t = blockIdx.x; t < num_tasks;) {
        const int task = task_of(t);
        const TileCoord c = tile_coord<kBlockM>(params, task_tile(task));
        const KeyRange<kBlockM, kBlockN, kHasMask> range = task_range(c, task_split(task));
        // Persistent: the tile after this one is claimed now; its Q loads
        // under this tile's K/V.
        int claimed = 0;
        if constexpr (Traits::kPersistent) {
          if (leader) claimed = atomicAdd(params.tile_counter, 1);
        }
        int t_next;
        if constexpr (Traits::kPersistent) {
          t_next = static_cast<int>(gridDim.x) + __shfl_sync(0xffffffffu, claimed, 0);
        } else {
          t_next = t + static_cast<int>(gridDim.x);
        }
        if (leader) {
          auto load_next_q = [&]() { load_task_q(t_next); };
          int issued = 0;
          for (int n = range.n_end - 1; n >= range.n_begin; --n) {
            load_kv(c, n);
            if (++issued == kQLeadTiles) load_next_q();
          }
          if (issued < kQLeadTiles) load_next_q();
        }
        t = t_next;
      }
    }
    return;
  }

  // ---- consumers ----
  setmaxnreg_inc<Traits::kConsumerRegs>();
  // The warpgroup index goes through a shuffle from lane 0, which ptxas takes
  // as warp-uniform (threadIdx.x / 128 it could not prove so): the wgmma
  // descriptors built from it then live in uniform registers (benchmarks/
  // NOTES.md v27; the persistent kernels' tile conditions: `uniform` below).
  const int wg = __shfl_sync(0xffffffffu, warpgroup - 1, 0);
  const int tid_wg = tid % 128;
  const int lane = tid % 32;
  const int quad_col = 2 * (lane % 4);

  // Ping-pong: the consumer warpgroups take turns issuing their GEMM batches,
  // round robin (warpgroup w waits on barrier 4 + w and passes the turn on
  // barrier 4 + (w + 1) % n), so one's softmax runs while another's GEMMs hold
  // the tensor cores.
  constexpr int kWGs = Traits::kConsumerWGs;
  auto turn_wait = [&]() {
    if constexpr (Traits::kPingPong) bar_sync(4 + wg, 256);
  };
  auto turn_pass = [&]() {
    if constexpr (Traits::kPingPong) bar_arrive(4 + (wg + 1) % kWGs, 256);
  };
  if constexpr (Traits::kPingPong) {
    if (wg == kWGs - 1) bar_arrive(4, 256);  // warpgroup 0 goes first
  }

  int stage = 0;
  uint32_t phase = 0;
  auto advance = [&]() {
    if (++stage == kStages) {
      stage = 0;
      phase ^= 1;
    }
  };

  // This warpgroup's 64 rows of Q buffer b, in every column block.
  auto q_rows_of = [&](int b) { return smem_q + b * Traits::kQBytes + wg * 64 * 128; };
  // S = Q K^T of the tile in `st`, issued and committed (not waited for):
  // head-dim steps of 16, step kk 32 bytes into column block kk / 4. dead
  // (warp-uniform; a kDead first key step only, see share_of below): S is not
  // read, and only the first head-dim step is issued.
  auto issue_qk = [&](float (&s)[kNTilesS][4], const char* q_rows, int st, bool dead = false) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < Traits::kHeadDim / 16; ++kk) {
      if (kk > 0 && dead) break;
      const int off = (kk / 4) * Traits::kQBlockBytes + (kk % 4) * 32;
      const int k_off = (kk / 4) * Traits::kKVBlockBytes + (kk % 4) * 32;
      Wgmma<kBlockN, Elem>::template ss<false>(
          reinterpret_cast<float(&)[kBlockN / 2]>(s),
          make_smem_desc(q_rows + off, 16, 1024, Swizzle::k128B),
          make_smem_desc(k_tile(st) + k_off, 16, 1024, Swizzle::k128B), kk > 0);
    }
    wgmma_commit_group();
  };
  // O += P V of the tile in `st`, issued and committed: V [key][d] is the
  // MN-major B operand; key step kk is 16 rows (2 KB) on, column blocks
  // kKVBlockBytes apart.
  auto issue_pv = [&](float (&acc_o)[kNTilesO][4], const uint32_t (&p)[kBlockN / 16][4],
                      int st) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      Wgmma<Traits::kHeadDim, Elem>::template rs<true>(
          reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(acc_o), p[kk],
          make_smem_desc(v_tile(st) + kk * 16 * 128, Traits::kKVBlockBytes, 1024,
                         Swizzle::k128B),
          true);
    }
    wgmma_commit_group();
  };
  // Softcap, and the mask where key tile n of the tile with key range `range`
  // needs it (thread_row: this thread's first row in that tile).
  auto prepare_scores = [&](float (&s)[kNTilesS][4], const KeyRange<kBlockM, kBlockN, kHasMask>& range,
                            int thread_row, int n) {
    if constexpr (kSoftcap) softcap_scores(s, params.softcap, params.softcap_scale);
    if (range.needs_mask(params, n)) {
      mask_scores<kNTilesS, kHasMask>(s, params, thread_row, n * kBlockN, quad_col);
    }
  };
  // P as the A operand: k16 step kk is n8 blocks 2kk and 2kk + 1.
  auto to_p = [&](const float (&s)[kNTilesS][4], uint32_t (&p)[kBlockN / 16][4]) {
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      p[kk][0] = Numeric<Elem>::pack2(s[2 * kk][0], s[2 * kk][1]);
      p[kk][1] = Numeric<Elem>::pack2(s[2 * kk][2], s[2 * kk][3]);
      p[kk][2] = Numeric<Elem>::pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      p[kk][3] = Numeric<Elem>::pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
  };
  // A warp-uniform condition as a vote (a uniform predicate to ptxas): the
  // persistent kernel's tile index comes from memory, and ptxas kept the
  // branches on it, and the key loop's stage below them, in per-thread
  // registers (benchmarks/NOTES.md v27).
  auto uniform = [](bool b) {
    if constexpr (Traits::kPersistent) {
      return __all_sync(0xffffffffu, b);
    } else {
      return b;
    }
  };
  // The tile after the i-th this block runs (t): the persistent kernel's
  // producer writes it with the Q of the (i+1)-th (an index past the last
  // stops the block); otherwise the grid stride.
  auto next_tile = [&](int t, int i) {
    if constexpr (Traits::kPersistent) {
      mbarrier_wait_parity(&q_full[q_buf(i + 1)], q_parity(i + 1));
      // Lane 0 reads it, the lane that frees the buffer (q_empty) after the
      // tile, so the read is ordered before the producer's next write
      // (racecheck flagged the other lanes' reads); the shuffle also tells
      // ptxas the value is warp-uniform (a plain load of it put the unmasked
      // persistent key loops into a divergence region: R2UR, +37 instructions).
      int next = 0;
      if (lane == 0) next = q_task[q_buf(i + 1)];
      return __shfl_sync(0xffffffffu, next, 0);
    } else {
      return t + static_cast<int>(gridDim.x);
    }
  };
  // This thread's first row in the tile at c (and +8).
  auto thread_row_of = [&](const TileCoord& c) {
    return c.m0 + 64 * wg + 16 * (tid_wg / 32) + lane / 4;
  };

  // The tile boundary (persistent kernels): the next tile's first S = Q K^T
  // goes out in one GEMM batch with this tile's last P V; this tile's
  // epilogue and the next tile's first softmax step then run while the other
  // warpgroup's GEMMs hold the tensor cores, and the loop goes on with P,
  // O (zeros) and the softmax state of the next tile (p_ready). Those three
  // live across the tile loop's back edge; the scores do not, as S of a
  // merged tile carried there spilled (benchmarks/NOTES.md v27).
  float acc_o[kNTilesO][4];
  OnlineSoftmaxRows<kNTilesS, kNTilesO> softmax;
  uint32_t p[kBlockN / 16][4];
  auto reset_tile = [&]() {
#pragma unroll
    for (int j = 0; j < kNTilesO; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[j][e] = 0.f;
    softmax.init();
  };
  // Under a mask, how much of key tile n of the tile at c, the first one its
  // key loop visits, this warpgroup's 64 rows see (mask.cuh
  // tile_visible_cols): kDead none of it, kHalf its first kBlockN / 2 keys
  // at most, kFull more. A causal block of 128 or 192 rows starts on its
  // diagonal key tile, of which its first warpgroup sees half or none: the
  // softmax step skips that part (benchmarks/NOTES.md v30), and a kDead
  // step's Q K^T is one head-dim step of 16 instead of all: S is written whole
  // either way. Leaving the wgmma out under a branch, or one of half the width
  // into half the accumulators, cost the masked kernels 300-1800 spilled
  // registers.
  enum : int { kDead = 0, kHalf = 1, kFull = 2 };
  static_assert(kBlockN % 32 == 0, "a half key tile is whole k16 steps of P");
  // Without a mask only the three-warpgroup kernels look: a warpgroup whose
  // rows are all past seqlen_q (in the last 192-row tile of 2048 or 4096
  // rows, say) is kDead for every key tile. (The two-warpgroup kernels, whose
  // 128-row tiles leave such a warpgroup only where seqlen_q % 128 is 1..64,
  // measured 1-5% slower for the extra code at head dim 128: NOTES v30.)
  constexpr bool kDeadRows = !kHasMask && Traits::kConsumerWGs == 3;
  auto share_of = [&](const TileCoord& c, int n) -> int {
    const int r0 = c.m0 + 64 * wg;
    if constexpr (kHasMask) {
      const int cols = tile_visible_cols<kHasMask>(params, r0, imin(r0 + 63, params.seqlen_q - 1),
                                                   n * kBlockN, kBlockN);
      return cols == 0 ? kDead : cols <= kBlockN / 2 ? kHalf : kFull;
    } else {
      return r0 < params.seqlen_q ? kFull : kDead;
    }
  };
  // share == want, warp-uniform; kFull always where nothing is looked at.
  auto share_is = [&](int share, int want) {
    if constexpr (kHasMask) {
      return uniform(share == want);
    } else if constexpr (kDeadRows) {
      return want != kHalf && uniform(share == want);
    } else {
      return want == kFull;
    }
  };
  // Softcap and mask of a first key step's scores (share kHalf: their first half).
  auto prepare_first = [&](float (&s)[kNTilesS][4], int share,
                           const KeyRange<kBlockM, kBlockN, kHasMask>& range, int thread_row,
                           int n) {
    if (share_is(share, kHalf)) {
      auto& h = reinterpret_cast<float(&)[kNTilesS / 2][4]>(s);
      if constexpr (kSoftcap) softcap_scores(h, params.softcap, params.softcap_scale);
      mask_scores<kNTilesS / 2, kHasMask>(h, params, thread_row, n * kBlockN, quad_col);
    } else {
      prepare_scores(s, range, thread_row, n);
    }
  };
  // The first key step's softmax: the full one (O is still zero: no
  // rescale), over the half that exists for kHalf; P zero for kDead (the
  // softmax state stays as reset, and the next step is the first).
  auto first_step = [&](float (&s)[kNTilesS][4], int share) {
    float alpha[2];
    if (share_is(share, kFull)) {
      softmax.scores_step(s, params.scale_log2, alpha);
      to_p(s, p);
    } else if (share_is(share, kHalf)) {
      auto& h = reinterpret_cast<float(&)[kNTilesS / 2][4]>(s);
      softmax.template scores_step<kNTilesS / 2>(h, params.scale_log2, alpha);
#pragma unroll
      for (int kk = 0; kk < kBlockN / 32; ++kk) {
        p[kk][0] = Numeric<Elem>::pack2(h[2 * kk][0], h[2 * kk][1]);
        p[kk][1] = Numeric<Elem>::pack2(h[2 * kk][2], h[2 * kk][3]);
        p[kk][2] = Numeric<Elem>::pack2(h[2 * kk + 1][0], h[2 * kk + 1][1]);
        p[kk][3] = Numeric<Elem>::pack2(h[2 * kk + 1][2], h[2 * kk + 1][3]);
      }
#pragma unroll
      for (int kk = kBlockN / 32; kk < kBlockN / 16; ++kk) p[kk][0] = p[kk][1] = p[kk][2] = p[kk][3] = 0u;
    } else {
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) p[kk][0] = p[kk][1] = p[kk][2] = p[kk][3] = 0u;
    }
  };
  // A split task's end, per warp (its 16 rows): write this part's O and row
  // statistics, then count the part in; the warp that counts a tile's last
  // part merges every part into acc_o and softmax (the other parts' maxima
  // rescaled to the largest, as the online softmax does between key tiles)
  // and returns true: it writes the output. Release (fence, then the counter's
  // atomic) and acquire (the atomic, then a fence and L1-bypassing loads)
  // order the partial results between SMs.
  auto merge_split = [&](int split) -> bool {
    constexpr int kSlot = kNTilesO + 1;  // float4 per lane: O, then (m0, m1, l0, l1)
    const int parts = args.split.parts;
    const int warp_in_block = 4 * wg + tid_wg / 32;
    auto slot = [&](int task) {
      return reinterpret_cast<float4*>(args.split_ws) +
             (static_cast<int64_t>(task) * kConsumerWarps + warp_in_block) * kSlot * 32 + lane;
    };
    float4* mine = slot(split);
#pragma unroll
    for (int j = 0; j < kNTilesO; ++j) {
      mine[32 * j] = make_float4(acc_o[j][0], acc_o[j][1], acc_o[j][2], acc_o[j][3]);
    }
    mine[32 * kNTilesO] = make_float4(softmax.m_i[0], softmax.m_i[1], softmax.l_i[0], softmax.l_i[1]);
    __threadfence();
    __syncwarp();
    const int first = split - split % parts;
    int arrived = 0;
    if (lane == 0) {
      arrived = atomicAdd(&args.split_counts[(first / parts) * kConsumerWarps + warp_in_block], 1);
    }
    arrived = __shfl_sync(0xffffffffu, arrived, 0);
    if (arrived != parts - 1) return false;
    __threadfence();
    float m_new[2] = {softmax.m_i[0], softmax.m_i[1]};
    for (int q = first; q < first + parts; ++q) {
      if (q == split) continue;
      const float4 ml = __ldcg(slot(q) + 32 * kNTilesO);
      m_new[0] = fmaxf(m_new[0], ml.x);
      m_new[1] = fmaxf(m_new[1], ml.y);
    }
    // exp2 of (m - m_new) in the kernel's units; 0 for a part whose rows saw
    // no key (m -inf), and for rows no part saw a key of.
    auto factor = [&](float m, int r) {
      return m_new[r] == -INFINITY ? 0.f : fast_exp2((m - m_new[r]) * params.scale_log2);
    };
    const float own[2] = {factor(softmax.m_i[0], 0), factor(softmax.m_i[1], 1)};
#pragma unroll
    for (int r = 0; r < 2; ++r) softmax.l_i[r] *= own[r];
    OnlineSoftmaxRows<kNTilesS, kNTilesO>::rescale(acc_o, own);
    for (int q = first; q < first + parts; ++q) {
      if (q == split) continue;
      const float4* other = slot(q);
      const float4 ml = __ldcg(other + 32 * kNTilesO);
      const float f0 = factor(ml.x, 0);
      const float f1 = factor(ml.y, 1);
      softmax.l_i[0] += f0 * ml.z;
      softmax.l_i[1] += f1 * ml.w;
#pragma unroll
      for (int j = 0; j < kNTilesO; ++j) {
        const float4 o = __ldcg(other + 32 * j);
        acc_o[j][0] += f0 * o.x;
        acc_o[j][1] += f0 * o.y;
        acc_o[j][2] += f1 * o.z;
        acc_o[j][3] += f1 * o.w;
      }
    }
    softmax.m_i[0] = m_new[0];
    softmax.m_i[1] = m_new[1];
    return true;
  };
  bool p_ready = false;
  // The tile's first key step was kDead for this warpgroup (set where the
  // step ran: at the top of the tile, or at the merged boundary before it).
  bool first_dead = false;
  int index = 0;  // tiles this block ran, for the Q buffer and its phase
  for (int t = Traits::kPersistent ? next_tile(0, -1) : static_cast<int>(blockIdx.x);
       uniform(t < num_tasks); ++index) {
    const int qb = q_buf(index);
    char* q_rows = q_rows_of(qb);
    mbarrier_wait_parity(&q_full[qb], q_parity(index));
    const int split = task_split(t);
    const TileCoord c = tile_coord<kBlockM>(params, task_tile(t));
    const KeyRange<kBlockM, kBlockN, kHasMask> range = task_range(c, split);
    const int row0 = c.m0 + 64 * wg;  // this warpgroup's first row

    // Normalize O, write lse and O, then free the Q buffer: the producer may
    // load another tile's Q into it (this warp's wgmma reading it are done).
    auto epilogue = [&]() {
      uint16_t* o_base = static_cast<uint16_t*>(params.o) + c.b * params.o_batch_stride +
                         c.h * params.o_head_stride;
      const int64_t lse_row0 = static_cast<int64_t>(c.bh) * params.seqlen_q;
      if constexpr (kTailSplit) {
        if (split >= 0 && !merge_split(split)) {
          if (lane == 0) mbarrier_arrive(&q_empty[qb]);
          return;  // another task's warp writes these rows
        }
      }
      if constexpr (!Traits::kStoreFromRegisters) {
        // Every warp of this warpgroup is past its last wgmma reading its Q
        // rows before they are overwritten with O.
        bar_sync(1 + wg, 128);
      }
      if constexpr (Traits::kStoreFromRegisters) {
        store_output_registers<Elem, Traits>(acc_o, softmax, params, o_base, lse_row0, row0,
                                             tid_wg);
      } else {
        store_output_staged<Elem, Traits>(acc_o, softmax, q_rows, params, o_base, lse_row0, row0,
                                          wg, tid_wg);
        // The staging reads are generic-proxy accesses of what a later Q load
        // (async proxy) overwrites.
        fence_proxy_async_smem();
      }
      if (lane == 0) mbarrier_arrive(&q_empty[qb]);
    };

    if (!p_ready) reset_tile();
    int t_next;
    bool merged = false;
    if (uniform(range.n_end > range.n_begin)) {
      // Tile n's S = Q K^T is issued before tile n+1's O += P V, so the
      // tensor cores get both in one batch. Tile n's softmax runs after that
      // P V is done: a warpgroup's softmax and its own register-sourced P V
      // do not overlap on the H200 (measured: benchmarks/NOTES.md v20, v24),
      // the other warpgroup's GEMMs (ping-pong) are what hide it. The first
      // tile takes the full online-softmax step; every later one the
      // speculative step against the running maxima (softmax.cuh spec_step,
      // v26), redone with the full step where a row's max grew.
      if (!p_ready) {
        const int share = share_of(c, range.n_end - 1);
        first_dead = share_is(share, kDead);
        float s[kNTilesS][4];
        mbarrier_wait_parity(&k_full[stage], phase);
        turn_wait();
        issue_qk(s, q_rows, stage, first_dead);
        turn_pass();
        wgmma_wait_group<0>();
        wgmma_fence_operands(reinterpret_cast<float(&)[kBlockN / 2]>(s));
        if (lane == 0) mbarrier_arrive(&k_empty[stage]);
        if (!first_dead) prepare_first(s, share, range, thread_row_of(c), range.n_end - 1);
        first_step(s, share);
      }
      int v_stage = stage;
      uint32_t v_phase = phase;
      advance();
      int n = range.n_end - 2;
      if constexpr (kHasMask || kDeadRows) {
        // While the steps so far were kDead for this warpgroup (P zero, the
        // softmax as reset), the next is a first step again: its Q K^T alone
        // in the turn where the others issue it with their P V, the hidden
        // tile's V released unread. (The same steps as the tile's first above,
        // written out twice: as one lambda for both, ptxas scheduled the
        // kernels differently, sm90_d128's masked key loop +66 instructions.)
        while (first_dead && uniform(n >= range.n_begin)) {
          const int share = share_of(c, n);
          first_dead = share_is(share, kDead);
          float s[kNTilesS][4];
          mbarrier_wait_parity(&k_full[stage], phase);
          turn_wait();
          issue_qk(s, q_rows, stage, first_dead);
          turn_pass();
          wgmma_wait_group<0>();
          wgmma_fence_operands(reinterpret_cast<float(&)[kBlockN / 2]>(s));
          if (lane == 0) mbarrier_arrive(&k_empty[stage]);
          mbarrier_wait_parity(&v_full[v_stage], v_phase);
          if (lane == 0) mbarrier_arrive(&v_empty[v_stage]);
          if (!first_dead) prepare_first(s, share, range, thread_row_of(c), n);
          first_step(s, share);
          v_stage = stage;
          v_phase = phase;
          advance();
          --n;
        }
      }
      for (; uniform(n >= range.n_begin); --n) {
        float s[kNTilesS][4];
        mbarrier_wait_parity(&k_full[stage], phase);
        turn_wait();
        issue_qk(s, q_rows, stage);
        mbarrier_wait_parity(&v_full[v_stage], v_phase);
        issue_pv(acc_o, p, v_stage);
        turn_pass();
        wgmma_wait_group<1>();  // S done; P V may still run
        wgmma_fence_operands(reinterpret_cast<float(&)[kBlockN / 2]>(s));
        if (lane == 0) mbarrier_arrive(&k_empty[stage]);
        prepare_scores(s, range, thread_row_of(c), n);
        // P is the running P V's A operand: it is rewritten only once that
        // GEMM is done (ptxas placed this wait here even when the source put
        // the softmax first: v20).
        wgmma_wait_group<0>();
        wgmma_fence_operands(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(acc_o));
        wgmma_fence_operands(reinterpret_cast<uint32_t(&)[kBlockN / 4]>(p));
        if (lane == 0) mbarrier_arrive(&v_empty[v_stage]);
        if (softmax.template spec_step<Elem>(s, params.scale_log2, p)) {
          float alpha[2];
          softmax.scores_step(s, params.scale_log2, alpha);
          softmax.rescale(acc_o, alpha);
          to_p(s, p);
        }
        v_stage = stage;
        v_phase = phase;
        advance();
      }
      // The last P V: with the next tile's first Q K^T where there is a next
      // tile with keys (its Q and first K tile loaded under this tile), else
      // alone.
      t_next = next_tile(t, index);
      if constexpr (Traits::kMergeTiles) {
        if (uniform(t_next < num_tasks)) {
          const TileCoord cn = tile_coord<kBlockM>(params, task_tile(t_next));
          const KeyRange<kBlockM, kBlockN, kHasMask> rn = task_range(cn, task_split(t_next));
          if (uniform(rn.n_end > rn.n_begin)) {
            merged = true;
            const int share = share_of(cn, rn.n_end - 1);
            const bool dead = share_is(share, kDead);
            float s[kNTilesS][4];
            mbarrier_wait_parity(&k_full[stage], phase);
            mbarrier_wait_parity(&v_full[v_stage], v_phase);
            turn_wait();
            issue_qk(s, q_rows_of(q_buf(index + 1)), stage, dead);
            issue_pv(acc_o, p, v_stage);
            turn_pass();
            wgmma_wait_group<1>();
            wgmma_fence_operands(reinterpret_cast<float(&)[kBlockN / 2]>(s));
            if (lane == 0) mbarrier_arrive(&k_empty[stage]);
            if (!dead) prepare_first(s, share, rn, thread_row_of(cn), rn.n_end - 1);
            wgmma_wait_group<0>();
            wgmma_fence_operands(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(acc_o));
            if (lane == 0) mbarrier_arrive(&v_empty[v_stage]);
            epilogue();
            reset_tile();
            first_step(s, share);
            first_dead = dead;
          }
        }
      }
      if (!merged) {
        mbarrier_wait_parity(&v_full[v_stage], v_phase);
        turn_wait();
        issue_pv(acc_o, p, v_stage);
        turn_pass();
        wgmma_wait_group<0>();
        wgmma_fence_operands(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(acc_o));
        if (lane == 0) mbarrier_arrive(&v_empty[v_stage]);
        epilogue();
      }
    } else {
      t_next = next_tile(t, index);
      epilogue();  // rows that see no key: zeros, lse -inf
    }
    p_ready = merged;
    t = t_next;
  }
#endif  // FLASHCORE_SM90A
}

}  // namespace sm90
}  // namespace flashcore
