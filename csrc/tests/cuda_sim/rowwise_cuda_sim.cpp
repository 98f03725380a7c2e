// rowwise_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_rowwise_cuda_sim.
#include "../../rowwise/rowwise_cuda.cu"
