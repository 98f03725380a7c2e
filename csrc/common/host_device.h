// Host-device qualifiers shared by the CPU (g++) and CUDA (nvcc) builds of the same math.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FL_HD __host__ __device__ __forceinline__
#else
#define FL_HD inline
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

// Unqualified exp/log/... resolve to the float overloads on the host too (nvcc provides them for
// device code in the global namespace).
namespace fusedloss {
#if !defined(__CUDACC__)
using std::exp;
using std::expm1;
using std::fabs;
using std::log;
using std::log1p;
#endif
}  // namespace fusedloss
