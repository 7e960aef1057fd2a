// Warpgroup matrix multiply-accumulate on Hopper (sm_90a; PTX ISA 9.7.15):
// shared-memory matrix descriptors, the fence / commit / wait protocol, and
// wgmma.mma_async m64nNk16 with f32 accumulators for fp16 and bf16 operands,
// A from shared memory (ss) or registers (rs). Part of the Hopper family of
// issue 11 (docs/design/hopper_fwd.md); the bodies exist only under
// FLASHCORE_SM90A (sm90/ptx.cuh).
//
// The operand lists are written out per N (64, 128), one macro each that the
// two element types instantiate: inline PTX needs every accumulator register
// named and the operand type in the instruction string.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "flashcore/sm90/ptx.cuh"

namespace flashcore {
namespace sm90 {

#if defined(FLASHCORE_SM90A)

// Swizzle modes of a matrix descriptor (bits 62-63).
enum class Swizzle : uint32_t { kNone = 0, k128B = 1, k64B = 2, k32B = 3 };

// 64-bit shared-memory matrix descriptor (9.7.15.5.1.2): start address,
// leading- and stride-dimension byte offsets (each stored >> 4 in 14 bits),
// base offset 0 (tiles start on a 1024-byte boundary under 128B swizzle), and
// the swizzle mode.
__device__ __forceinline__ uint64_t make_smem_desc(const void* tile, uint32_t lead_bytes,
                                                   uint32_t stride_bytes, Swizzle swizzle) {
  const uint64_t addr = smem_u32(tile);
  uint64_t desc = (addr & 0x3FFFF) >> 4;
  desc |= static_cast<uint64_t>((lead_bytes & 0x3FFFF) >> 4) << 16;
  desc |= static_cast<uint64_t>((stride_bytes & 0x3FFFF) >> 4) << 32;
  desc |= static_cast<uint64_t>(swizzle) << 62;
  return desc;
}

// Before the first wgmma of a batch, and whenever registers it reads (the
// accumulators, an A fragment) were written by other instructions since.
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

// Closes the wgmmas issued since the last commit into one group.
__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

// Waits until at most kPending committed groups are still running; only then
// may their accumulators and register operands be touched.
template <int kPending>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

// Keeps the compiler from moving accesses of the accumulators across the
// asynchronous wgmma boundary.
template <int kN>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// The same for a register-sourced A operand (16-bit pairs).
template <int kN>
__device__ __forceinline__ void wgmma_fence_operands(uint32_t (&a)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+r"(a[i])::"memory");
}

// kTransB: B is MN-major (its N dimension contiguous, e.g. V stored [key][d]
// as the B operand of O += P V); false: K-major (K stored [key][d] as the B of
// S = Q K^T). kTransA (ss only), the same for A: M-major (the backward's dS
// stored [key][query] as the A of dQ = dS K). Transposes are allowed for
// 16-bit operands in shared memory only.
template <int kN, typename Elem>
struct Wgmma;

// m64n64k16 with f32 accumulators (32 per thread) for element type ELEM,
// PTX operand type TYPE ("f16" / "bf16").
#define FLASHCORE_WGMMA_M64N64(ELEM, TYPE)                                                     \
template <>                                                                                    \
struct Wgmma<64, ELEM> {                                                                       \
  static constexpr int kAccRegs = 32;                                                          \
  /* D (+)= A B, A and B in shared memory (descriptors); kTransA: A is */                    \
  /* M-major (its M dimension contiguous), false: K-major. */                                  \
  template <bool kTransB, bool kTransA = false>                                                \
  static __device__ __forceinline__ void ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b,  \
                                            bool accumulate) {                                 \
    asm volatile(                                                                              \
        "{\n"                                                                                  \
        "  .reg .pred p;\n"                                                                    \
        "  setp.ne.b32 p, %34, 0;\n"                                                           \
        "  wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE "\n"                     \
        "      {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11,"                             \
        "       %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23,"                   \
        "       %24, %25, %26, %27, %28, %29, %30, %31},\n"                                    \
        "      %32, %33, p, 1, 1, %35, %36;\n"                                                 \
        "}\n"                                                                                  \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),              \
          "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),            \
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),        \
          "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),        \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),        \
          "+f"(d[30]), "+f"(d[31])                                                             \
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)),                         \
          "n"(static_cast<int>(kTransA)), "n"(static_cast<int>(kTransB)));                     \
  }                                                                                            \
  /* D (+)= A B, A in registers (the m64k16 A fragment, 4 registers of 2 */                    \
  /* elements per thread), B in shared memory. */                                              \
  template <bool kTransB>                                                                      \
  static __device__ __forceinline__ void rs(float (&d)[32], const uint32_t (&a)[4],            \
                                            uint64_t desc_b, bool accumulate) {                \
    asm volatile(                                                                              \
        "{\n"                                                                                  \
        "  .reg .pred p;\n"                                                                    \
        "  setp.ne.b32 p, %37, 0;\n"                                                           \
        "  wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE "\n"                     \
        "      {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11,"                             \
        "       %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23,"                   \
        "       %24, %25, %26, %27, %28, %29, %30, %31},\n"                                    \
        "      {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n"                                     \
        "}\n"                                                                                  \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),              \
          "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),            \
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),        \
          "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),        \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),        \
          "+f"(d[30]), "+f"(d[31])                                                             \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b),                             \
          "r"(static_cast<int>(accumulate)), "n"(static_cast<int>(kTransB)));                  \
  }                                                                                            \
}                                                                                             

// m64n128k16 with f32 accumulators (64 per thread) for element type ELEM,
// PTX operand type TYPE ("f16" / "bf16").
#define FLASHCORE_WGMMA_M64N128(ELEM, TYPE)                                                    \
template <>                                                                                    \
struct Wgmma<128, ELEM> {                                                                      \
  static constexpr int kAccRegs = 64;                                                          \
  /* D (+)= A B, A and B in shared memory (descriptors); kTransA: A is */                    \
  /* M-major (its M dimension contiguous), false: K-major. */                                  \
  template <bool kTransB, bool kTransA = false>                                                \
  static __device__ __forceinline__ void ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b,  \
                                            bool accumulate) {                                 \
    asm volatile(                                                                              \
        "{\n"                                                                                  \
        "  .reg .pred p;\n"                                                                    \
        "  setp.ne.b32 p, %66, 0;\n"                                                           \
        "  wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE "\n"                    \
        "      {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11,"                             \
        "       %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23,"                   \
        "       %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35,"                   \
        "       %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"                   \
        "       %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59,"                   \
        "       %60, %61, %62, %63},\n"                                                        \
        "      %64, %65, p, 1, 1, %67, %68;\n"                                                 \
        "}\n"                                                                                  \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),              \
          "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),            \
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),        \
          "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),        \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),        \
          "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),        \
          "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),        \
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),        \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),        \
          "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),        \
          "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                   \
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)),                         \
          "n"(static_cast<int>(kTransA)), "n"(static_cast<int>(kTransB)));                     \
  }                                                                                            \
  /* D (+)= A B, A in registers (the m64k16 A fragment, 4 registers of 2 */                    \
  /* elements per thread), B in shared memory. */                                              \
  template <bool kTransB>                                                                      \
  static __device__ __forceinline__ void rs(float (&d)[64], const uint32_t (&a)[4],            \
                                            uint64_t desc_b, bool accumulate) {                \
    asm volatile(                                                                              \
        "{\n"                                                                                  \
        "  .reg .pred p;\n"                                                                    \
        "  setp.ne.b32 p, %69, 0;\n"                                                           \
        "  wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE "\n"                    \
        "      {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11,"                             \
        "       %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23,"                   \
        "       %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35,"                   \
        "       %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"                   \
        "       %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59,"                   \
        "       %60, %61, %62, %63},\n"                                                        \
        "      {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n"                                     \
        "}\n"                                                                                  \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),              \
          "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),            \
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),        \
          "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),        \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),        \
          "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),        \
          "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),        \
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),        \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),        \
          "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),        \
          "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                   \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b),                             \
          "r"(static_cast<int>(accumulate)), "n"(static_cast<int>(kTransB)));                  \
  }                                                                                            \
}                                                                                             

FLASHCORE_WGMMA_M64N64(__half, "f16");
FLASHCORE_WGMMA_M64N64(__nv_bfloat16, "bf16");
FLASHCORE_WGMMA_M64N128(__half, "f16");
FLASHCORE_WGMMA_M64N128(__nv_bfloat16, "bf16");
#undef FLASHCORE_WGMMA_M64N64
#undef FLASHCORE_WGMMA_M64N128

#endif  // FLASHCORE_SM90A

}  // namespace sm90
}  // namespace flashcore
