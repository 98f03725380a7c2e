// Host-side data shared by the emulated CUDA tests (test_*_cuda_sim.cpp): the random source (each
// test seeds it first thing in main) and the stored element types' rounding from double and back.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <random>
#include <type_traits>

namespace flsim {

inline std::mt19937_64 g_rng;

inline double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g_rng); }
inline int64_t randint(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g_rng); }

// v rounded to nearest in T (through float for the 16-bit types, as the kernels' from_acc).
template <typename T>
T store(double v) {
  if constexpr (std::is_same<T, __half>::value) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <typename T>
double load(T v) {
  if constexpr (std::is_same<T, __half>::value) {
    return static_cast<double>(__half2float(v));
  } else if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    return static_cast<double>(__bfloat162float(v));
  } else {
    return static_cast<double>(v);
  }
}

}  // namespace flsim
