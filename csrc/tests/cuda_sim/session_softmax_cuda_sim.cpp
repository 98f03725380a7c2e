// session_softmax_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_session_softmax_cuda_sim.
#include "../../session_softmax/session_softmax_cuda.cu"
