// Thin wrappers over the sm_80+ PTX instructions the mma.sync kernels are
// built from: 16-byte cp.async, ldmatrix, named barriers, programmatic
// dependent launch, ex2/rcp approximations. The element-type-specific ones
// (mma, packing) are in numeric.cuh.
#pragma once

#include <cstdint>

namespace flashcore {

__device__ __forceinline__ uint32_t smem_u32(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// 16-byte global->shared copy that bypasses L1. src_bytes = 0 writes zeros
// without reading global memory: that is how tail rows are filled.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}

// Wait until at most kPending of this thread's committed groups are in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Programmatic dependent launch (sm_90): when this grid was launched early,
// overlapping the previous kernel in the stream, wait here until that kernel's
// writes are visible. A no-op for a normal launch and on older GPUs.
__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Programmatic dependent launch, the other side: lets the next kernel in the
// stream, if it was launched with PDL, be scheduled before this grid finishes.
// Its blocks then wait in their own griddepcontrol.wait until this grid has
// completed and its writes are visible, so this may come first thing. Only
// affects dependents launched with the PDL attribute; a no-op before sm_90.
__device__ __forceinline__ void allow_next_grid_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Barrier kId (1..15; 0 is __syncthreads) over kThreads threads (a multiple of
// 32): lets groups of warps synchronize independently of each other.
template <int kId, int kThreads>
__device__ __forceinline__ void named_barrier_sync() {
  asm volatile("bar.sync %0, %1;\n" ::"n"(kId), "n"(kThreads) : "memory");
}

// Arrives on barrier kId without waiting: counts toward the kThreads that a
// bar.sync on it waits for (a producer/consumer hand-off between warp groups).
template <int kId, int kThreads>
__device__ __forceinline__ void named_barrier_arrive() {
  asm volatile("bar.arrive %0, %1;\n" ::"n"(kId), "n"(kThreads) : "memory");
}

// Four 8x8 b16 matrices; lane L supplies the row address of matrix L / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                            uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// Same, transposed on the way into registers (V is stored key-major, but the
// B operand of P V wants the key index along the fragment's k dimension).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// 2^x in one SFU instruction. Inputs are max-subtracted scores (<= 0) or -inf,
// where its relative error (~2^-22) is far below the fp16 rounding of P.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// 1/x in one SFU instruction (relative error ~2^-23).
__device__ __forceinline__ float fast_rcp(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// tanh(x) = 1 - 2 / (exp(2x) + 1) from ex2.approx and rcp.approx: absolute
// error ~1e-7 over the whole range (tanh.approx.f32 is ~5e-4 relative, which a
// softcap of 30-50 turns into 1-2% errors in P). exp2 overflows to +inf for
// large x, giving exactly 1; for very negative x it gives 0, so -1.
__device__ __forceinline__ float accurate_tanh(float x) {
  const float e = fast_exp2(x * 2.8853900817779268f);  // 2 * log2(e)
  return 1.f - 2.f * fast_rcp(e + 1.f);
}

}  // namespace flashcore
