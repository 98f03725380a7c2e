// ziln_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_ziln_cuda_sim.
#include "../../ziln/ziln_cuda.cu"
