// pointwise_cuda.cu (the shared elementwise kernel of common/elementwise_cuda.cuh with the pointwise
// functor) compiled by g++ against the emulator (cuda_sim.h) for test_pointwise_cuda_sim.
#include "../../pointwise/pointwise_cuda.cu"
