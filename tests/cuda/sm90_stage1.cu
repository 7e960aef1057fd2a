// Stage 1 of the Hopper family (docs/design/hopper_fwd.md, section 7): the
// primitives of include/flashcore/sm90/ on one 64 x 64 tile, checked against
// torch by tests/test_sm90_stage1.py on an sm_90 GPU. One block of one
// warpgroup (128 threads):
//   - TMA loads Q, K, V (each 64 rows x 64 columns, row-major, 16-bit) into
//     128B-swizzled shared tiles, all three completing on one mbarrier;
//   - S = Q K^T: four k16 steps of wgmma m64n64k16 with A (Q) and B (K,
//     K-major) from shared-memory descriptors;
//   - O = P V with P = S rounded to the input dtype in registers: four k16
//     steps of the register-A wgmma with B (V, MN-major, transposed) from
//     shared memory;
//   - T = V^T K, the backward's dQ = dS K form (dS stored [key][query]): A is
//     V read M-major (imm-trans-a: its 64 columns are M, its rows K), B is K
//     read MN-major, four k16 steps of 16 rows;
//   - S, O and T (fp32) are written row-major from the accumulator layout.
// Built by the test with nvcc into a shared library and called through ctypes
// with device pointers; it never links torch.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "flashcore/numeric.cuh"
#include "flashcore/sm90/ptx.cuh"
#include "flashcore/sm90/wgmma.cuh"

namespace {

constexpr int kRows = 64;
constexpr int kCols = 64;
constexpr int kTileBytes = kRows * kCols * 2;  // 8 KB, rows of 128 B
// Shared memory: three tiles on 1024-byte boundaries (128B swizzle atoms),
// then the mbarrier; plus slack to align the dynamic base.
constexpr int kSmemBytes = 3 * kTileBytes + 16 + 1024;

// Row-major store of a 64 x 64 fp32 accumulator of m64n64 (the thread's
// fragment: n8 block j, rows lane/4 and lane/4 + 8 of its warp's 16, columns
// 2*(lane%4) and +1).
__device__ __forceinline__ void store_acc(float* out, const float (&d)[32], int tid) {
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int row = 16 * warp + lane / 4;
#pragma unroll
  for (int j = 0; j < kCols / 8; ++j) {
    const int col = 8 * j + 2 * (lane % 4);
    out[row * kCols + col] = d[4 * j];
    out[row * kCols + col + 1] = d[4 * j + 1];
    out[(row + 8) * kCols + col] = d[4 * j + 2];
    out[(row + 8) * kCols + col + 1] = d[4 * j + 3];
  }
}

template <typename Elem>
__global__ void __launch_bounds__(128, 1)
    stage1_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                  const __grid_constant__ CUtensorMap v_map, float* s_out, float* o_out,
                  float* t_out) {
#if defined(FLASHCORE_SM90A)
  using namespace flashcore::sm90;
  extern __shared__ char smem_raw[];
  char* smem = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  char* q_s = smem;
  char* k_s = smem + kTileBytes;
  char* v_s = smem + 2 * kTileBytes;
  uint64_t* bar = reinterpret_cast<uint64_t*>(smem + 3 * kTileBytes);
  const int tid = threadIdx.x;

  if (tid == 0) {
    mbarrier_init(bar, 1);
    fence_mbarrier_init();
  }
  __syncthreads();
  if (tid == 0) {
    mbarrier_arrive_expect_tx(bar, 3 * kTileBytes);
    tma_load_4d(q_s, &q_map, bar, 0, 0, 0, 0);
    tma_load_4d(k_s, &k_map, bar, 0, 0, 0, 0);
    tma_load_4d(v_s, &v_map, bar, 0, 0, 0, 0);
  }
  mbarrier_wait_parity(bar, 0);

  // S = Q K^T. K-major 128B-swizzled operands: stride byte offset 1024 (8 rows
  // of 128 B), leading offset unused; k16 step j starts 32 bytes further.
  float s[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) s[i] = 0.f;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kCols / 16; ++kk) {
    Wgmma<64, Elem>::template ss<false>(s, make_smem_desc(q_s + 32 * kk, 16, 1024, Swizzle::k128B),
                                        make_smem_desc(k_s + 32 * kk, 16, 1024, Swizzle::k128B),
                                        kk > 0);
  }
  wgmma_commit_group();
  wgmma_wait_group<0>();
  wgmma_fence_operands(s);
  store_acc(s_out, s, tid);

  // O = P V. V [key][d] is MN-major for this B: k16 step kk covers keys
  // 16kk.. (16 rows of 128 B further); stride byte offset 1024 (8 keys),
  // leading offset the distance between 64-wide column blocks (one here).
  // P's A fragments first: registers a wgmma reads must be written before the
  // wgmma.fence that precedes it.
  uint32_t p[kRows / 16][4];
#pragma unroll
  for (int kk = 0; kk < kRows / 16; ++kk) {
    p[kk][0] = flashcore::Numeric<Elem>::pack2(s[8 * kk], s[8 * kk + 1]);
    p[kk][1] = flashcore::Numeric<Elem>::pack2(s[8 * kk + 2], s[8 * kk + 3]);
    p[kk][2] = flashcore::Numeric<Elem>::pack2(s[8 * kk + 4], s[8 * kk + 5]);
    p[kk][3] = flashcore::Numeric<Elem>::pack2(s[8 * kk + 6], s[8 * kk + 7]);
  }
  float o[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) o[i] = 0.f;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kRows / 16; ++kk) {
    Wgmma<64, Elem>::template rs<true>(
        o, p[kk], make_smem_desc(v_s + kk * 16 * 128, kRows * 128, 1024, Swizzle::k128B), kk > 0);
  }
  wgmma_commit_group();
  wgmma_wait_group<0>();
  wgmma_fence_operands(o);
  store_acc(o_out, o, tid);

  // T = V^T K: both operands MN-major, k16 step kk = rows 16kk.. of both tiles
  // (2 KB further); stride byte offset 1024 (8 rows), leading offset the
  // distance between 64-wide column blocks (one here).
  float t[32];
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kRows / 16; ++kk) {
    Wgmma<64, Elem>::template ss</*kTransB=*/true, /*kTransA=*/true>(
        t, make_smem_desc(v_s + kk * 16 * 128, kRows * 128, 1024, Swizzle::k128B),
        make_smem_desc(k_s + kk * 16 * 128, kRows * 128, 1024, Swizzle::k128B), kk > 0);
  }
  wgmma_commit_group();
  wgmma_wait_group<0>();
  wgmma_fence_operands(t);
  store_acc(t_out, t, tid);
#else
  if (threadIdx.x == 0) s_out[0] = o_out[0] = t_out[0] = -1.f;  // not an sm_90a build
#endif
}

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                 const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                 const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// A 4-D map (d, rows, 1, 1) over a contiguous 64 x 64 16-bit matrix, one box.
int encode(EncodeTiled fn, CUtensorMap* map, const void* ptr, bool bf16) {
  const cuuint64_t dims[4] = {kCols, kRows, 1, 1};
  const cuuint64_t strides[3] = {kCols * 2, kTileBytes, kTileBytes};  // bytes, dims 1..3
  const cuuint32_t box[4] = {kCols, kRows, 1, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  const CUresult r = fn(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                        4, const_cast<void*>(ptr), dims, strides, box, elem_strides,
                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                        CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? 0 : 1000 + static_cast<int>(r);
}

}  // namespace

// Returns 0, a cudaError_t, or 1000 + a CUresult of the tensor-map encoding.
extern "C" int flashcore_sm90_stage1(int bf16, const void* q, const void* k, const void* v,
                                     float* s_out, float* o_out, float* t_out) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found;
  cudaError_t err = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                     cudaEnableDefault, &found);
  if (err != cudaSuccess) return err;
  if (found != cudaDriverEntryPointSuccess || fn == nullptr) return 999;
  CUtensorMap maps[3];
  const void* ptrs[3] = {q, k, v};
  for (int i = 0; i < 3; ++i) {
    const int r = encode(reinterpret_cast<EncodeTiled>(fn), &maps[i], ptrs[i], bf16 != 0);
    if (r != 0) return r;
  }
  if (bf16) {
    stage1_kernel<__nv_bfloat16><<<1, 128, kSmemBytes>>>(maps[0], maps[1], maps[2], s_out, o_out,
                                                          t_out);
  } else {
    stage1_kernel<__half><<<1, 128, kSmemBytes>>>(maps[0], maps[1], maps[2], s_out, o_out, t_out);
  }
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  return cudaDeviceSynchronize();
}
