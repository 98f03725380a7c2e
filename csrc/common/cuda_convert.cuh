// Device-side conversions between the stored element types and the accumulation type, shared by
// every family's .cu (torch-free, nvcc only).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fusedloss {

// Accumulation type of an element type: double for double, float otherwise.
template <typename scalar_t>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

// Loads convert with the intrinsics: torch builds .cu files with __CUDA_NO_HALF_CONVERSIONS__ and
// __CUDA_NO_BFLOAT16_CONVERSIONS__, which remove the implicit ones.
template <typename acc_t, typename T>
__device__ __forceinline__ acc_t to_acc(T v) {
  return static_cast<acc_t>(v);
}
template <>
__device__ __forceinline__ float to_acc<float, __half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ double to_acc<double, __half>(__half v) {
  return static_cast<double>(__half2float(v));
}
template <>
__device__ __forceinline__ float to_acc<float, __nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ double to_acc<double, __nv_bfloat16>(__nv_bfloat16 v) {
  return static_cast<double>(__bfloat162float(v));
}

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ scalar_t from_acc(acc_t v) {
  return static_cast<scalar_t>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half, float>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16_rn(v);
}

}  // namespace fusedloss
