// The CPU driver of the elementwise loss ops (elementwise_op.h): chunks, tiles, operand conversion,
// broadcast weights, output stores, the vectorised loop over a tile and the deterministic reduction.
// A family supplies its per-element math (a Body for TileKernel) and how to pick the specialisation
// (see focal_cpu.cpp and pointwise_cpu.cpp).
//
// The flattened input is cut into chunks of kChunk elements (the at::parallel_for grain); a chunk
// runs in tiles of kTile elements. Operands of another dtype than acc_t (fp16/bf16 inputs,
// integer/bool targets) and broadcast weights are first expanded into acc_t stack buffers, so that
// the family's loop reads and writes plain acc_t arrays and vectorises. The loop accumulates a tile's
// sum and count in acc_t; a chunk's partials are combined in tile order and stored as doubles, and
// the chunks in chunk order: the result does not depend on the thread count.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu_vector.h"
#include "elementwise_op.h"

namespace fusedloss {
namespace elementwise {

constexpr int64_t kChunk = 16384;  // at::parallel_for grain and reduction chunk, in elements
constexpr int64_t kTile = 1024;    // stack buffers: 7 x 1024 x 8 B = 56 KiB at most (fp64)

// One tile as the loop sees it: acc_t arrays of n elements. loss and grad point to the outputs
// themselves or to scratch buffers, and are always written (unconditional stores keep the loop free
// of branches).
template <typename acc_t>
struct Tile {
  const acc_t* x;
  const acc_t* t;
  const acc_t* w;    // 1s when there is no weight
  const acc_t* aux;  // a second per-element operand the family may set (pos_weight); else 1s
  acc_t* loss;
  acc_t* grad;
  int64_t n;
};

// What a family's per-element function returns: the (weighted) loss, its derivative in x, and a
// value whose nonzero-ness makes the element count for SUM_BY_NONZERO_WEIGHTS.
template <typename acc_t>
struct LoopOut {
  acc_t loss;
  acc_t grad;
  acc_t counted;
};

// The loop over one tile, for a Body with
//   using acc_t = ...; using Prm = ...;   (Prm: the launch's parameters)
//   static FL_ALWAYS_INLINE LoopOut<acc_t> elem(acc_t x, acc_t t, acc_t w, acc_t aux, const Prm&);
// Body::elem must be branch-free once its template arguments are fixed (the family specialises it on
// whatever it would branch on) so that GCC if-converts and vectorises the loop. pick(isa) is the
// loop compiled for that ISA (cpu_vector.h's IsaVariants).
template <typename Body>
struct TileKernel {
  using acc_t = typename Body::acc_t;
  using Prm = typename Body::Prm;
  using Sig = void(const Tile<acc_t>&, const Prm&, acc_t*, acc_t*);

  static FL_ALWAYS_INLINE void run(const Tile<acc_t>& io, const Prm& prm_ref, acc_t* sum_out, acc_t* cnt_out) {
    const Prm prm = prm_ref;  // a local: the loop must not reload (and re-broadcast) it per element
    const acc_t* __restrict x = io.x;
    const acc_t* __restrict t = io.t;
    const acc_t* __restrict w = io.w;
    const acc_t* __restrict aux = io.aux;
    acc_t* __restrict loss = io.loss;
    acc_t* __restrict grad = io.grad;
    const int64_t n = io.n;
    acc_t s = 0, c = 0;  // c counts exactly: n <= kTile < 2^24
    FL_SIMD_REDUCE_SUM_CNT
    for (int64_t i = 0; i < n; ++i) {
      const LoopOut<acc_t> o = Body::elem(x[i], t[i], w[i], aux[i], prm);
      loss[i] = o.loss;
      grad[i] = o.grad;
      s += o.loss;
      c += o.counted != acc_t(0) ? acc_t(1) : acc_t(0);
    }
    *sum_out = s;
    *cnt_out = c;
  }

  static Sig* pick(Isa isa) { return IsaVariants<TileKernel, Sig>::pick(isa); }
};

// Per-thread stack buffers; `aux` and `ones` are for the family (a second table, say).
template <typename acc_t>
struct TileScratch {
  alignas(64) acc_t x[kTile];
  alignas(64) acc_t t[kTile];
  alignas(64) acc_t w[kTile];
  alignas(64) acc_t aux[kTile];
  alignas(64) acc_t ones[kTile];
  alignas(64) acc_t loss[kTile];
  alignas(64) acc_t grad[kTile];
};

// Elements [i0, i0 + n) of the broadcast table tab[(i / div) % mod], as a pointer into the table
// when they are a contiguous window of it, else expanded into buf.
template <typename acc_t>
const acc_t* table_tile(const acc_t* tab, int64_t div, int64_t mod, int64_t i0, int64_t n, acc_t* buf) {
  const int64_t q = i0 / div;
  int64_t r = i0 - q * div;
  int64_t idx = q % mod;
  if (mod == 1) {
    std::fill(buf, buf + n, tab[0]);
    return buf;
  }
  if (div == 1) {
    if (idx + n <= mod) return tab + idx;
    for (int64_t k = 0; k < n;) {
      const int64_t run = std::min(mod - idx, n - k);
      std::memcpy(buf + k, tab + idx, static_cast<size_t>(run) * sizeof(acc_t));
      k += run;
      idx = 0;
    }
    return buf;
  }
  for (int64_t k = 0; k < n;) {
    const int64_t run = std::min(div - r, n - k);
    std::fill(buf + k, buf + k + run, tab[idx]);
    k += run;
    r = 0;
    idx = idx + 1 == mod ? 0 : idx + 1;
  }
  return buf;
}

// Per-chunk sums and counts, combined in chunk order.
struct ChunkPartials {
  std::vector<double> sum;
  std::vector<int64_t> count;
  explicit ChunkPartials(int64_t numel)
      : sum(static_cast<size_t>((numel + kChunk - 1) / kChunk)), count(sum.size()) {}
};

// Runs op(tile, i0, scratch, &sum, &count) on every tile of e (x of scalar_t, t of target_t), stores
// the outputs (converting acc_t results to scalar_t) and fills p. op, typically a TileKernel's
// picked loop after setting tile.aux, is called concurrently from several threads, each with its own
// scratch.
template <typename scalar_t, typename target_t, typename TileOp>
void run_tiles(const Tensors& e, ChunkPartials& p, const TileOp& op) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool kSame = std::is_same_v<scalar_t, acc_t>;
  const scalar_t* x = static_cast<const scalar_t*>(e.x.data_ptr());
  const target_t* t = static_cast<const target_t*>(e.t.data_ptr());
  const acc_t* w = e.w.defined() ? static_cast<const acc_t*>(e.w.data_ptr()) : nullptr;
  scalar_t* loss_out = e.loss_elem.defined() ? static_cast<scalar_t*>(e.loss_elem.data_ptr()) : nullptr;
  scalar_t* grad_out = e.compute_grad ? static_cast<scalar_t*>(e.grad.data_ptr()) : nullptr;
  const int64_t numel = e.numel;
  const int64_t num_chunks = static_cast<int64_t>(p.sum.size());

  at::parallel_for(0, num_chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    TileScratch<acc_t> b;
    std::fill(b.ones, b.ones + kTile, acc_t(1));
    Tile<acc_t> tile;
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      const int64_t begin = chunk * kChunk;
      const int64_t end = std::min(numel, begin + kChunk);
      acc_t chunk_sum = 0;
      int64_t chunk_count = 0;
      for (int64_t i0 = begin; i0 < end; i0 += kTile) {
        const int64_t n = std::min(kTile, end - i0);
        tile.n = n;
        tile.x = as_acc<acc_t>(x + i0, n, b.x);
        tile.t = as_acc<acc_t>(t + i0, n, b.t);
        tile.w = w != nullptr ? table_tile(w, e.w_div, e.w_mod, i0, n, b.w) : b.ones;
        tile.aux = b.ones;
        if constexpr (kSame) {
          tile.loss = loss_out != nullptr ? loss_out + i0 : b.loss;
          tile.grad = grad_out != nullptr ? grad_out + i0 : b.grad;
        } else {
          tile.loss = b.loss;
          tile.grad = b.grad;
        }
        acc_t s, c;
        op(tile, i0, b, &s, &c);
        if constexpr (!kSame) {
          if (loss_out != nullptr) {
            for (int64_t k = 0; k < n; ++k) loss_out[i0 + k] = static_cast<scalar_t>(b.loss[k]);
          }
          if (grad_out != nullptr) {
            for (int64_t k = 0; k < n; ++k) grad_out[i0 + k] = static_cast<scalar_t>(b.grad[k]);
          }
        }
        chunk_sum += s;
        chunk_count += static_cast<int64_t>(c);  // exact: c counts at most kTile < 2^24 elements
      }
      p.sum[static_cast<size_t>(chunk)] = static_cast<double>(chunk_sum);
      p.count[static_cast<size_t>(chunk)] = chunk_count;
    }
  });
}

inline Result finish_chunks(const Tensors& e, const ChunkPartials& p) {
  double sum = 0.0;
  int64_t count = 0;
  for (size_t k = 0; k < p.sum.size(); ++k) {
    sum += p.sum[k];
    count += p.count[k];
  }
  return finish_host(e, sum, count);
}

}  // namespace elementwise
}  // namespace fusedloss
