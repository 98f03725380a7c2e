// Stands for the CUDA toolkit's cuda_fp16.h in the emulated builds (cuda_sim.h): __half as its 16 bits,
// with the conversions the kernels use (csrc/common/cuda_convert.cuh), rounding to nearest even.
#pragma once
#include "cuda_sim.h"

struct __half {
  uint16_t bits;
};

inline float __half2float(__half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu, man = h.bits & 0x3ffu;
  float mag;
  if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man), -24);  // zero or subnormal
  } else if (exp == 31) {
    mag = man == 0 ? INFINITY : NAN;
  } else {
    mag = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  }
  uint32_t b;
  std::memcpy(&b, &mag, 4);
  b |= sign;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline __half __float2half_rn(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return __half{static_cast<uint16_t>(sign | 0x7e00u)};
  if (a >= 65520.0f) return __half{static_cast<uint16_t>(sign | 0x7c00u)};  // rounds to infinity
  // Scale so that one half ulp at this binade is 1, round half to even with nearbyint.
  int e;
  std::frexp(a, &e);                          // a = m 2^e, m in [0.5, 1)
  const int ulp_exp = e - 11 < -24 ? -24 : e - 11;  // subnormals: a fixed ulp of 2^-24
  const float q = std::nearbyint(std::ldexp(a, -ulp_exp));  // FE_TONEAREST: ties to even
  const float r = std::ldexp(q, ulp_exp);
  // Re-encode r (exact in half precision).
  if (r == 0.0f) return __half{sign};
  int re;
  std::frexp(r, &re);
  if (re - 1 < -14) return __half{static_cast<uint16_t>(sign | static_cast<uint16_t>(std::ldexp(r, 24)))};
  const uint16_t exp = static_cast<uint16_t>(re - 1 + 15);
  const uint16_t man = static_cast<uint16_t>(static_cast<uint32_t>(std::ldexp(r, 11 - re)) & 0x3ffu);
  return __half{static_cast<uint16_t>(sign | (exp << 10) | man)};
}
