// Hopper (sm_90a) primitives for the warp-specialized forward family (issue 11;
// docs/design/hopper_fwd.md): mbarriers, TMA bulk tensor copies, the proxy
// fence between generic and async shared-memory accesses, elect.sync and
// setmaxnreg. PTX ISA sections are named beside each wrapper.
//
// The bodies exist only where FLASHCORE_SM90A is defined: device code compiled
// for sm_90a (the "a" features: wgmma, setmaxnreg). Every other pass (host,
// sm_80/86/89, plain sm_90 and its PTX) sees the declarations only, so a
// kernel that uses them must itself be guarded by FLASHCORE_SM90A.
#pragma once

#include <cstdint>

#include "flashcore/sm80/ptx.cuh"  // smem_u32

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FLASHCORE_SM90A 1
#endif

namespace flashcore {
namespace sm90 {

#if defined(FLASHCORE_SM90A)

using flashcore::smem_u32;

// ---- mbarrier (9.7.13.15) ----

// One thread initializes; then fence_mbarrier_init() and a block barrier
// before any other thread or the TMA unit uses the barrier.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(arrivals)
               : "memory");
}

// Makes barrier initializations visible to the async proxy (TMA) (9.7.13.4).
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// Arrives once and adds `bytes` to the transaction count the phase waits for
// (the bytes the TMA copies signalling this barrier will deliver).
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)),
               "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}

// Whether the phase with parity `parity` has completed (may return false
// spuriously after a time limit: callers loop).
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint64_t* bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      "  .reg .pred p;\n"
      "  mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "  selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(smem_u32(bar)), "r"(parity)
      : "memory");
  return done != 0;
}

__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, uint32_t parity) {
  while (!mbarrier_try_wait_parity(bar, parity)) {
  }
}

// ---- TMA (9.7.9.25.5) ----

// Loads the box at coordinates (c0 innermost .. c3) of the tensor map into
// shared memory at dst, completing `bar`'s transaction bytes. A CTA is its own
// cluster here (no clusters are launched).
__device__ __forceinline__ void tma_load_4d(void* dst, const void* tensor_map, uint64_t* bar,
                                            int c0, int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5, %6}], [%2];" ::"r"(smem_u32(dst)),
      "l"(tensor_map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// Copies `bytes` contiguous bytes from global memory at src to shared memory
// at dst, completing `bar`'s transaction bytes: the non-tensor bulk copy
// (9.7.9.25.4.1). Both addresses 16-byte aligned, bytes a multiple of 16.
// tests/cuda/sm90_primitives.cu checks it; no kernel uses it now (the
// backward's consumers copy their statistics with cp.async, sm90/bwd_kernel.cuh).
__device__ __forceinline__ void bulk_load_1d(void* dst, const void* src, uint32_t bytes,
                                             uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1], %2, [%3];" ::"r"(smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar))
      : "memory");
}

// Stores the shared box at src to coordinates (c0 .. c3); completion through
// bulk_commit_group / bulk_wait_group_read.
__device__ __forceinline__ void tma_store_4d(const void* tensor_map, const void* src, int c0,
                                             int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.global.shared::cta.tile.bulk_group"
      " [%0, {%2, %3, %4, %5}], [%1];" ::"l"(tensor_map),
      "r"(smem_u32(src)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

__device__ __forceinline__ void bulk_commit_group() {
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Waits until at most kPending bulk groups still read their shared source.
template <int kPending>
__device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void prefetch_tensor_map(const void* tensor_map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(tensor_map) : "memory");
}

// Orders this thread's generic-proxy shared-memory writes before later
// async-proxy accesses (a TMA store of data the threads wrote) (9.7.13.4).
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// ---- warp and register control ----

// True in exactly one active lane of the (fully active) warp (9.7.13.14).
__device__ __forceinline__ bool elect_one() {
  uint32_t elected;
  asm volatile(
      "{\n"
      "  .reg .b32 lane;\n"
      "  .reg .pred p;\n"
      "  elect.sync lane|p, 0xffffffff;\n"
      "  selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(elected));
  return elected != 0;
}

// Per-thread register budget of the executing warp(group), a multiple of 8 in
// 24..256; all warps of a warpgroup execute the same one (9.7.19.5).
template <uint32_t kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(kRegs % 8 == 0 && kRegs >= 24 && kRegs <= 256, "setmaxnreg range");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegs));
}

template <uint32_t kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(kRegs % 8 == 0 && kRegs >= 24 && kRegs <= 256, "setmaxnreg range");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegs));
}

#endif  // FLASHCORE_SM90A

}  // namespace sm90
}  // namespace flashcore
