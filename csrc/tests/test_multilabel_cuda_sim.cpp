// The CUDA multilabel categorical cross-entropy kernels themselves (multilabel_cuda.cu: the dense
// multilabel_ce_kernel and the sparse sparse_multilabel_ce_kernel), run on the CPU by the emulator of
// csrc/tests/cuda_sim through their extern "C" launchers, against a direct long-double evaluation of
// the per-row formulas of spec section 10 (as multilabel_math.h's header states them, -inf entries
// absent, class counts as positive weights): loss = log(1 + sum wn e^s) + log(1 + sum wp e^-s), and
// d loss / d s = wn e^s / (1 + N) - wp e^-s / (1 + P), with the stored inputs and labels rounded as
// the kernel reads them. Run by ctest; exits nonzero on any failure. What a GPU run adds is timing and
// the last bits of the device's exp / log; the row grouping (a warp per row up to 512 classes, a
// 256- or 512-thread block above), the strided loops, the warp and shared-memory merges, the index
// staging and binary searches are the kernels' own code here.
//
//  1. Dense sizes: float32 and float64 inputs with soft float labels and hard int64 / uint8 labels,
//     C = 1, 31, 32, 33, 200, 512 (warp rows), 513, 1000, 4096 (256-thread block rows), 4097 (512),
//     rows 1 to 17 (around the 8 rows of a warp-row block, several blocks); with and without the
//     gradient. Every row loss (1e-6 of |N| + |P| + 1 in float32, 1e-14 in float64), every gradient
//     element (3e-6 / 1e-13 of the sum of its two shares' magnitudes, plus a denormal floor), and the
//     binding's finished reduction (none / sum / mean in double, cast to the input dtype as
//     multilabel_cuda_binding.cpp does) against the truth's.
//  2. Dense dtype matrix: each of the 4 input dtypes x 9 target dtypes (float, double, half, bfloat16
//     soft labels; uint8, int8, int16, int32, int64 hard ones), alternately warp rows (9 x 33) and
//     block rows (2 x 600), so that each input and each target dtype runs on both. Half / bfloat16
//     inputs: the truth from the rounded inputs, the gradient within the rounding of its stored type
//     (2^-11 / 2^-8 relative, plus half's subnormal spacing), the row loss (float) as in float32.
//  3. Dense special rows: -inf logits (absent: no term, gradient 0), a row all -inf (loss 0), huge
//     logits (+-1e4, whose e^s overflows even in float64 without the shift, and +-60), for every
//     input dtype.
//  4. Sparse sizes and options: all 4 input dtypes, mask_zero off / on, K = 0, 1, a few, K > C, K =
//     4096 (the largest staged in shared memory) and 4097 (block rows reading global memory), sorted
//     rows with duplicates, out-of-range indices (negative, >= C) and padding zeros; C from 1 to 4097
//     (warp rows, 256- and 512-thread block rows). Loss, gradient and finished reduction as in 1 / 2.
//  5. Unsorted sparse rows: documented as wrong values but no out-of-bounds access; run (under ASan
//     in the _asan build) and the losses only checked to be finite.
//  6. Empty inputs: N = 0 launches nothing (outputs untouched, 0 returned, even with bad dtypes);
//     C = 0 with null input gives loss 0 per row; sparse K = 0 with a null index.
//  7. Launch arguments the launchers reject: null args, negative N / C / K (kMultilabelBadArgs), null
//     row_loss / input / target / positive_index, bad input dtype (kMultilabelBadInputDType), bad
//     target dtype (kMultilabelBadTargetDType), a grid too large for gridDim.y (kMultilabelBadArgs,
//     nothing launched); the sparse launcher ignores target_dtype.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "check.h"
#include "sim_data.h"
#include "../multilabel/multilabel_cuda.h"

using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::randint;
using flsim::uniform;


const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- Stored element types --------------------------------------------------------------------------
using flsim::load;
using flsim::store;

template <typename T>
int32_t code_of() {
  if (std::is_same<T, float>::value) return kMultilabelF32;
  if (std::is_same<T, double>::value) return kMultilabelF64;
  if (std::is_same<T, __half>::value) return kMultilabelF16;
  if (std::is_same<T, __nv_bfloat16>::value) return kMultilabelBF16;
  if (std::is_same<T, uint8_t>::value) return kMultilabelU8;
  if (std::is_same<T, int8_t>::value) return kMultilabelI8;
  if (std::is_same<T, int16_t>::value) return kMultilabelI16;
  if (std::is_same<T, int32_t>::value) return kMultilabelI32;
  return kMultilabelI64;
}

template <typename T>
const char* name_of() {
  static const char* const names[] = {"f32", "f64", "f16", "bf16", "u8", "i8", "i16", "i32", "i64"};
  return names[code_of<T>()];
}

template <typename scalar_t>
using acc_of = typename std::conditional<std::is_same<scalar_t, double>::value, double, float>::type;

// Tolerances of one input dtype: the accumulation's, of the loss (relative to its terms' size) and of
// the gradient before it is stored (relative to its two shares' size), about ten times the largest
// error seen; and the rounding of a stored gradient / finished loss, with its smallest spacing.
struct Tol {
  double loss, grad, store, floor;
};

template <typename scalar_t>
Tol tol_of() {
  if (std::is_same<scalar_t, double>::value) return Tol{1e-14, 1e-13, 0.0, 1e-300};
  if (std::is_same<scalar_t, float>::value) return Tol{1e-6, 3e-6, 0.0, 1e-37};
  if (std::is_same<scalar_t, __half>::value) return Tol{1e-6, 3e-6, std::ldexp(1.0, -11), std::ldexp(1.0, -25)};
  return Tol{1e-6, 3e-6, std::ldexp(1.0, -8), 1e-37};
}

// ---- Truth ----------------------------------------------------------------------------------------
// Per row: weights wn, wp on e^{s} and e^{-s} (entries with s = -inf absent), in long double.
struct Truth {
  // scale: |N| + |P| + 1 per row, the size of the loss's terms; grad_abs: the sum of the magnitudes of
  // an element's two shares (soft labels give a difference of the two).
  std::vector<double> loss, scale, grad, grad_abs;
};

void truth_row(const double* x, const double* wn, const double* wp, int64_t c, Truth& t) {
  long double mn = 0, mp = 0;
  for (int64_t i = 0; i < c; ++i) {
    if (x[i] == -kInf) continue;
    if (wn[i] > 0) mn = std::max(mn, static_cast<long double>(x[i]));
    if (wp[i] > 0) mp = std::max(mp, -static_cast<long double>(x[i]));
  }
  long double sn = std::exp(-mn), sp = std::exp(-mp);
  for (int64_t i = 0; i < c; ++i) {
    if (x[i] == -kInf) continue;
    if (wn[i] > 0) sn += wn[i] * std::exp(static_cast<long double>(x[i]) - mn);
    if (wp[i] > 0) sp += wp[i] * std::exp(-static_cast<long double>(x[i]) - mp);
  }
  const long double n = mn + std::log(sn), p = mp + std::log(sp);
  t.loss.push_back(static_cast<double>(n + p));
  t.scale.push_back(static_cast<double>(std::fabs(n) + std::fabs(p) + 1));
  for (int64_t i = 0; i < c; ++i) {
    long double gn = 0, gp = 0;
    if (x[i] != -kInf && wn[i] > 0) gn = wn[i] * std::exp(static_cast<long double>(x[i]) - mn) / sn;
    if (x[i] != -kInf && wp[i] > 0) gp = wp[i] * std::exp(-static_cast<long double>(x[i]) - mp) / sp;
    t.grad.push_back(static_cast<double>(gn - gp));
    t.grad_abs.push_back(static_cast<double>(gn + gp));
  }
}

// ---- Launch, finish, compare ----------------------------------------------------------------------
struct Out {
  int rc = 0;
  std::vector<double> loss, grad;  // grad: empty without compute_grad
};

// The binding's finish(): reduction 0 (none): row_loss cast to the input dtype; 1 (sum) / 2 (mean):
// the double sum of row_loss (over n), cast to it.
template <typename scalar_t>
std::vector<double> finish(const std::vector<double>& row_loss, int reduction) {
  std::vector<double> r;
  if (reduction == 0) {
    for (double v : row_loss) r.push_back(load(store<scalar_t>(v)));
    return r;
  }
  double total = 0.0;
  for (double v : row_loss) total += v;
  if (reduction == 2) total /= static_cast<double>(row_loss.size());
  r.push_back(load(store<scalar_t>(total)));
  return r;
}

template <typename scalar_t>
void compare(const Out& got, const Truth& want, int64_t rows, int64_t cols, bool grad, int reduction,
             const char* ctx) {
  const Tol tol = tol_of<scalar_t>();
  expect(got.rc == 0, "launch status", got.rc, 0, ctx);
  if (got.rc != 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    const size_t i = static_cast<size_t>(r);
    expect_close("row loss", got.loss[i], want.loss[i], 0.0, tol.loss * want.scale[i], ctx);
  }
  // The finished loss: the rows' errors add up, then the cast to the input dtype rounds.
  const std::vector<double> fin = finish<scalar_t>(got.loss, reduction);
  std::vector<double> wfin = want.loss, wscale = want.scale;
  if (reduction != 0) {
    double tl = 0.0, ts = 0.0;
    for (size_t i = 0; i < want.loss.size(); ++i) {
      tl += want.loss[i];
      ts += want.scale[i];
    }
    const double div = reduction == 2 ? static_cast<double>(rows) : 1.0;
    wfin.assign(1, tl / div);
    wscale.assign(1, ts / div);
  }
  for (size_t i = 0; i < fin.size(); ++i) {
    expect_close("finished loss", fin[i], wfin[i], tol.store, tol.loss * wscale[i] + tol.floor, ctx);
  }
  if (!grad) return;
  for (int64_t e = 0; e < rows * cols; ++e) {
    const size_t i = static_cast<size_t>(e);
    expect_close("grad", got.grad[i], want.grad[i], tol.store, tol.grad * want.grad_abs[i] + tol.floor, ctx);
  }
}

template <typename scalar_t, typename target_t>
Out run_dense(const std::vector<scalar_t>& x, const std::vector<target_t>& t, int64_t rows, int64_t cols, bool grad) {
  using acc_t = acc_of<scalar_t>;
  std::vector<acc_t> row_loss(static_cast<size_t>(rows), static_cast<acc_t>(kNaN));  // every row written
  std::vector<scalar_t> g(grad ? static_cast<size_t>(rows * cols) : 0, store<scalar_t>(kNaN));
  MultilabelLaunchArgs a{};
  a.input = x.data();
  a.target = t.data();
  a.row_loss = row_loss.data();
  a.grad = grad ? g.data() : nullptr;
  a.n_rows = rows;
  a.n_cols = cols;
  a.input_dtype = code_of<scalar_t>();
  a.target_dtype = code_of<target_t>();
  Out out;
  out.rc = fusedloss_multilabel_ce_fwd_cuda(&a, nullptr);
  for (acc_t v : row_loss) out.loss.push_back(static_cast<double>(v));
  for (scalar_t v : g) out.grad.push_back(load(v));
  return out;
}

enum Logits { kPlain, kSpecial };

// One dense case: random logits (kSpecial: rows of -inf entries, all -inf, huge logits), labels of
// target_t (soft for floating types, 0 / 1 otherwise).
template <typename scalar_t, typename target_t>
void dense_case(int64_t rows, int64_t cols, bool grad, int reduction, Logits logits = kPlain) {
  using acc_t = acc_of<scalar_t>;
  const bool soft = std::is_floating_point<target_t>::value || std::is_same<target_t, __half>::value ||
                    std::is_same<target_t, __nv_bfloat16>::value;
  std::vector<scalar_t> x;
  std::vector<target_t> t;
  std::vector<double> xs, wn, wp;  // as the kernel reads them
  for (int64_t r = 0; r < rows; ++r) {
    const int kind = logits == kSpecial ? static_cast<int>(r % 4) : -1;  // 0: some -inf, 1: all, 2: 1e4, 3: 60
    for (int64_t c = 0; c < cols; ++c) {
      double v = uniform(-6.0, 6.0);
      if (kind == 0 && randint(0, 2) == 0) v = -kInf;
      if (kind == 1) v = -kInf;
      if (kind == 2) v = (randint(0, 1) ? 1.0 : -1.0) * (1e4 + uniform(-8.0, 8.0));
      if (kind == 3) v = randint(0, 1) ? 60.0 + uniform(-3.0, 3.0) : -60.0 + uniform(-3.0, 3.0);
      double y = static_cast<double>(randint(0, 1));
      if (soft && randint(0, 2) == 0) y = uniform(0.0, 1.0);
      x.push_back(store<scalar_t>(v));
      t.push_back(store<target_t>(y));
      const double xv = static_cast<double>(static_cast<acc_t>(load(x.back())));
      const double yv = static_cast<double>(static_cast<acc_t>(load(t.back())));
      xs.push_back(xv);
      wn.push_back(xv == -kInf ? 0.0 : 1.0 - yv);
      wp.push_back(xv == -kInf ? 0.0 : yv);
    }
  }
  Truth want;
  for (int64_t r = 0; r < rows; ++r) {
    const size_t o = static_cast<size_t>(r * cols);
    truth_row(xs.data() + o, wn.data() + o, wp.data() + o, cols, want);
  }
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "dense %s/%s rows %lld C %lld grad %d reduction %d%s", name_of<scalar_t>(),
                name_of<target_t>(), static_cast<long long>(rows), static_cast<long long>(cols), grad, reduction,
                logits == kSpecial ? " special" : "");
  compare<scalar_t>(run_dense<scalar_t, target_t>(x, t, rows, cols, grad), want, rows, cols, grad, reduction, ctx);
}

struct Shape {
  int64_t rows, cols;
};

const Shape kDenseShapes[] = {{1, 1},  {3, 31},  {9, 32},   {8, 33},   {17, 200},
                              {5, 512}, {2, 513}, {2, 1000}, {1, 4096}, {2, 4097}};

void dense_sizes() {
  int i = 0;
  for (const Shape& s : kDenseShapes) {
    const bool grad = i % 3 != 2;
    const int red = i % 3;
    dense_case<float, float>(s.rows, s.cols, grad, red);
    dense_case<double, double>(s.rows, s.cols, grad, (red + 1) % 3);
    if (i % 2 == 0) {
      dense_case<float, int64_t>(s.rows, s.cols, !grad, (red + 2) % 3);
    } else {
      dense_case<double, uint8_t>(s.rows, s.cols, !grad, (red + 2) % 3);
    }
    ++i;
  }
}

// Every target dtype for one input dtype; the shape alternates between warp rows (9 x 33) and block
// rows (2 x 600) along the targets, starting from `shift`, so that each input and each target dtype
// meets both.
template <typename scalar_t>
void dense_targets(int shift) {
  const Shape shapes[2] = {{9, 33}, {2, 600}};
  int i = shift;
  auto next = [&]() { return shapes[i++ % 2]; };
  Shape s = next();
  dense_case<scalar_t, float>(s.rows, s.cols, true, 0);
  s = next();
  dense_case<scalar_t, double>(s.rows, s.cols, true, 1);
  s = next();
  dense_case<scalar_t, __half>(s.rows, s.cols, true, 2);
  s = next();
  dense_case<scalar_t, __nv_bfloat16>(s.rows, s.cols, false, 0);
  s = next();
  dense_case<scalar_t, uint8_t>(s.rows, s.cols, true, 1);
  s = next();
  dense_case<scalar_t, int8_t>(s.rows, s.cols, true, 2);
  s = next();
  dense_case<scalar_t, int16_t>(s.rows, s.cols, true, 0);
  s = next();
  dense_case<scalar_t, int32_t>(s.rows, s.cols, false, 1);
  s = next();
  dense_case<scalar_t, int64_t>(s.rows, s.cols, true, 2);
}

void dense_dtypes() {
  dense_targets<float>(0);
  dense_targets<double>(1);
  dense_targets<__half>(0);
  dense_targets<__nv_bfloat16>(1);
}

void dense_special() {
  for (const Shape& s : {Shape{8, 45}, Shape{4, 700}}) {
    dense_case<float, float>(s.rows, s.cols, true, 0, kSpecial);
    dense_case<double, int32_t>(s.rows, s.cols, true, 1, kSpecial);
    dense_case<__half, __half>(s.rows, s.cols, true, 2, kSpecial);
    dense_case<__nv_bfloat16, uint8_t>(s.rows, s.cols, true, 0, kSpecial);
  }
}

// ---- Sparse ---------------------------------------------------------------------------------------
template <typename scalar_t>
Out run_sparse(const std::vector<scalar_t>& x, const std::vector<int64_t>& idx, int64_t rows, int64_t cols, int64_t k,
               bool mask_zero, bool grad) {
  using acc_t = acc_of<scalar_t>;
  std::vector<acc_t> row_loss(static_cast<size_t>(rows), static_cast<acc_t>(kNaN));
  std::vector<scalar_t> g(grad ? static_cast<size_t>(rows * cols) : 0, store<scalar_t>(kNaN));
  MultilabelLaunchArgs a{};
  a.input = x.data();
  a.positive_index = idx.empty() ? nullptr : idx.data();
  a.row_loss = row_loss.data();
  a.grad = grad ? g.data() : nullptr;
  a.n_rows = rows;
  a.n_cols = cols;
  a.k = k;
  a.input_dtype = code_of<scalar_t>();
  a.target_dtype = 99;  // not read by the sparse launcher
  a.mask_zero = mask_zero ? 1 : 0;
  Out out;
  out.rc = fusedloss_sparse_multilabel_ce_fwd_cuda(&a, nullptr);
  for (acc_t v : row_loss) out.loss.push_back(static_cast<double>(v));
  for (scalar_t v : g) out.grad.push_back(load(v));
  return out;
}

// Random index rows: classes of [0, C) (some repeated), padding zeros, out-of-range values; sorted
// unless `unsorted`.
std::vector<int64_t> make_index(int64_t rows, int64_t cols, int64_t k, bool unsorted = false) {
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> row;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t u = randint(0, 19);
      int64_t v = randint(0, std::max<int64_t>(cols - 1, 0));
      if (u == 0) v = randint(-5, -1);
      if (u == 1) v = cols + randint(0, 5);
      if (u == 2 || u == 3) v = 0;
      if (u == 4 && !row.empty()) v = row[static_cast<size_t>(randint(0, static_cast<int64_t>(row.size()) - 1))];
      row.push_back(v);
    }
    if (!unsorted) std::sort(row.begin(), row.end());
    idx.insert(idx.end(), row.begin(), row.end());
  }
  return idx;
}

template <typename scalar_t>
void sparse_case(int64_t rows, int64_t cols, int64_t k, bool mask_zero, bool grad, int reduction) {
  using acc_t = acc_of<scalar_t>;
  std::vector<scalar_t> x;
  std::vector<double> xs, wn, wp;
  for (int64_t e = 0; e < rows * cols; ++e) {
    x.push_back(store<scalar_t>(uniform(-6.0, 6.0)));
    xs.push_back(static_cast<double>(static_cast<acc_t>(load(x.back()))));
  }
  const std::vector<int64_t> idx = make_index(rows, cols, k);
  Truth want;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> count(static_cast<size_t>(cols), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t v = idx[static_cast<size_t>(r * k + j)];
      if (v >= 0 && v < cols && !(mask_zero && v == 0)) count[static_cast<size_t>(v)] += 1.0;
    }
    wn.assign(static_cast<size_t>(cols), 0.0);
    wp.assign(static_cast<size_t>(cols), 0.0);
    for (int64_t c = 0; c < cols; ++c) {
      const bool masked = mask_zero && c == 0;
      wp[static_cast<size_t>(c)] = count[static_cast<size_t>(c)];
      wn[static_cast<size_t>(c)] = masked || count[static_cast<size_t>(c)] != 0.0 ? 0.0 : 1.0;
    }
    truth_row(xs.data() + r * cols, wn.data(), wp.data(), cols, want);
  }
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "sparse %s rows %lld C %lld K %lld mask_zero %d grad %d reduction %d",
                name_of<scalar_t>(), static_cast<long long>(rows), static_cast<long long>(cols),
                static_cast<long long>(k), mask_zero, grad, reduction);
  compare<scalar_t>(run_sparse<scalar_t>(x, idx, rows, cols, k, mask_zero, grad), want, rows, cols, grad, reduction,
                    ctx);
}

struct SparseShape {
  int64_t rows, cols, k;
};

const SparseShape kSparseShapes[] = {{1, 1, 1},     {3, 31, 3},    {9, 32, 0},   {8, 33, 5},     {17, 200, 10},
                                     {9, 100, 300}, {5, 512, 40},  {2, 513, 20}, {1, 1000, 0},   {1, 600, 4096},
                                     {1, 600, 4097}, {1, 4096, 64}, {1, 4097, 50}};

void sparse_sizes() {
  int i = 0;
  for (const SparseShape& s : kSparseShapes) {
    const bool grad = i % 4 != 3;
    const int red = i % 3;
    const bool mz = i % 2 == 0;
    sparse_case<float>(s.rows, s.cols, s.k, mz, grad, red);
    sparse_case<double>(s.rows, s.cols, s.k, !mz, grad, (red + 1) % 3);
    if (s.k <= 64) {  // the half types on the cheaper shapes
      sparse_case<__half>(s.rows, s.cols, s.k, mz, !grad || i % 2 == 0, (red + 2) % 3);
      sparse_case<__nv_bfloat16>(s.rows, s.cols, s.k, !mz, true, red);
    }
    ++i;
  }
}

void sparse_unsorted() {
  for (const Shape& s : {Shape{9, 40}, Shape{2, 800}}) {
    const int64_t k = 30;
    std::vector<float> x;
    for (int64_t e = 0; e < s.rows * s.cols; ++e) x.push_back(static_cast<float>(uniform(-6.0, 6.0)));
    const std::vector<int64_t> idx = make_index(s.rows, s.cols, k, true);
    const Out got = run_sparse<float>(x, idx, s.rows, s.cols, k, true, true);
    expect(got.rc == 0, "unsorted launch status", got.rc, 0, "unsorted");
    for (double v : got.loss) expect(std::isfinite(v), "unsorted: finite loss", v, 0, "unsorted");
    for (double v : got.grad) expect(std::isfinite(v), "unsorted: finite grad", v, 0, "unsorted");
  }
}

// ---- Empty inputs and rejected arguments ----------------------------------------------------------
void empty_inputs() {
  // N = 0: nothing launched, nothing written, 0 returned even with unsupported dtypes.
  float sentinel = 12.5f;
  MultilabelLaunchArgs a{};
  a.row_loss = &sentinel;
  a.n_rows = 0;
  a.n_cols = 5;
  a.input_dtype = 42;
  a.target_dtype = 42;
  expect(fusedloss_multilabel_ce_fwd_cuda(&a, nullptr) == 0 && sentinel == 12.5f, "dense N = 0", sentinel, 12.5, "");
  expect(fusedloss_sparse_multilabel_ce_fwd_cuda(&a, nullptr) == 0 && sentinel == 12.5f, "sparse N = 0", sentinel,
         12.5, "");
  // C = 0: null input / target / index are fine; every row's loss is log 1 + log 1 = 0.
  for (int sparse = 0; sparse < 2; ++sparse) {
    for (const int64_t rows : {int64_t(1), int64_t(9)}) {
      std::vector<float> row_loss(static_cast<size_t>(rows), 7.0f);
      std::vector<double> row_loss64(static_cast<size_t>(rows), 7.0);
      std::vector<int64_t> idx(static_cast<size_t>(rows) * 3, 0);  // all out of [0, 0)
      for (int f64 = 0; f64 < 2; ++f64) {
        MultilabelLaunchArgs b{};
        b.row_loss = f64 ? static_cast<void*>(row_loss64.data()) : static_cast<void*>(row_loss.data());
        b.n_rows = rows;
        b.n_cols = 0;
        b.k = sparse ? 3 : 0;
        b.positive_index = sparse ? idx.data() : nullptr;
        b.input_dtype = f64 ? kMultilabelF64 : kMultilabelF32;
        b.target_dtype = kMultilabelI64;
        const int rc = sparse ? fusedloss_sparse_multilabel_ce_fwd_cuda(&b, nullptr)
                              : fusedloss_multilabel_ce_fwd_cuda(&b, nullptr);
        expect(rc == 0, "C = 0 launch status", rc, 0, sparse ? "sparse" : "dense");
        for (int64_t r = 0; r < rows; ++r) {
          const double v = f64 ? row_loss64[static_cast<size_t>(r)] : row_loss[static_cast<size_t>(r)];
          expect(v == 0.0, "C = 0 row loss", v, 0.0, sparse ? "sparse" : "dense");
        }
      }
    }
  }
  // Sparse K = 0 with a null index: loss log(1 + sum e^s), covered with values in sparse_sizes.
  sparse_case<float>(3, 50, 0, true, true, 0);
}

void rejected_args() {
  std::vector<float> x(8 * 40, 0.5f), t(8 * 40, 1.0f), row_loss(8, 0.0f);
  std::vector<int64_t> idx(8 * 2, 1);
  auto base = [&]() {
    MultilabelLaunchArgs a{};
    a.input = x.data();
    a.target = t.data();
    a.positive_index = idx.data();
    a.row_loss = row_loss.data();
    a.n_rows = 8;
    a.n_cols = 40;
    a.k = 2;
    a.input_dtype = kMultilabelF32;
    a.target_dtype = kMultilabelF32;
    return a;
  };
  using Fn = int (*)(const MultilabelLaunchArgs*, cudaStream_t);
  const Fn dense = fusedloss_multilabel_ce_fwd_cuda, sparse = fusedloss_sparse_multilabel_ce_fwd_cuda;
  for (const Fn fn : {dense, sparse}) {
    const char* ctx = fn == dense ? "dense" : "sparse";
    MultilabelLaunchArgs a = base();
    expect(fn(&a, nullptr) == 0, "valid arguments accepted", fn(&a, nullptr), 0, ctx);
    expect(fn(nullptr, nullptr) == kMultilabelBadArgs, "null args", 0, 0, ctx);
    a = base();
    a.n_rows = -1;
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "negative N", 0, 0, ctx);
    a = base();
    a.n_cols = -3;
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "negative C", 0, 0, ctx);
    a = base();
    a.k = -1;
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "negative K", 0, 0, ctx);
    a = base();
    a.row_loss = nullptr;
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "null row_loss", 0, 0, ctx);
    a = base();
    a.input = nullptr;
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "null input", 0, 0, ctx);
    for (const int32_t bad : {-1, 4, 8, 9, 100}) {
      a = base();
      a.input_dtype = bad;
      a.target_dtype = 77;
      expect(fn(&a, nullptr) == kMultilabelBadInputDType, "bad input dtype", bad, 0, ctx);
    }
    // A grid of more than 2^30 x 65535 row groups (block rows: one per row): refused before launching.
    a = base();
    a.n_cols = 1000;
    a.n_rows = (int64_t(1) << 30) * 65535 + 1;
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "grid too large (block rows)", 0, 0, ctx);
    a = base();
    a.n_rows = (int64_t(1) << 30) * 65535 * 8 + 1;  // warp rows: 8 per block
    expect(fn(&a, nullptr) == kMultilabelBadArgs, "grid too large (warp rows)", 0, 0, ctx);
  }
  MultilabelLaunchArgs a = base();
  a.target = nullptr;
  expect(dense(&a, nullptr) == kMultilabelBadArgs, "dense: null target", 0, 0, "");
  expect(sparse(&a, nullptr) == 0, "sparse: target unused", 0, 0, "");
  a = base();
  a.positive_index = nullptr;
  expect(sparse(&a, nullptr) == kMultilabelBadArgs, "sparse: null positive_index with K > 0", 0, 0, "");
  expect(dense(&a, nullptr) == 0, "dense: positive_index unused", 0, 0, "");
  for (const int32_t bad : {-1, 9, 50}) {
    a = base();
    a.target_dtype = bad;
    expect(dense(&a, nullptr) == kMultilabelBadTargetDType, "dense: bad target dtype", bad, 0, "");
    expect(sparse(&a, nullptr) == 0, "sparse: target dtype unused", bad, 0, "");
  }
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261127);
  const fltest::Group groups[] = {{"dense sizes", dense_sizes},       {"dense dtypes", dense_dtypes},
                                  {"dense special rows", dense_special}, {"sparse sizes", sparse_sizes},
                                  {"sparse unsorted", sparse_unsorted}, {"empty inputs", empty_inputs},
                                  {"rejected arguments", rejected_args}};
  return fltest::run_groups("test_multilabel_cuda_sim", groups);
}
