// CUDA implementations of fusedloss::pairwise_fwd and fusedloss::pairwise_ohem_hist (schemas:
// fusedloss/ops/_library.py): checks, allocation and stream here, the kernel behind the torch-free
// launcher in pairwise_cuda.cu. Nothing is read on the host: select / state go to the kernel as
// device pointers, and the reduction of the per-block partials finishes with torch ops on the device
// (no .item(), no sync). The session ranges are not checked here (that would need a sync); the
// kernel clamps them to [0, B), and the cpu op checks them.
//
// float32 SBNZ PAIR_WISE / PAIRWISE_LOGISTIC under the symmetric schedule runs the lean kernel of
// pairwise_sbnz_cuda.cu instead (fusedloss_pairwise_sbnz_applies); everything else pairwise_cuda.cu.
//
// Schedule (pairwise_cuda.cu): the symmetric one (each pair evaluated once, the column items'
// gradient shares added with float atomics) by default; under torch.use_deterministic_algorithms(True)
// (at::globalContext().deterministicAlgorithms(), warn_only included) the two-sided one, which
// evaluates each pair from both sides and writes every gradient element once: bitwise reproducible.
// Both ops read the flag, so the histogram passes and the final pass of one OHEM selection use the
// same schedule, hence the same compiled pair evaluation (unless the flag changes in between).
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "../common/cuda_device.h"
#include "pairwise_checks.h"
#include "pairwise_cuda.h"

namespace fusedloss {
namespace pairwise {
namespace {

// Second-line checks shared by both ops (the Python layer validated first).
void check_inputs(const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
                  const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind,
                  int64_t flags, double temperature, double gamma, double alpha) {
  CHECK_CUDA(scores);
  check_pairwise_args(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
}

// An int64 [5] select / state tensor (the OHEM key's kOhemWords words, then the enabled / done
// flag) on the scores' device, contiguous (a device copy if needed).
at::Tensor check_words(const at::Tensor& t, const at::Tensor& scores, const char* name) {
  constexpr int64_t kNumel = kOhemWords + 1;
  TORCH_CHECK(t.device() == scores.device(), name, " must be on ", scores.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kLong && t.numel() == kNumel, name, " must be int64 with ", kNumel,
              " elements, got ", t.scalar_type(), " ", t.sizes());
  return t.contiguous();
}

// The kernel's schedule: symmetric unless deterministic algorithms are requested.
bool use_symmetric() {
  return !at::globalContext().deterministicAlgorithms();
}

PairwiseLaunchArgs make_args(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& weight,
                             const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi,
                             int64_t kind, int64_t flags, double temperature, double margin, double hinge_margin,
                             double gamma, double alpha) {
  PairwiseLaunchArgs a{};
  a.scores = scores.data_ptr();
  a.labels = labels.data_ptr();
  a.weight = weight.defined() ? weight.data_ptr() : nullptr;
  a.weight_numel = weight.defined() ? weight.numel() : 0;
  a.order = order.data_ptr<int64_t>();
  a.seg_lo = seg_lo.data_ptr<int64_t>();
  a.seg_hi = seg_hi.data_ptr<int64_t>();
  a.n = scores.numel();
  a.kind = kind;
  a.flags = flags;
  a.temperature = temperature;
  a.margin = margin;
  a.hinge_margin = hinge_margin;
  a.gamma = gamma;
  a.alpha = alpha;
  a.dtype = scores.scalar_type() == at::kDouble ? kPairwiseF64 : kPairwiseF32;
  a.num_blocks = fusedloss_pairwise_num_blocks(a.n);
  a.symmetric = use_symmetric() ? 1 : 0;
  a.col_splits = fusedloss_pairwise_col_splits(a.n, a.symmetric, sm_count(scores.device().index()));
  return a;
}

void launch(const PairwiseLaunchArgs& a, const at::Tensor& scores, const char* op, bool lean = false) {
  if (a.n == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(scores.device().index()).stream();
  const int rc = lean ? fusedloss_pairwise_sbnz_cuda(&a, stream) : fusedloss_pairwise_cuda(&a, stream);
  TORCH_CHECK(rc == 0, op, " (cuda): launch failed: ",
              rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments", " (code ", rc,
              ")");
}

at::Tensor defined_or_empty(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? *t : at::Tensor();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_fwd_cuda(
    const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
    const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags,
    double temperature, double margin, double hinge_margin, double gamma, double alpha,
    const std::optional<at::Tensor>& select, bool compute_grad) {
  check_inputs(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
  const c10::cuda::CUDAGuard device_guard(scores.device());
  const bool has_select = select.has_value() && select->defined();
  const at::Tensor sel = has_select ? check_words(*select, scores, "select") : at::Tensor();
  const int64_t n = scores.numel();
  const at::TensorOptions opts = scores.options();
  PairwiseLaunchArgs a = make_args(scores, labels, defined_or_empty(weight), order, seg_lo, seg_hi, kind, flags,
                                   temperature, margin, hinge_margin, gamma, alpha);
  // Symmetric: the kernel only adds to grad (atomics), so it starts from zeros. Two-sided: every row
  // writes its whole gradient (0 when nothing contributes), so empty is enough.
  at::Tensor grad = scores.new_empty({0});
  if (compute_grad) grad = a.symmetric != 0 ? at::zeros({n}, opts) : at::empty({n}, opts);
  a.mode = has_select ? kPairwiseSelect : kPairwiseSbnz;
  // float32 SBNZ PAIR_WISE / LOGISTIC, symmetric: the lean kernel (pairwise_sbnz_cuda.cu), one block
  // of one warp per 16 rows; its partials have the same [2, blocks] layout.
  const bool lean = fusedloss_pairwise_sbnz_applies(a.dtype, a.mode, kind, a.symmetric, n) != 0;
  if (lean) {
    a.num_blocks = fusedloss_pairwise_sbnz_blocks(n);
    a.col_splits = 1;
  }
  const int64_t n_blocks = static_cast<int64_t>(a.num_blocks) * a.col_splits;
  at::Tensor partials = at::empty({2, n_blocks}, opts.dtype(at::kDouble));
  a.words = has_select ? sel.data_ptr<int64_t>() : nullptr;
  a.grad = compute_grad ? grad.data_ptr() : nullptr;
  a.partials = partials.data_ptr<double>();
  launch(a, scores, "pairwise_fwd", lean);

  // [2, blocks] -> the loss sum and the count, in double, on the device.
  const at::Tensor totals = partials.sum(1);
  const at::Tensor sum = totals.select(0, 0);
  const at::Tensor count = totals.select(0, 1);
  const at::Tensor any = count.gt(0);
  const at::Tensor zero = at::zeros_like(sum);
  // OHEM: the mean of the survivors, 0 / 0 = NaN when there are none; SBNZ: 0 then.
  const at::Tensor loss = has_select ? sum.div(count) : at::where(any, sum.div(count.clamp_min(1.0)), zero);
  const at::Tensor scale = at::where(any, count.clamp_min(1.0).reciprocal(), zero);
  // copy=true: for float64 the results may still be views of `totals`.
  return {loss.to(scores.scalar_type(), /*non_blocking=*/false, /*copy=*/true), grad,
          scale.to(scores.scalar_type(), /*non_blocking=*/false, /*copy=*/true)};
}

at::Tensor pairwise_ohem_hist_cuda(const at::Tensor& scores, const at::Tensor& labels,
                                   const std::optional<at::Tensor>& weight, const at::Tensor& order,
                                   const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags,
                                   double temperature, double margin, double hinge_margin, double gamma,
                                   double alpha, const at::Tensor& state, int64_t digit) {
  check_inputs(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
  CHECK_ARG(digit >= 0 && digit < kOhemDigits, "digit must be in [0, ", kOhemDigits, "), got ", digit);
  const c10::cuda::CUDAGuard device_guard(scores.device());
  const at::Tensor st = check_words(state, scores, "state");
  // Zeros: the kernel only adds to it, and leaves it untouched once state[4] != 0 (done).
  at::Tensor hist = at::zeros({kPairwiseHistBins}, scores.options().dtype(at::kLong));
  PairwiseLaunchArgs a = make_args(scores, labels, defined_or_empty(weight), order, seg_lo, seg_hi, kind, flags,
                                   temperature, margin, hinge_margin, gamma, alpha);
  a.words = st.data_ptr<int64_t>();
  a.hist = reinterpret_cast<unsigned long long*>(hist.data_ptr<int64_t>());
  a.mode = kPairwiseHist;
  a.digit = static_cast<int32_t>(digit);
  launch(a, scores, "pairwise_ohem_hist");
  return hist;
}

}  // namespace
}  // namespace pairwise
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("pairwise_fwd", TORCH_FN(fusedloss::pairwise::pairwise_fwd_cuda));
  m.impl("pairwise_ohem_hist", TORCH_FN(fusedloss::pairwise::pairwise_ohem_hist_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
