// softmax_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_softmax_cuda_sim.
// group_of's Shape parameter is unused (nvcc does not warn; g++ -Wextra does): not an error here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "../../softmax/softmax_cuda.cu"
#pragma GCC diagnostic pop
