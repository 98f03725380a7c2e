// The tiny harness of the C++ math tests (csrc/tests/test_*_math.cpp, run by ctest): counted
// expectations and a main that runs named groups of them.
#pragma once

#include <cmath>
#include <cstdio>

namespace fltest {

inline int g_checks = 0;
inline int g_failures = 0;

inline void expect(bool ok, const char* what, double got, double want, const char* ctx) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    if (g_failures <= 40) std::printf("FAIL %s: got %.17g want %.17g [%s]\n", what, got, want, ctx);
  }
}

inline void expect_close(const char* what, double got, double want, double rtol, double atol,
                         const char* ctx) {
  expect(std::fabs(got - want) <= atol + rtol * std::fabs(want), what, got, want, ctx);
}

struct Group {
  const char* name;
  void (*fn)();
};

// Runs every group, prints a line per group and a verdict; returns main's exit status.
template <int N>
int run_groups(const char* program, const Group (&groups)[N]) {
  for (const Group& g : groups) {
    const int c0 = g_checks, f0 = g_failures;
    g.fn();
    std::printf("%-28s %8d checks, %d failures\n", g.name, g_checks - c0, g_failures - f0);
  }
  std::printf("%s: %d checks, %d failures -> %s\n", program, g_checks, g_failures,
              g_failures ? "FAILED" : "OK");
  return g_failures ? 1 : 0;
}

}  // namespace fltest
