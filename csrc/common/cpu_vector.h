// CPU vectorisation shared by the cpu kernels: libmvec vector maths, per-ISA function targets, the
// run-time choice of the widest loop variant this CPU runs, and IsaVariants, which compiles one loop
// body once per ISA and picks the variant.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

// Vector math through glibc's libmvec (GCC on x86-64 Linux). glibc only marks these `simd` under
// -ffast-math, which we do not want (it would also assume no NaN/inf); declaring the attribute here
// lets the vectoriser call _ZGV{b,d,e}N*v_expf & co. (<= 4 ulp) without the rest of fast-math.
// log1p's, expm1's and exp2's vector variants arrived in glibc 2.35; setup.py links libmvec under the same
// condition.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(FUSEDLOSS_NO_LIBMVEC)
#define FL_CPU_MULTIVERSION 1
extern "C" {
float expf(float) noexcept __attribute__((simd("notinbranch")));
float logf(float) noexcept __attribute__((simd("notinbranch")));
float log1pf(float) noexcept __attribute__((simd("notinbranch")));
float expm1f(float) noexcept __attribute__((simd("notinbranch")));
float exp2f(float) noexcept __attribute__((simd("notinbranch")));
double exp(double) noexcept __attribute__((simd("notinbranch")));
double log(double) noexcept __attribute__((simd("notinbranch")));
double log1p(double) noexcept __attribute__((simd("notinbranch")));
double expm1(double) noexcept __attribute__((simd("notinbranch")));
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

// `#pragma omp simd reduction` lets the vectoriser reassociate the float sums of a loop that
// accumulates into locals named s and c (setup.py passes -fopenmp-simd and defines
// FUSEDLOSS_OPENMP_SIMD; without them the loop stays scalar but correct).
#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_SIMD_REDUCE_SUM_CNT _Pragma("omp simd reduction(+ : s, c)")
#else
#define FL_SIMD_REDUCE_SUM_CNT
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

// One loop body compiled for each ISA: Body::run (FL_ALWAYS_INLINE, no target attribute, so it
// inlines into every variant) behind plain functions of signature Sig, and pick(isa) returns the
// variant to call. The per-ISA functions must not be inlined into a caller without the target.
template <typename Body, typename Sig>
struct IsaVariants;

template <typename Body, typename R, typename... A>
struct IsaVariants<Body, R(A...)> {
  using Fn = R (*)(A...);
  static R base(A... a) { return Body::run(a...); }
#if FL_CPU_MULTIVERSION
  FL_TARGET_AVX2 static R avx2(A... a) { return Body::run(a...); }
  FL_TARGET_AVX512 static R avx512(A... a) { return Body::run(a...); }
#endif
  static Fn pick(Isa isa) {
#if FL_CPU_MULTIVERSION
    if (isa == Isa::kAvx512) return &avx512;
    if (isa == Isa::kAvx2) return &avx2;
#endif
    (void)isa;
    return &base;
  }
};

// src itself when it already holds acc_t, else its n elements converted into buf.
template <typename acc_t, typename src_t>
const acc_t* as_acc(const src_t* src, int64_t n, acc_t* buf) {
  if constexpr (std::is_same_v<src_t, acc_t>) {
    (void)n;
    (void)buf;
    return src;
  } else {
    for (int64_t k = 0; k < n; ++k) buf[k] = static_cast<acc_t>(src[k]);
    return buf;
  }
}

}  // namespace fusedloss
