// CPU vectorisation shared by the cpu kernels: libmvec vector maths, per-ISA function targets and
// the run-time choice of the widest loop variant this CPU runs.
#pragma once

#include <cstdlib>
#include <cstring>

// Vector math through glibc's libmvec (GCC on x86-64 Linux). glibc only marks these `simd` under
// -ffast-math, which we do not want (it would also assume no NaN/inf); declaring the attribute here
// lets the vectoriser call _ZGV{b,d,e}N*v_expf & co. (<= 4 ulp) without the rest of fast-math.
// log1p's vector variants arrived in glibc 2.35; setup.py links libmvec under the same condition.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(FUSEDLOSS_NO_LIBMVEC)
#define FL_CPU_MULTIVERSION 1
extern "C" {
float expf(float) noexcept __attribute__((simd("notinbranch")));
float logf(float) noexcept __attribute__((simd("notinbranch")));
float log1pf(float) noexcept __attribute__((simd("notinbranch")));
double exp(double) noexcept __attribute__((simd("notinbranch")));
double log(double) noexcept __attribute__((simd("notinbranch")));
double log1p(double) noexcept __attribute__((simd("notinbranch")));
}
#define FL_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FL_TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")))
#else
#define FL_CPU_MULTIVERSION 0
#endif

#if defined(__GNUC__)
#define FL_ALWAYS_INLINE __attribute__((always_inline)) inline
#define FL_NOINLINE __attribute__((noinline))
#else
#define FL_ALWAYS_INLINE inline
#define FL_NOINLINE
#endif

namespace fusedloss {

enum class Isa : int { kBase = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest variant this CPU runs. FUSEDLOSS_CPU_ISA=base|avx2|avx512 lowers it (tests use it to
// cover every variant on one machine); asking for more than the CPU has gives what it has.
inline Isa cpu_isa() {
#if FL_CPU_MULTIVERSION
  static const Isa hw = [] {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    return avx512 ? Isa::kAvx512 : (avx2 ? Isa::kAvx2 : Isa::kBase);
  }();
  Isa want = hw;
  if (const char* env = std::getenv("FUSEDLOSS_CPU_ISA")) {
    if (std::strcmp(env, "base") == 0) {
      want = Isa::kBase;
    } else if (std::strcmp(env, "avx2") == 0) {
      want = Isa::kAvx2;
    }
  }
  return static_cast<int>(want) < static_cast<int>(hw) ? want : hw;
#else
  return Isa::kBase;
#endif
}

}  // namespace fusedloss
