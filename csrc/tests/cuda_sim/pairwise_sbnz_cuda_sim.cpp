// pairwise_sbnz_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_pairwise_cuda_sim.
#include "../../pairwise/pairwise_sbnz_cuda.cu"
