// Per-element-type traits: how two fp32 values pack into one 32-bit register of
// 16-bit elements, and which mma.sync instruction multiplies them. Kernels are
// templated on the element type and reach the type only through Numeric<Elem>.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "flashcore/params.h"

namespace flashcore {

template <typename Elem>
struct Numeric;

template <>
struct Numeric<__half> {
  static constexpr DType kDType = DType::kFloat16;

  // Round-to-nearest fp32 pair -> fp16x2 (lo in the low half).
  __device__ __forceinline__ static uint32_t pack2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }

  // D(16x8 f32) += A(16x16 f16, row) * B(16x8 f16, col).
  __device__ __forceinline__ static void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                                      uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Numeric<__nv_bfloat16> {
  static constexpr DType kDType = DType::kBFloat16;

  __device__ __forceinline__ static uint32_t pack2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }

  // D(16x8 f32) += A(16x16 bf16, row) * B(16x8 bf16, col).
  __device__ __forceinline__ static void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                                      uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

}  // namespace flashcore
