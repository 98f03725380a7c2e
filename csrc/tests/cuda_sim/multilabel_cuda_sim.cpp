// multilabel_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_multilabel_cuda_sim.
#include "../../multilabel/multilabel_cuda.cu"
