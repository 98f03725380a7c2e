// Argument checks for the torch-side (.cpp) op implementations, flash-attn `flash_api.cpp` style:
// every message names the argument. The Python layer raises ValueError/TypeError first; these are
// the second line, so they stay short. Not for .cu files (those are torch-free).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <initializer_list>
#include <optional>

#define CHECK_ARG(cond, ...) TORCH_CHECK(cond, __VA_ARGS__)
#define CHECK_DEVICE(x, dev) \
  TORCH_CHECK((x).device() == (dev), #x " must be on ", (dev), ", got ", (x).device())
#define CHECK_CPU(x) TORCH_CHECK((x).device().is_cpu(), #x " must be a CPU tensor, got ", (x).device())
#define CHECK_CUDA(x) \
  TORCH_CHECK((x).device().is_cuda(), #x " must be a CUDA tensor, got ", (x).device())
#define CHECK_CONTIGUOUS(x) TORCH_CHECK((x).is_contiguous(), #x " must be contiguous")
#define CHECK_SHAPE(x, ...)                                                                    \
  TORCH_CHECK((x).sizes() == at::IntArrayRef({__VA_ARGS__}), #x " must have shape (" #__VA_ARGS__ \
              "), got ", (x).sizes())
#define CHECK_SAME_SHAPE(x, y)                                                                 \
  TORCH_CHECK((x).sizes() == (y).sizes(), #x " must have the shape of " #y " ", (y).sizes(), \
              ", got ", (x).sizes())
#define CHECK_DTYPE(x, dtype) \
  TORCH_CHECK((x).scalar_type() == (dtype), #x " must have dtype ", (dtype), ", got ", (x).scalar_type())
#define CHECK_DTYPE_IN(x, ...)                                                                 \
  TORCH_CHECK(::fusedloss::dtype_in((x).scalar_type(), {__VA_ARGS__}), #x " has unsupported dtype ", \
              (x).scalar_type(), "; expected one of " #__VA_ARGS__)
#define CHECK_NUMEL(x, n) \
  TORCH_CHECK((x).numel() == (n), #x " must have ", (n), " elements, got ", (x).numel())

namespace fusedloss {

inline bool dtype_in(at::ScalarType t, std::initializer_list<at::ScalarType> allowed) {
  for (const auto a : allowed) {
    if (a == t) return true;
  }
  return false;
}

// Accumulation dtype: float64 for float64 inputs, float32 for float32/float16/bfloat16 (house style
// 4.5; a float32-only path fails fp64 gradcheck).
inline at::ScalarType opmath_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// A per-element table read as table[(i / layout[0]) % layout[1]] for flattened element i (the
// "[div, mod]" layout the Python layer computes for broadcast weights). Checks it against `input`
// and returns it contiguous, or an undefined tensor when absent. `name` names the argument.
inline at::Tensor check_broadcast_table(const std::optional<at::Tensor>& table, at::IntArrayRef layout,
                                        const at::Tensor& input, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(layout.size() == 2, name, "_layout must be [div, mod], got ", layout);
  if (!table.has_value() || !table->defined()) return at::Tensor();
  const at::Tensor& t = *table;
  TORCH_CHECK(t.device() == input.device(), name, " must be on the input's device ", input.device(),
              ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, " (the accumulation dtype of ",
              input.scalar_type(), " input), got ", t.scalar_type());
  TORCH_CHECK(layout[0] >= 1, name, "_layout[0] (div) must be >= 1, got ", layout[0]);
  TORCH_CHECK(layout[1] >= 1 || (layout[1] == 0 && input.numel() == 0), name,
              "_layout[1] (mod) must be >= 1, got ", layout[1]);
  TORCH_CHECK(t.numel() == layout[1], name, " must have numel == ", name, "_layout[1] = ", layout[1],
              ", got ", t.numel());
  return t.contiguous();
}

}  // namespace fusedloss
