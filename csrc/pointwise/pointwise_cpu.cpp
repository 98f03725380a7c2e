// CPU kernel of fusedloss::pointwise_fwd (schema: fusedloss/ops/_library.py).
//
// One pass over the flattened input computes, per element, pointwise_elem (pointwise_math.h) times
// the element's weight w: the loss (stored for reduction "none"), d loss / dx (stored when
// compute_grad), and [w != 0], whose sum is the SBNZ denominator. The chunks, tiles, conversions,
// broadcast weights and the deterministic reduction are the shared elementwise driver's
// (common/cpu_elementwise.h); this file is the loop over one tile.
//
// Speed. The loop is specialised at compile time on the kind, so that the switch of pointwise_elem
// folds away and GCC if-converts and vectorises the body (exp/log/log1p/tanh through libmvec, see
// cpu_vector.h); it is compiled three times (x86-64 baseline, AVX2+FMA, AVX-512) and picked at run
// time: 2 acc types x 13 kinds x 3 ISAs = 78 loops.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>

#include "../common/checks.h"
#include "../common/cpu_elementwise.h"
#include "../common/cpu_vector.h"
#include "pointwise_checks.h"
#include "pointwise_math.h"

namespace fusedloss {
namespace pointwise {
namespace {

namespace ew = ::fusedloss::elementwise;

// pointwise_elem specialised on the kind, times the element's weight; counted where w != 0.
template <typename acc_t_, int kKind>
struct Elem {
  using acc_t = acc_t_;
  using Prm = acc_t;  // the kind's parameter
  static FL_ALWAYS_INLINE ew::LoopOut<acc_t> elem(acc_t x, acc_t t, acc_t w, acc_t, const acc_t& param) {
    const ElemOut<acc_t> o = pointwise_elem<acc_t, kKind>(kKind, x, t, param);
    return {w * o.loss, w * o.grad, w};
  }
};

template <typename acc_t>
using TileFn = typename ew::TileKernel<Elem<acc_t, 0>>::Sig*;

// The loop of `kind` for `isa`.
template <typename acc_t, int... K>
TileFn<acc_t> pick_loop(int64_t kind, Isa isa, std::integer_sequence<int, K...>) {
  TileFn<acc_t> fn = nullptr;
  ((kind == K ? void(fn = ew::TileKernel<Elem<acc_t, K>>::pick(isa)) : void()), ...);
  return fn;
}

template <typename scalar_t>
void pointwise_cpu_impl(const ew::Tensors& e, ew::ChunkPartials& p, int64_t kind, double param) {
  using acc_t = at::opmath_type<scalar_t>;
  const TileFn<acc_t> fn = pick_loop<acc_t>(kind, cpu_isa(), std::make_integer_sequence<int, kNumKinds>{});
  const acc_t a = static_cast<acc_t>(param);
  ew::run_tiles<scalar_t, scalar_t>(e, p, [&](ew::Tile<acc_t>& tile, int64_t, ew::TileScratch<acc_t>&, acc_t* s,
                                               acc_t* c) { fn(tile, a, s, c); });
}

ew::Result pointwise_fwd_cpu(const at::Tensor& input, const at::Tensor& target,
                             const std::optional<at::Tensor>& weight, int64_t kind, double param,
                             int64_t reduction, at::IntArrayRef weight_layout, bool compute_grad) {
  CHECK_CPU(input);
  const at::Tensor w = check_pointwise_args(input, target, weight, kind, param, reduction, weight_layout);
  const ew::Tensors e = ew::prepare(input, target, w, weight_layout, reduction, compute_grad);
  ew::ChunkPartials p(e.numel);
  if (e.numel > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, e.x.scalar_type(), "pointwise_fwd_cpu",
                                    [&] { pointwise_cpu_impl<scalar_t>(e, p, kind, param); });
  }
  return ew::finish_chunks(e, p);
}

}  // namespace
}  // namespace pointwise
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("pointwise_fwd", TORCH_FN(fusedloss::pointwise::pointwise_fwd_cpu));
}
