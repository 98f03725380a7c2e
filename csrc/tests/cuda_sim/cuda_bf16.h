// Stands for the CUDA toolkit's cuda_bf16.h in the emulated builds (cuda_sim.h): __nv_bfloat16 as its
// 16 bits (the high half of a float), with the conversions the kernels use, rounding to nearest even.
#pragma once
#include "cuda_sim.h"

struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t b = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if (std::isnan(f)) return __nv_bfloat16{static_cast<uint16_t>((b >> 16) | 0x40u)};
  b += 0x7fffu + ((b >> 16) & 1u);  // round half to even
  return __nv_bfloat16{static_cast<uint16_t>(b >> 16)};
}
