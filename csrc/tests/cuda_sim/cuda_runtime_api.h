// Stands for the CUDA toolkit's cuda_runtime_api.h in the emulated builds (cuda_sim.h).
#pragma once
#include "cuda_sim.h"
