// metric_cuda.cu compiled by g++ against the emulator (cuda_sim.h) for test_metric_cuda_sim.
#include "../../metric/metric_cuda.cu"
