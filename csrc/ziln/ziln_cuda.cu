// CUDA kernels of fusedloss::ziln_fwd. Torch-free: raw pointers, int64 sizes, an explicit stream
// (ziln_cuda.h); ziln_cuda_binding.cpp turns tensors into ZilnLaunchArgs. The cpu kernel
// (ziln_cpu.cpp) computes the same thing with the same header math (ziln_math.h).
//
// Three launches on the caller's stream, no host sync:
//   0. cudaMemsetAsync of the P counter;
//   1. count_kernel: P = #{labels > 0}, grid-stride, a block reduction per block and one integer
//      atomicAdd per block (integers: exact and deterministic in any order);
//   2. rows_kernel: a thread per row (grid-stride), reading P from the device: row_eval, the four
//      terms added in double per thread, and with a gradient row_grad with inv_b = 1 / B and
//      inv_pos = 1 / (P + 1e-8) rounded to acc_t (as the cpu kernel), stored in the logits' dtype
//      (a uniform runtime test, so that the loss is bitwise the same with and without it);
//      the threads' sums are reduced per block (warp shuffles, then the first warp, in a fixed order)
//      into partials[k * num_blocks + block] (k: cls, reg, mu^2, l_s^2);
//   3. finish_kernel (one warp): each partial row summed in a fixed order, then combine() in double,
//      written as the 0-d loss in the logits' dtype.
// No float atomics anywhere: for a given grid (fixed by B and the SM count) the loss and the
// gradient are bitwise reproducible. Bytes per row: 3 logits + 1 label (+ 3 grads): 16-28 B (fp32).
//
// Instantiated for {float, double, __half, __nv_bfloat16} (rows and finish) and acc_t {float, double}
// (count): 10 kernels.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_launch.cuh"
#include "../common/warp_reduce.cuh"
#include "ziln_cuda.h"
#include "ziln_math.h"

namespace fusedloss {
namespace ziln {
namespace {

constexpr int kThreads = kZilnThreads;
constexpr int kWarp = 32;
constexpr int kWarps = kThreads / kWarp;

template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    count_kernel(const acc_t* __restrict__ y, const int64_t B, unsigned long long* __restrict__ count) {
  long long c = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < B; i += stride) {
    c += y[i] > acc_t(0) ? 1 : 0;
  }
  __shared__ long long warp_counts[kWarps];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  c = warp_sum(c);
  if (lane == 0) warp_counts[warp] = c;
  __syncthreads();
  if (warp == 0) {
    c = lane < kWarps ? warp_counts[lane] : 0;
    c = warp_sum(c);
    if (lane == 0 && c != 0) atomicAdd(count, static_cast<unsigned long long>(c));
  }
}

template <typename scalar_t>
struct RowArgs {
  using acc_t = typename AccOf<scalar_t>::type;
  const scalar_t* __restrict__ x;  // [B, 3]
  const acc_t* __restrict__ y;     // [B]
  scalar_t* __restrict__ grad;     // [B, 3], or nullptr (no gradient)
  double* __restrict__ partials;   // [4, gridDim.x]
  const int64_t* __restrict__ pos_count;
  int64_t B;
  acc_t inv_b;
  Params<acc_t> prm;
};

// The gradient's stores are behind a uniform runtime test, not a template flag: one compiled kernel
// per dtype computes the loss, so it is bitwise the same with and without the gradient.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) rows_kernel(const RowArgs<scalar_t> a) {
  using acc_t = typename AccOf<scalar_t>::type;
  const Params<acc_t> prm = a.prm;
  const acc_t inv_pos = static_cast<acc_t>(1.0 / (static_cast<double>(*a.pos_count) + 1e-8));
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.B; i += stride) {
    const acc_t lp = to_acc<acc_t>(a.x[3 * i]);
    const acc_t mu = to_acc<acc_t>(a.x[3 * i + 1]);
    const acc_t ls = to_acc<acc_t>(a.x[3 * i + 2]);
    const RowOut<acc_t> o = row_eval(lp, mu, ls, a.y[i], prm);
    s0 += static_cast<double>(o.cls);
    s1 += static_cast<double>(o.reg);
    s2 += static_cast<double>(o.mu2);
    s3 += static_cast<double>(o.ls2);
    if (a.grad != nullptr) {
      acc_t g[3];
      row_grad(o, mu, ls, a.inv_b, inv_pos, prm, g);
      a.grad[3 * i] = from_acc<scalar_t>(g[0]);
      a.grad[3 * i + 1] = from_acc<scalar_t>(g[1]);
      a.grad[3 * i + 2] = from_acc<scalar_t>(g[2]);
    }
  }

  // Block reduction: shuffles within each warp, then the first warp over the warps, in a fixed order.
  __shared__ double warp_sums[4][kWarps];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  s0 = warp_sum(s0);
  s1 = warp_sum(s1);
  s2 = warp_sum(s2);
  s3 = warp_sum(s3);
  if (lane == 0) {
    warp_sums[0][warp] = s0;
    warp_sums[1][warp] = s1;
    warp_sums[2][warp] = s2;
    warp_sums[3][warp] = s3;
  }
  __syncthreads();
  if (warp == 0) {
    const bool in = lane < kWarps;
    s0 = warp_sum(in ? warp_sums[0][lane] : 0.0);
    s1 = warp_sum(in ? warp_sums[1][lane] : 0.0);
    s2 = warp_sum(in ? warp_sums[2][lane] : 0.0);
    s3 = warp_sum(in ? warp_sums[3][lane] : 0.0);
    if (lane == 0) {
      a.partials[blockIdx.x] = s0;
      a.partials[gridDim.x + blockIdx.x] = s1;
      a.partials[2 * gridDim.x + blockIdx.x] = s2;
      a.partials[3 * gridDim.x + blockIdx.x] = s3;
    }
  }
}

struct FinishArgs {
  const double* __restrict__ partials;  // [4, num_blocks]
  const int64_t* __restrict__ pos_count;
  int64_t B;
  int32_t num_blocks;
  double class_weight, reg_weight, mu_reg, sigma_reg;
};

// One warp: lane l sums partials l, l + 32, ... of each term, then a shuffle tree; fixed order.
template <typename scalar_t>
__global__ void __launch_bounds__(kWarp) finish_kernel(const FinishArgs f, scalar_t* __restrict__ loss) {
  using acc_t = typename AccOf<scalar_t>::type;
  const int lane = threadIdx.x;
  double s[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    double t = 0;
    for (int b = lane; b < f.num_blocks; b += kWarp) t += f.partials[k * f.num_blocks + b];
    s[k] = warp_sum(t);
  }
  if (lane == 0) {
    const double v = combine(s[0], s[1], s[2], s[3], static_cast<double>(f.B), static_cast<double>(*f.pos_count),
                             f.class_weight, f.reg_weight, f.mu_reg, f.sigma_reg);
    *loss = from_acc<scalar_t>(static_cast<acc_t>(v));
  }
}

template <typename scalar_t>
int launch(const ZilnLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  cudaError_t err = cudaMemsetAsync(a.pos_count, 0, sizeof(int64_t), stream);
  if (err != cudaSuccess) return static_cast<int>(err);
  launch_kernel(count_kernel<acc_t>, a.num_blocks, kThreads, 0, stream, static_cast<const acc_t*>(a.labels), a.B,
                reinterpret_cast<unsigned long long*>(a.pos_count));
  err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);

  RowArgs<scalar_t> r;
  r.x = static_cast<const scalar_t*>(a.logits);
  r.y = static_cast<const acc_t*>(a.labels);
  r.grad = static_cast<scalar_t*>(a.grad);
  r.partials = a.partials;
  r.pos_count = a.pos_count;
  r.B = a.B;
  r.inv_b = static_cast<acc_t>(1.0 / static_cast<double>(a.B));
  r.prm.max_sigma = static_cast<acc_t>(a.max_sigma);
  r.prm.sigma_min = sigma_min_default<acc_t>();
  r.prm.class_weight = static_cast<acc_t>(a.class_weight);
  r.prm.reg_weight = static_cast<acc_t>(a.reg_weight);
  r.prm.mu_reg = static_cast<acc_t>(a.mu_reg);
  r.prm.sigma_reg = static_cast<acc_t>(a.sigma_reg);
  launch_kernel(rows_kernel<scalar_t>, a.num_blocks, kThreads, 0, stream, r);
  err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);

  FinishArgs f;
  f.partials = a.partials;
  f.pos_count = a.pos_count;
  f.B = a.B;
  f.num_blocks = a.num_blocks;
  f.class_weight = a.class_weight;
  f.reg_weight = a.reg_weight;
  f.mu_reg = a.mu_reg;
  f.sigma_reg = a.sigma_reg;
  launch_kernel(finish_kernel<scalar_t>, 1, kWarp, 0, stream, f, static_cast<scalar_t*>(a.loss));
  return static_cast<int>(cudaGetLastError());
}

bool args_ok(const ZilnLaunchArgs* a) {
  if (a == nullptr || a->B < 0) return false;
  if (a->B == 0) return true;
  if (a->logits == nullptr || a->labels == nullptr || a->loss == nullptr || a->partials == nullptr ||
      a->pos_count == nullptr) {
    return false;
  }
  if (a->num_blocks <= 0 || a->num_blocks > fusedloss_ziln_num_blocks(a->B, 1 << 20)) return false;
  return a->max_sigma > sigma_min_default<double>();  // false for NaN too
}

}  // namespace
}  // namespace ziln
}  // namespace fusedloss

extern "C" int fusedloss_ziln_fwd_cuda(const ZilnLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::ziln;
  if (!args_ok(args)) return kZilnBadArgs;
  const ZilnLaunchArgs& a = *args;
  if (a.B == 0) return 0;
  switch (a.dtype) {
    case kZilnF32:
      return launch<float>(a, stream);
    case kZilnF64:
      return launch<double>(a, stream);
    case kZilnF16:
      return launch<__half>(a, stream);
    case kZilnBF16:
      return launch<__nv_bfloat16>(a, stream);
    default:
      return kZilnBadDType;
  }
}
