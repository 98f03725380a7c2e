// The torch side of the elementwise loss ops (binary_focal_fwd, pointwise_fwd), shared by their CPU
// ops and CUDA bindings. Every such op: one pass over the flattened input computes, per element, the
// weighted loss (stored for reduction "none"), d loss / dx (stored when compute_grad) and whether
// the element counts for SUM_BY_NONZERO_WEIGHTS; the backend reduces sums and counts in partials
// (per chunk on the CPU, per block on the GPU) and the op returns (loss, grad, scale):
//   loss   the input's shape for reduction none, else 0-d, in the input's dtype;
//   grad   d(sum of the unreduced losses) / d input, unscaled (an empty [0] without compute_grad);
//   scale  0-d in the accumulation dtype: 1 for none and sum, 1/N for mean (0 when N = 0; the loss
//          is then 0 / 0 = NaN, as torch's mean), 1/count for SBNZ (0, and loss 0, when count = 0).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include <cstdint>
#include <tuple>

#include "checks.h"

namespace fusedloss {
namespace elementwise {

enum Reduction : int64_t { kNone = 0, kSum = 1, kMean = 2, kSBNZ = 3 };

using Result = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

inline void check_reduction(int64_t reduction) {
  CHECK_ARG(reduction >= kNone && reduction <= kSBNZ,
            "reduction must be 0 (none), 1 (sum), 2 (mean) or 3 (SBNZ), got ", reduction);
}

// The tensors one call works on: the contiguous operands, the outputs, and the weight table
// (weight[(i / w_div) % w_mod] for flattened element i; undefined when absent).
struct Tensors {
  at::Tensor x, t;
  at::Tensor w;
  at::Tensor loss_elem;  // input-shaped for reduction none, else undefined
  at::Tensor grad;       // input-shaped with compute_grad, else empty [0]
  int64_t numel = 0;
  int64_t w_div = 1, w_mod = 1;
  int64_t reduction = kNone;
  bool compute_grad = false;
  at::ScalarType acc = at::kFloat;
};

// `w` and `layout` as check_broadcast_table returned and checked them.
inline Tensors prepare(const at::Tensor& input, const at::Tensor& target, const at::Tensor& w,
                       at::IntArrayRef layout, int64_t reduction, bool compute_grad) {
  Tensors e;
  e.x = input.contiguous();
  e.t = target.contiguous();
  e.w = w;
  e.numel = e.x.numel();
  e.w_div = layout[0];
  e.w_mod = layout[1];
  e.reduction = reduction;
  e.compute_grad = compute_grad;
  e.acc = opmath_dtype(input.scalar_type());
  if (reduction == kNone) e.loss_elem = at::empty(e.x.sizes(), e.x.options());
  e.grad = compute_grad ? at::empty(e.x.sizes(), e.x.options()) : input.new_empty({0});
  return e;
}

// The result from the host-side totals (the CPU backends).
inline Result finish_host(const Tensors& e, double sum, int64_t count) {
  const at::TensorOptions acc_opts = e.x.options().dtype(e.acc);
  if (e.reduction == kNone) return {e.loss_elem, e.grad, at::scalar_tensor(1.0, acc_opts)};
  double value = sum, scale = 1.0;
  if (e.reduction == kMean) {
    value = sum / static_cast<double>(e.numel);  // 0 / 0 = NaN for an empty input, as torch's mean
    scale = e.numel > 0 ? 1.0 / static_cast<double>(e.numel) : 0.0;
  } else if (e.reduction == kSBNZ) {
    value = count > 0 ? sum / static_cast<double>(count) : 0.0;
    scale = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
  }
  return {at::scalar_tensor(value, e.x.options()), e.grad, at::scalar_tensor(scale, acc_opts)};
}

// The result from per-block partials (double [2, num_blocks]: sums, then counts) on the device,
// with torch ops only: no .item(), no host sync (the CUDA backends).
inline Result finish_device(const Tensors& e, const at::Tensor& partials) {
  const at::TensorOptions acc_opts = e.x.options().dtype(e.acc);
  if (e.reduction == kNone) return {e.loss_elem, e.grad, at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  const at::Tensor totals = partials.sum(1);
  const at::Tensor sum = totals.select(0, 0);
  at::Tensor loss, scale;
  if (e.reduction == kSum) {
    loss = sum;
    scale = at::full(at::IntArrayRef{}, 1.0, acc_opts);
  } else if (e.reduction == kMean) {
    loss = sum.div(static_cast<double>(e.numel));  // 0 / 0 = NaN for an empty input, as torch's mean
    scale = at::full(at::IntArrayRef{}, e.numel > 0 ? 1.0 / static_cast<double>(e.numel) : 0.0, acc_opts);
  } else {  // SBNZ: sum / count, and 0 (value and scale) when the count is 0
    const at::Tensor count = totals.select(0, 1);
    const at::Tensor any = count.gt(0);
    const at::Tensor denom = count.clamp_min(1.0);
    const at::Tensor zero = at::zeros_like(sum);
    loss = at::where(any, sum.div(denom), zero);
    scale = at::where(any, denom.reciprocal(), zero).to(e.acc);
  }
  // copy=true: for float64 input `loss` may still be a view of `totals` (two elements of storage).
  return {loss.to(e.x.scalar_type(), /*non_blocking=*/false, /*copy=*/true), e.grad, scale};
}

}  // namespace elementwise
}  // namespace fusedloss
