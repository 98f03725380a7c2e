// Device queries shared by the *_cuda_binding.cpp files (CUDAExtension builds only). c10/cuda
// headers only, so that scripts/check_cuda_build.sh can syntax-check the bindings against a CPU
// build of torch.
#pragma once

#include <c10/core/Device.h>
#include <c10/cuda/CUDAException.h>

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fusedloss {

// Multiprocessors of `device`, the unit of the grids that fill the GPU.
inline int32_t sm_count(c10::DeviceIndex device) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

}  // namespace fusedloss
