// focal_cuda.cu (the shared elementwise kernel of common/elementwise_cuda.cuh with the focal functor)
// compiled by g++ against the emulator (cuda_sim.h) for test_focal_cuda_sim.
#include "../../focal/focal_cuda.cu"
