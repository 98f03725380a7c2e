// Host-side data for the emulated tests of the elementwise CUDA kernel (test_focal_cuda_sim.cpp,
// test_pointwise_cuda_sim.cpp): the random source, element dtypes of csrc/common/elementwise_cuda.h
// stored and read back with their rounding, and the broadcast weight tables in each of Table::at's
// paths.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "../common/elementwise_cuda.h"
#include "sim_data.h"

namespace flsim_elem {

using flsim::randint;
using flsim::uniform;

const char* const kDTypeNames[] = {"f32", "f64", "f16", "bf16", "u8", "i8", "i16", "i32", "i64"};

inline size_t dsize(int code) {
  static const size_t sizes[] = {4, 8, 2, 2, 1, 1, 2, 4, 8};
  return sizes[code];
}

inline bool is_float(int code) { return code <= kFlElemBF16; }

// Stores v in element i of a buffer of dtype `code` (rounded to nearest for floating types).
inline void put(int code, unsigned char* base, size_t i, double v) {
  unsigned char* p = base + i * dsize(code);
  switch (code) {
    case kFlElemF32: {
      const float f = static_cast<float>(v);
      std::memcpy(p, &f, 4);
      break;
    }
    case kFlElemF64:
      std::memcpy(p, &v, 8);
      break;
    case kFlElemF16: {
      const __half h = __float2half_rn(static_cast<float>(v));
      std::memcpy(p, &h, 2);
      break;
    }
    case kFlElemBF16: {
      const __nv_bfloat16 h = __float2bfloat16_rn(static_cast<float>(v));
      std::memcpy(p, &h, 2);
      break;
    }
    case kFlElemU8: {
      const uint8_t u = static_cast<uint8_t>(v);
      std::memcpy(p, &u, 1);
      break;
    }
    case kFlElemI8: {
      const int8_t u = static_cast<int8_t>(v);
      std::memcpy(p, &u, 1);
      break;
    }
    case kFlElemI16: {
      const int16_t u = static_cast<int16_t>(v);
      std::memcpy(p, &u, 2);
      break;
    }
    case kFlElemI32: {
      const int32_t u = static_cast<int32_t>(v);
      std::memcpy(p, &u, 4);
      break;
    }
    default: {
      const int64_t u = static_cast<int64_t>(v);
      std::memcpy(p, &u, 8);
      break;
    }
  }
}

inline double get(int code, const unsigned char* base, size_t i) {
  const unsigned char* p = base + i * dsize(code);
  switch (code) {
    case kFlElemF32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case kFlElemF64: {
      double d;
      std::memcpy(&d, p, 8);
      return d;
    }
    case kFlElemF16: {
      __half h;
      std::memcpy(&h, p, 2);
      return __half2float(h);
    }
    case kFlElemBF16: {
      __nv_bfloat16 h;
      std::memcpy(&h, p, 2);
      return __bfloat162float(h);
    }
    case kFlElemU8: {
      uint8_t u;
      std::memcpy(&u, p, 1);
      return u;
    }
    case kFlElemI8: {
      int8_t u;
      std::memcpy(&u, p, 1);
      return u;
    }
    case kFlElemI16: {
      int16_t u;
      std::memcpy(&u, p, 2);
      return u;
    }
    case kFlElemI32: {
      int32_t u;
      std::memcpy(&u, p, 4);
      return u;
    }
    default: {
      int64_t u;
      std::memcpy(&u, p, 8);
      return static_cast<double>(u);
    }
  }
}

inline int acc_code(int input) { return input == kFlElemF64 ? kFlElemF64 : kFlElemF32; }
inline double acc_round(int input, double v) { return input == kFlElemF64 ? v : static_cast<double>(static_cast<float>(v)); }

// A broadcast table tab[(i / div) % mod] in acc_t, in each of Table::at's paths.
enum Layout { kAbsent, kScalar, kFull, kInner, kOuter, kWide, kNumLayouts };
const char* const kLayoutNames[] = {"absent", "scalar", "full", "inner", "outer", "wide"};

struct Table {
  std::vector<unsigned char> bytes;  // exactly the table's size (ASan sees a read past it)
  std::vector<double> vals;          // as stored
  int64_t div = 1, mod = 1;
  const void* ptr() const { return vals.empty() ? nullptr : bytes.data(); }
  double at(int64_t i) const { return vals.empty() ? 1.0 : vals[static_cast<size_t>((i / div) % mod)]; }
};

inline Table make_table(Layout l, int64_t n, int input, double lo, double hi, double zero_frac) {
  Table t;
  int64_t size = 0;
  switch (l) {
    case kAbsent:
      return t;
    case kScalar:
      size = 1;
      break;
    case kFull:
      t.mod = n;
      size = n;
      break;
    case kInner:
      t.mod = 7;
      size = 7;
      break;
    case kOuter:
      t.div = 5;
      t.mod = (n + 4) / 5;
      size = t.mod;
      break;
    default:  // kWide: mod > UINT32_MAX takes the 64-bit division
      t.div = 3;
      t.mod = int64_t(1) << 33;
      size = (n + 2) / 3;
      break;
  }
  const int code = acc_code(input);
  t.bytes.assign(static_cast<size_t>(size) * dsize(code), 0);
  for (int64_t k = 0; k < size; ++k) {
    const double v = uniform(0.0, 1.0) < zero_frac ? 0.0 : uniform(lo, hi);
    put(code, t.bytes.data(), static_cast<size_t>(k), v);
    t.vals.push_back(get(code, t.bytes.data(), static_cast<size_t>(k)));
  }
  return t;
}
}  // namespace flsim_elem
