// The fused lightning-indexer score kernel (see lightning.h for the interface).
//
// Work split. Queries come in blocks of kBlockQ = 256 / heads (4 queries at 64 heads, 8 at 32):
// the block's q, [kBlockQ * heads, dim], is the B operand (N = 128 (query, head) columns per
// math warpgroup) and stays in shared memory while all causal keys stream past in 64-key tiles
// (the A operand, M = 64). So the accumulator row of a thread is a key and its columns are
// heads: the weighted ReLU sum over heads is a sum over the thread's own registers plus two
// shuffles inside a quad. Both math warpgroups read the same key tile (256 columns per tile),
// which halves the L2 traffic per FLOP compared with giving them separate key tiles.
//
// Warp roles (384 threads, one CTA per SM, persistent over query blocks):
//   warp 0        TMA producer: q of each block (2 stages when shared memory allows) and
//                 64-key tiles of k (a 4- to 8-stage ring), completing on mbarriers.
//   warps 1..3    selection: consume [kBlockQ x 64] score tiles from an epilogue ring and keep
//                 the candidates of their queries (query q belongs to warp 1 + q % 3).
//   warps 4..11   two math warpgroups: wgmma m64n128 over head dim, ReLU, weights, reduction;
//                 they take turns issuing their MMAs (named barriers 1 and 2), so one
//                 warpgroup's epilogue runs under the other's MMAs (measured 1.03-1.12x).
//
// Query blocks are handed out heaviest (latest) first in a snake order over the CTAs, so every
// CTA gets about the same number of causal key tiles.
//
// The candidate buffers of the TopKCandidates output, and why the kernel keeps candidates
// rather than scores: candidate_buffer.cuh. Tiles and the shared-memory plan: config.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/ptx.cuh"
#include "common/select_primitives.cuh"
#include "lightning/candidate_buffer.cuh"
#include "lightning/config.h"
#include "lightning/lightning.h"
#include "lightning/params.h"

namespace indexcache::kernels::detail {

// Query block j of the heaviest-first order, for the CTA's round r (snake order).
__device__ __forceinline__ int block_of_round(int round, int cta, int ctas) {
  return round * ctas + ((round & 1) ? ctas - 1 - cta : cta);
}

template <bool kFp8, int kDim, int kHeads>
__global__ void __launch_bounds__(kThreads, 1)
    lightning_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                     const LightningParams p) {
#ifdef INDEXCACHE_SM90A
  using C = LightningConfig<kFp8, kDim, kHeads>;
  constexpr int QW = C::kQueriesPerWG;
  constexpr int BQ = C::kBlockQ;

  extern __shared__ uint8_t smem_raw[];
  // Swizzled tiles need 1024-byte aligned atoms (config.h budgets the slack).
  const uint32_t raw_address = ptx::smem_addr(smem_raw);
  auto& shared = *reinterpret_cast<typename C::SharedStorage*>(
      smem_raw + ((kSmemAlignment - (raw_address & (kSmemAlignment - 1))) & (kSmemAlignment - 1)));
  // Pointers formed once, before the warp roles split. For the histograms it matters: formed
  // at each use, the selection warps' address arithmetic compiles differently (same addresses,
  // different code, checked against the PTX).
  uint32_t* histograms = shared.histograms;
  SelectState* states = shared.states;
  uint64_t* q_full = shared.query_full;
  uint64_t* q_empty = shared.query_empty;
  uint64_t* kv_full = shared.key_full;
  uint64_t* kv_empty = shared.key_empty;
  uint64_t* epi_full = shared.ring_barriers.used.full;
  uint64_t* epi_empty = shared.ring_barriers.used.empty;

  const int warp = threadIdx.x / 32;
  const uint32_t lane = ptx::lane_id();

  if (threadIdx.x == 0) {
    for (int i = 0; i < C::kQStages; ++i) {
      ptx::mbar_init(&q_full[i], 1);
      ptx::mbar_init(&q_empty[i], 256);
    }
    for (int i = 0; i < C::kKStages; ++i) {
      ptx::mbar_init(&kv_full[i], 1);
      ptx::mbar_init(&kv_empty[i], 256);
    }
    for (int i = 0; i < C::kEpiStages; ++i) {
      ptx::mbar_init(&epi_full[i], 256);
      ptx::mbar_init(&epi_empty[i], 96);
    }
    ptx::mbar_fence_init();
    ptx::tma_prefetch_descriptor(&q_map);
    ptx::tma_prefetch_descriptor(&k_map);
  }
  __syncthreads();

  const auto block_rows = [&](int j, int& q0, int& tiles) {
    q0 = p.first_row + (p.num_blocks - 1 - j) * BQ;
    const int last = min(q0 + BQ, p.row_end) - 1;
    tiles = last / C::kBlockK + 1;
  };

  if (warp == 0) {
    // ---------------------------------------------------------------- TMA producer
    if (lane == 0) {
      uint32_t g = 0, it = 0;
      for (int round = 0;; ++round) {
        const int j = block_of_round(round, blockIdx.x, gridDim.x);
        if (j >= p.num_blocks) break;
        int q0, tiles;
        block_rows(j, q0, tiles);
        const int qs = it % C::kQStages;
        ptx::mbar_wait(&q_empty[qs], ((it / C::kQStages) & 1) ^ 1);
        ptx::mbar_arrive_expect_tx(&q_full[qs], C::kQStageBytes);
        for (int c = 0; c < C::kChunks; ++c) {
          ptx::tma_load_2d(shared.queries + qs * C::kQStageBytes + c * C::kQChunkBytes, &q_map, c * C::kChunkElems,
                           q0 * kHeads, &q_full[qs]);
        }
        for (int tile = 0; tile < tiles; ++tile, ++g) {
          const int s = g % C::kKStages;
          ptx::mbar_wait(&kv_empty[s], ((g / C::kKStages) & 1) ^ 1);
          ptx::mbar_arrive_expect_tx(&kv_full[s], C::kKStageBytes);
          for (int c = 0; c < C::kChunks; ++c) {
            ptx::tma_load_2d(shared.keys + s * C::kKStageBytes + c * C::kKChunkBytes, &k_map, c * C::kChunkElems,
                             tile * C::kBlockK, &kv_full[s]);
          }
        }
        ++it;
      }
    }
  } else if (warp < 4) {
    // ---------------------------------------------------------------- selection warps
    const int sw = warp - 1;
    const int kind = p.kind;
    const uint32_t k = static_cast<uint32_t>(p.topk);
    const uint32_t capacity = static_cast<uint32_t>(p.capacity);
    const uint32_t lt = ptx::lanemask_lt();
    uint32_t g = 0;
    for (int round = 0;; ++round) {
      const int j = block_of_round(round, blockIdx.x, gridDim.x);
      if (j >= p.num_blocks) break;
      int q0, tiles;
      block_rows(j, q0, tiles);
      for (int q = sw; q < BQ; q += 3) {
        if (lane == 0) {
          states[q].tau = 0;
          states[q].lo = 1;
          states[q].shift = 24;
          states[q].count = 0;
          states[q].maxkey = 0;
        }
        shared.row_max[q * 32 + lane] = -INFINITY;
        selection::warp_clear_histogram(histograms + q * kCandidateBins);
      }
      __syncwarp();
      for (int tile = 0; tile < tiles; ++tile, ++g) {
        const int e = g % C::kEpiStages;
        ptx::mbar_wait(&epi_full[e], (g / C::kEpiStages) & 1);
        const float* epi = shared.score_tiles + e * C::kEpiStageFloats;
        for (int q = sw; q < BQ; q += 3) {
          const int t = q0 + q;
          if (t >= p.row_end) continue;
          if (kind == static_cast<int>(ScoreOutput::TopKCandidates) && t < p.topk) continue;
          const int64_t row = t - p.row_begin;
          if (kind == static_cast<int>(ScoreOutput::DenseScores)) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int r = lane + 32 * half;
              const int s = tile * C::kBlockK + r;
              if (s < p.row_end) p.scores[row * p.row_end + s] = s <= t ? epi[q * C::kEpiStride + r] : -INFINITY;
            }
          } else if (kind == static_cast<int>(ScoreOutput::RowMax)) {
            float m = shared.row_max[q * 32 + lane];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int r = lane + 32 * half;
              const int s = tile * C::kBlockK + r;
              if (s <= t) m = fmaxf(m, epi[q * C::kEpiStride + r]);
            }
            shared.row_max[q * 32 + lane] = m;
          } else {
            SelectState* st = &states[q];
            const uint32_t tau = st->tau, lo = st->lo, shift = st->shift;
            uint32_t count = st->count, maxkey = st->maxkey;
            uint64_t* buffer = p.candidates + row * static_cast<int64_t>(capacity);
            uint32_t* hist = histograms + q * kCandidateBins;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int r = lane + 32 * half;
              const int s = tile * C::kBlockK + r;
              const uint32_t key = ptx::score_key(epi[q * C::kEpiStride + r]);
              const bool pass = s <= t && key > tau;
              const uint32_t mask = __ballot_sync(ptx::kFullMask, pass);
              uint32_t b = 256;
              if (pass) {
                buffer[count + __popc(mask & lt)] = ptx::composite_key(key, static_cast<uint32_t>(s));
                b = (key - lo) >> shift;
                b = b < 255 ? b : 255;
              }
              selection::warp_histogram_add(hist, b);
              count += __popc(mask);
              maxkey = max(maxkey, __reduce_max_sync(ptx::kFullMask, pass ? key : 0u));
            }
            __syncwarp();
            if (lane == 0) {
              st->count = count;
              st->maxkey = maxkey;
            }
          }
        }
        __syncwarp();
        ptx::mbar_arrive(&epi_empty[e]);
        if (kind == static_cast<int>(ScoreOutput::TopKCandidates)) {
          for (int q = sw; q < BQ; q += 3) {
            const int t = q0 + q;
            if (t >= p.row_end || t < p.topk) continue;
            if (states[q].count + 128 > capacity) {
              compact_candidates(p.candidates + (t - p.row_begin) * static_cast<int64_t>(capacity), &states[q],
                                 histograms + q * kCandidateBins, k, capacity);
            }
          }
        }
      }
      for (int q = sw; q < BQ; q += 3) {
        const int t = q0 + q;
        if (t >= p.row_end) continue;
        const int64_t row = t - p.row_begin;
        if (kind == static_cast<int>(ScoreOutput::TopKCandidates)) {
          if (t >= p.topk && lane == 0) p.counts[row] = static_cast<int32_t>(states[q].count);
        } else if (kind == static_cast<int>(ScoreOutput::RowMax)) {
          float m = shared.row_max[q * 32 + lane];
#pragma unroll
          for (int offset = 16; offset > 0; offset >>= 1) m = fmaxf(m, __shfl_xor_sync(ptx::kFullMask, m, offset));
          if (lane == 0) p.scores[row] = m;
        }
      }
      __syncwarp();
    }
  } else {
    // ---------------------------------------------------------------- math warpgroups
    const int wg = warp / 4 - 1;
    const int warp_in_wg = warp % 4;
    float acc[64];
    float wreg[QW][kHeads / 4];
    uint32_t g = 0, it = 0;
    // Turns (p.turns): warpgroup w issues its MMAs only after the other has issued its own for
    // the previous tile (named barrier 1 + w, 256 threads), so the tensor cores run one
    // warpgroup's MMAs while the other is in its epilogue instead of interleaving both and
    // leaving the epilogues to run together. Warpgroup 0 goes first.
    const bool turns = p.turns != 0;
    const uint32_t my_turn = 1 + wg, other_turn = 2 - wg;
    if (turns && wg == 1) ptx::named_barrier_arrive(other_turn, 256);
    for (int round = 0;; ++round) {
      const int j = block_of_round(round, blockIdx.x, gridDim.x);
      if (j >= p.num_blocks) break;
      const bool last_round = block_of_round(round + 1, blockIdx.x, gridDim.x) >= p.num_blocks;
      int q0, tiles;
      block_rows(j, q0, tiles);
      // Weights of the columns this thread holds: column 8 n + 2 (lane % 4) + e of query q is
      // head 8 (n - q heads/8) + 2 (lane % 4) + e. The softmax scale (and the fp8 q scale,
      // both positive) fold into them: relu(a x) = a relu(x) for a > 0. So does the 1/2 of
      // relu(x) = (x + |x|) / 2: the epilogue computes (x + |x|) * (w / 2), one FADD on the
      // full-rate FP32 pipe instead of an FMNMX on the half-rate ALU pipe (which the
      // descriptors and addresses also use), and the same product bit for bit: 2x and w / 2
      // are exact (for weights above 2^-125), and x + |x| is +0 for x <= 0.
#pragma unroll
      for (int q = 0; q < QW; ++q) {
        const int t = q0 + wg * QW + q;
#pragma unroll
        for (int jj = 0; jj < kHeads / 4; ++jj) {
          const int h = 8 * (jj / 2) + 2 * static_cast<int>(lane % 4) + (jj % 2);
          float w = 0.0f;
          if (t < p.tokens) {
            w = p.weights[static_cast<int64_t>(t) * kHeads + h] * p.softmax_scale;
            if (kFp8) w *= p.query_scales[static_cast<int64_t>(t) * kHeads + h];
          }
          wreg[q][jj] = 0.5f * w;
        }
      }
      const int qs = it % C::kQStages;
      ptx::mbar_wait(&q_full[qs], (it / C::kQStages) & 1);
      // Descriptors are built once per block (q) and per tile (k); each K step adds its byte
      // offset / 16 to the start-address field (the addresses stay inside shared memory, so
      // the 14-bit field cannot carry). Building them per wgmma cost ~16 ALU instructions each.
      const uint64_t q_descriptor = ptx::sw128_descriptor(shared.queries + qs * C::kQStageBytes + wg * (128 * 128));
      for (int tile = 0; tile < tiles; ++tile, ++g) {
        const int s = g % C::kKStages;
        ptx::mbar_wait(&kv_full[s], (g / C::kKStages) & 1);
        const uint64_t k_descriptor = ptx::sw128_descriptor(shared.keys + s * C::kKStageBytes);
        const int r0 = warp_in_wg * 16 + static_cast<int>(lane / 4);  // keys r0 and r0 + 8 of the tile
        float key_scale0 = 1.0f, key_scale1 = 1.0f;
        if (kFp8) {  // loaded before the MMAs so that their latency hides under them
          const int key0 = tile * C::kBlockK + r0;
          key_scale0 = key0 < p.tokens ? p.key_scales[key0] : 0.0f;
          key_scale1 = key0 + 8 < p.tokens ? p.key_scales[key0 + 8] : 0.0f;
        }
        if (turns) ptx::named_barrier_sync(my_turn, 256);
        ptx::fence_registers(acc);
        ptx::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < C::kKSteps; ++kk) {
          const int chunk = kk / 4;
          const int offset = (kk % 4) * 32;
          const uint64_t desc_a = k_descriptor + static_cast<uint64_t>((chunk * C::kKChunkBytes + offset) >> 4);
          const uint64_t desc_b = q_descriptor + static_cast<uint64_t>((chunk * C::kQChunkBytes + offset) >> 4);
          if constexpr (kFp8) {
            ptx::wgmma_m64n128k32_e4m3(acc, desc_a, desc_b, kk > 0 ? 1u : 0u);
          } else {
            ptx::wgmma_m64n128k16_bf16(acc, desc_a, desc_b, kk > 0 ? 1u : 0u);
          }
        }
        ptx::wgmma_commit();
        // Warpgroup 1's very last arrival would have no partner: it is skipped.
        if (turns && !(wg == 1 && last_round && tile == tiles - 1)) ptx::named_barrier_arrive(other_turn, 256);
        ptx::wgmma_wait<0>();
        ptx::fence_registers(acc);
        ptx::mbar_arrive(&kv_empty[s]);

        float partial[QW][2];
#pragma unroll
        for (int q = 0; q < QW; ++q) {
          float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
          for (int n = 0; n < kHeads / 8; ++n) {
            const int a = (q * (kHeads / 8) + n) * 4;
            s0 = fmaf(acc[a + 0] + fabsf(acc[a + 0]), wreg[q][2 * n + 0], s0);
            s0 = fmaf(acc[a + 1] + fabsf(acc[a + 1]), wreg[q][2 * n + 1], s0);
            s1 = fmaf(acc[a + 2] + fabsf(acc[a + 2]), wreg[q][2 * n + 0], s1);
            s1 = fmaf(acc[a + 3] + fabsf(acc[a + 3]), wreg[q][2 * n + 1], s1);
          }
          s0 += __shfl_xor_sync(ptx::kFullMask, s0, 1);
          s0 += __shfl_xor_sync(ptx::kFullMask, s0, 2);
          s1 += __shfl_xor_sync(ptx::kFullMask, s1, 1);
          s1 += __shfl_xor_sync(ptx::kFullMask, s1, 2);
          partial[q][0] = s0 * key_scale0;
          partial[q][1] = s1 * key_scale1;
        }
        const int e = g % C::kEpiStages;
        ptx::mbar_wait(&epi_empty[e], ((g / C::kEpiStages) & 1) ^ 1);
        float* epi = shared.score_tiles + e * C::kEpiStageFloats;
#pragma unroll
        for (int q = 0; q < QW; ++q) {
          if ((lane & 3) == (q & 3)) {
            epi[(wg * QW + q) * C::kEpiStride + r0] = partial[q][0];
            epi[(wg * QW + q) * C::kEpiStride + r0 + 8] = partial[q][1];
          }
        }
        ptx::mbar_arrive(&epi_full[e]);
      }
      ptx::mbar_arrive(&q_empty[qs]);
      ++it;
    }
  }
#endif
}

// Host side: one instantiation per (element, dim, heads).
template <bool kFp8, int kDim, int kHeads>
cudaError_t launch_lightning(const CUtensorMap& q_map, const CUtensorMap& k_map, const LightningParams& params,
                             int grid, cudaStream_t stream) {
  using C = LightningConfig<kFp8, kDim, kHeads>;
  auto kernel = lightning_kernel<kFp8, kDim, kHeads>;
  static const cudaError_t attribute =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
  if (attribute != cudaSuccess) return attribute;
  kernel<<<grid, kThreads, C::kSmemBytes, stream>>>(q_map, k_map, params);
  return cudaGetLastError();
}

template <bool kFp8, int kDim, int kHeads>
constexpr int lightning_block_queries() {
  return LightningConfig<kFp8, kDim, kHeads>::kBlockQ;
}

}  // namespace indexcache::kernels::detail
