// Kernel launches and dynamic shared memory, written once for nvcc and for the CPU emulator of
// csrc/tests/cuda_sim (FUSEDLOSS_CUDA_SIM), which runs the same kernel sources in ctest on a machine
// without a GPU. Under nvcc launch_kernel is exactly kernel<<<grid, block, smem, stream>>>(args...).
#pragma once

#include <cuda_runtime.h>

#include <stddef.h>

#include <utility>

#if defined(FUSEDLOSS_CUDA_SIM)
// The block's dynamic shared memory, as a T*.
#define FL_DYNAMIC_SHARED(T, name) T* const name = ::fusedloss_sim::dynamic_shared<T>()
#else
#define FL_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace fusedloss {

template <typename... Params, typename... Args>
inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          Args&&... args) {
#if defined(FUSEDLOSS_CUDA_SIM)
  (void)stream;
  ::fusedloss_sim::launch(kernel, grid, block, smem, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
#endif
}

}  // namespace fusedloss
