// sv_softmax_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_sv_softmax_cuda_sim.
#include "../../sv_softmax/sv_softmax_cuda.cu"
