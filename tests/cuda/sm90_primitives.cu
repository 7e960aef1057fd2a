// Compile check of the Hopper primitives (include/flashcore/sm90/): one kernel
// that uses every wrapper once, for tests/test_sm90_build.py to build for
// sm_90a (and for sm_80, where the guarded bodies must vanish) and to look for
// the Hopper instructions in the SASS. It is never launched: the order of
// operations is only what ptxas needs to see each instruction form.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "flashcore/sm90/ptx.cuh"
#include "flashcore/sm90/wgmma.cuh"

template <typename Elem>
__global__ void __launch_bounds__(384, 1) sm90_primitives(const __grid_constant__ CUtensorMap map,
                                float* out) {
#if defined(FLASHCORE_SM90A)
  using namespace flashcore::sm90;
  extern __shared__ __align__(1024) char smem[];
  uint64_t* bar = reinterpret_cast<uint64_t*>(smem + 65536);
  if (threadIdx.x == 0) {
    mbarrier_init(bar, 1);
    fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x < 128) {
    setmaxnreg_dec<40>();
    if (threadIdx.x < 32 && elect_one()) {
      prefetch_tensor_map(&map);
      mbarrier_arrive_expect_tx(bar, 16384 + 256);
      tma_load_4d(smem, &map, bar, 0, 0, 0, 0);
      bulk_load_1d(smem + 49152, out, 256, bar);
    }
    return;
  }
  setmaxnreg_inc<232>();
  mbarrier_wait_parity(bar, 0);
  const uint64_t desc_q = make_smem_desc(smem, 16, 1024, Swizzle::k128B);
  const uint64_t desc_k = make_smem_desc(smem + 16384, 16, 1024, Swizzle::k128B);
  const uint64_t desc_v = make_smem_desc(smem + 32768, 64 * 128, 1024, Swizzle::k128B);
  float s[64];
  float o[32];
  for (int i = 0; i < 32; ++i) o[i] = 0.f;
  wgmma_fence();
  Wgmma<128, Elem>::template ss<false>(s, desc_q, desc_k, false);
  wgmma_commit_group();
  wgmma_wait_group<0>();
  wgmma_fence_operands(s);
  uint32_t a[4];
  for (int i = 0; i < 4; ++i) a[i] = __float_as_uint(s[i]);
  wgmma_fence();
  Wgmma<64, Elem>::template rs<true>(o, a, desc_v, true);
  // Both operands M- / N-major (the backward's dQ = dS K).
  Wgmma<64, Elem>::template ss</*kTransB=*/true, /*kTransA=*/true>(o, desc_v, desc_v, true);
  wgmma_commit_group();
  wgmma_wait_group<0>();
  wgmma_fence_operands(o);
  for (int i = 0; i < 32; ++i) smem[threadIdx.x * 32 + i] = static_cast<char>(o[i]);
  fence_proxy_async_smem();
  if (threadIdx.x == 128) {
    tma_store_4d(&map, smem, 0, 0, 0, 0);
    bulk_commit_group();
    bulk_wait_group_read<0>();
  }
  out[threadIdx.x] = s[63];
  mbarrier_arrive(bar);
#else
  out[threadIdx.x] = 0.f;
#endif
}

template __global__ void sm90_primitives<__half>(const __grid_constant__ CUtensorMap, float*);
template __global__ void sm90_primitives<__nv_bfloat16>(const __grid_constant__ CUtensorMap,
                                                           float*);
