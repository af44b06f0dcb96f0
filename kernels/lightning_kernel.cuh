// The fused lightning-indexer score kernel (see lightning_indexer.h for the interface).
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
// Why candidates and not scores. Selecting afterwards needs every score in memory: 64 GB of
// fp32 for [T, T] at 128K tokens, so query chunks with [chunk, T] buffers, 34 GB written and
// read back by several radix passes. (At 64 heads x 128 dims that traffic is smaller than the
// scoring itself - about 11 + 45 ms against 266 ms at 128K on an H100 - so the design choice is
// about memory, not speed; docs/PERFORMANCE.md has the measurements.) Instead the selection
// warps keep, per query, only scores above a running threshold in a candidate buffer of
// k + k + 1024 entries (64-bit: score key << 32 | ~position, so one integer comparison is the
// documented order "higher score, then lower position"). Appends are in position order. When
// a buffer is nearly full the warp compacts it in place: a 256-bin histogram of the buffer's
// keys (kept up to date on every append) gives a threshold bin with at least k entries above
// it; if that bin is too full the warp re-bins just that bin's range (a pass over the buffer)
// until at most k + (capacity - k) / 2 entries survive, or the bin is a single key value (then
// only the lowest positions of that value are kept - exact ties resolve to lower positions).
// Dropping anything below the threshold is safe because at least k kept entries beat it, so
// the final exact selection (select_topk_from_candidates) sees a superset of the top-k. The
// first compaction happens after ~2k + 1024 keys; for random scores later ones are rare
// (about k ln(T/k) entries ever pass the threshold), and even for scores that rise with
// position every compaction frees at least (capacity - k) / 2 entries. Measured cost: a
// compaction (one warp, two or three passes over ~40 KB in L2) outlasts the score-tile ring,
// so the math warpgroups wait; at 16K-128K the kernel takes about twice the scores-only time.
// Moving the buffers to shared memory or the compactions to their own warps is the next step.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "lightning_indexer.h"
#include "ptx.cuh"

namespace indexcache::kernels::detail {

struct LightningParams {
  const float* weights;
  const float* query_scales;
  const float* key_scales;
  int tokens;
  float softmax_scale;
  int kind;  // ScoreOutput
  int row_begin;
  int row_end;
  int first_row;   // first query of the first block
  int num_blocks;  // query blocks
  int topk;
  int capacity;
  uint64_t* candidates;
  int32_t* counts;
  float* scores;
  int turns;  // math warpgroups take turns issuing MMAs (LightningProblem::warpgroup_turns)
};

constexpr int kThreads = 384;
constexpr int kSmemLimit = 227 * 1024;

template <bool kFp8, int kDim, int kHeads>
struct LightningConfig {
  static constexpr int kElemBytes = kFp8 ? 1 : 2;
  static constexpr int kQueriesPerWG = 128 / kHeads;  // wgmma N = 128 columns = (query, head)
  static constexpr int kBlockQ = 2 * kQueriesPerWG;
  static constexpr int kBlockK = 64;                  // wgmma M: keys per tile
  static constexpr int kRowBytes = kDim * kElemBytes;
  static constexpr int kChunks = kRowBytes / 128;     // 128-byte swizzle atoms along the head dim
  static constexpr int kChunkElems = 128 / kElemBytes;
  static constexpr int kKSteps = kRowBytes / 32;      // every wgmma consumes 32 bytes of K
  static constexpr int kQRows = kBlockQ * kHeads;     // 256
  static constexpr int kQChunkBytes = kQRows * 128;
  static constexpr int kQStageBytes = kChunks * kQChunkBytes;
  static constexpr int kKChunkBytes = kBlockK * 128;
  static constexpr int kKStageBytes = kChunks * kKChunkBytes;
  static constexpr int kKStages = kKStageBytes <= 8192 ? 8 : 4;
  static constexpr int kEpiStride = 72;  // floats per query row of a score tile: 64 + 8 (banks)
  static constexpr int kEpiStageFloats = kBlockQ * kEpiStride;
  static constexpr int kHistBytes = kBlockQ * 256 * 4;
  static constexpr int kRowMaxBytes = kBlockQ * 32 * 4;
  static constexpr int kStateBytes = kBlockQ * 32;
  static constexpr int kMaxEpiStages = 16;
  static constexpr int kBarrierBytes = 8 * (4 + 2 * kKStages + 2 * kMaxEpiStages);
  // Everything but the q stages and the score-tile ring.
  static constexpr int kBaseBytes =
      kKStages * kKStageBytes + kHistBytes + kRowMaxBytes + kStateBytes + kBarrierBytes + 1024;  // + alignment
  static constexpr int kEpiStageBytes = kEpiStageFloats * 4;
  // The score-tile ring is the selection warps' slack (a compaction must not stall the math):
  // as deep as shared memory allows next to two q stages, at least 4; else one q stage.
  static constexpr int ring_stages(int q_stages) {
    const int fit = (kSmemLimit - q_stages * kQStageBytes - kBaseBytes) / kEpiStageBytes;
    return fit > kMaxEpiStages ? kMaxEpiStages : fit;
  }
  static constexpr int kQStages = ring_stages(2) >= 4 ? 2 : 1;
  static constexpr int kEpiStages = ring_stages(kQStages);
  static constexpr int kSmemBytes = kQStages * kQStageBytes + kBaseBytes + kEpiStages * kEpiStageBytes;
  static_assert(kEpiStages >= 2, "shared memory for the score-tile ring");
  static_assert(kHeads % 8 == 0 && 128 % kHeads == 0, "heads must divide the 128 columns of a warpgroup");
  static_assert(kRowBytes % 128 == 0, "head dim must fill whole 128-byte swizzle rows");
  static_assert(kQRows <= 256, "TMA boxes hold at most 256 rows");
  static_assert(kSmemBytes <= kSmemLimit, "shared memory");
};

struct SelectState {
  uint32_t tau;     // append only keys > tau
  uint32_t lo;      // histogram covers keys >= lo ...
  uint32_t shift;   // ... in bins of 2^shift, bin 255 open-ended
  uint32_t count;   // entries in the buffer
  uint32_t maxkey;  // largest key in the buffer
  uint32_t pad[3];
};

// Query block j of the heaviest-first order, for the CTA's round r (snake order).
__device__ __forceinline__ int block_of_round(int round, int cta, int ctas) {
  return round * ctas + ((round & 1) ? ctas - 1 - cta : cta);
}

__device__ __forceinline__ uint32_t shift_for_span(uint32_t span) {
  const int bits = span == 0 ? 0 : 32 - __clz(span);
  return bits > 8 ? static_cast<uint32_t>(bits - 8) : 0u;
}

// Highest bin b with sum(hist[b..255]) >= need (need >= 1 and the total must reach it); also
// the count above b and the population of b. The whole warp calls; results are uniform.
__device__ __forceinline__ void warp_find_bin(const uint32_t* hist, uint32_t need, uint32_t& bin, uint32_t& above,
                                              uint32_t& population) {
  const uint32_t lane = ptx::lane_id();
  uint32_t c[8];
  uint32_t total = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    c[j] = hist[lane * 8 + j];
    total += c[j];
  }
  uint32_t suffix = total;  // sum over lanes >= this lane
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const uint32_t other = __shfl_down_sync(ptx::kFullMask, suffix, offset);
    if (lane + offset < 32) suffix += other;
  }
  const uint32_t higher = suffix - total;
  const uint32_t owner_mask = __ballot_sync(ptx::kFullMask, higher < need && suffix >= need);
  const int owner = owner_mask ? __ffs(owner_mask) - 1 : 0;
  uint32_t my_bin = 0, my_above = 0, my_population = 0;
  if (static_cast<int>(lane) == owner) {
    uint32_t running = higher;
    bool found = false;
#pragma unroll
    for (int j = 7; j >= 0; --j) {
      if (!found && running + c[j] >= need) {
        found = true;
        my_bin = lane * 8 + j;
        my_above = running;
        my_population = c[j];
      }
      if (!found) running += c[j];
    }
  }
  bin = __shfl_sync(ptx::kFullMask, my_bin, owner);
  above = __shfl_sync(ptx::kFullMask, my_above, owner);
  population = __shfl_sync(ptx::kFullMask, my_population, owner);
}

__device__ __forceinline__ void clear_hist(uint32_t* hist) {
  const uint32_t lane = ptx::lane_id();
  __syncwarp();  // earlier reads of the bins by other lanes (warp_find_bin) come first
#pragma unroll
  for (int j = 0; j < 8; ++j) hist[lane + 32 * j] = 0;
  __syncwarp();
}

// Exclusive prefix sum of a small per-lane count over the warp; `total` gets the warp's sum.
__device__ __forceinline__ uint32_t warp_exclusive_sum(uint32_t value, uint32_t& total) {
  const uint32_t lane = ptx::lane_id();
  uint32_t inclusive = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const uint32_t other = __shfl_up_sync(ptx::kFullMask, inclusive, offset);
    if (lane >= static_cast<uint32_t>(offset)) inclusive += other;
  }
  total = __shfl_sync(ptx::kFullMask, inclusive, 31);
  return inclusive - value;
}

// hist[bin] += 1 for every lane with bin < 256; lanes that hit the same bin are added with one
// atomic (candidates cluster in few bins, so plain atomics would serialise up to 32-way).
__device__ __forceinline__ void warp_hist_add(uint32_t* hist, uint32_t bin) {
  const uint32_t peers = __match_any_sync(ptx::kFullMask, bin);
  if (bin < 256 && ptx::lane_id() == static_cast<uint32_t>(__ffs(peers) - 1)) atomicAdd(&hist[bin], __popc(peers));
}

// The buffer is read in batches of kBatch entries, 16 bytes (two entries) per lane and load,
// all loads of a batch in flight before any use: a pass is bound by bandwidth, not by latency.
constexpr int kPairsPerLane = 16;
constexpr uint32_t kBatch = 64 * kPairsPerLane;

__device__ __forceinline__ void load_batch(const uint64_t* buffer, uint32_t base, uint32_t count,
                                           uint64_t (&v)[kPairsPerLane][2]) {
  const uint32_t lane = ptx::lane_id();
#pragma unroll
  for (int u = 0; u < kPairsPerLane; ++u) {
    const uint32_t index = base + u * 64 + 2 * lane;
    if (index + 1 < count) {
      const ulonglong2 pair = *reinterpret_cast<const ulonglong2*>(buffer + index);
      v[u][0] = pair.x;
      v[u][1] = pair.y;
    } else {
      v[u][0] = index < count ? buffer[index] : 0;
      v[u][1] = 0;
    }
  }
}

// In-place compaction of one query's candidate buffer (see the file comment). Warp-wide.
static __device__ __noinline__ void compact_candidates(uint64_t* buffer, SelectState* state, uint32_t* hist,
                                                       uint32_t k, uint32_t capacity) {
  const uint32_t lane = ptx::lane_id();
  const uint32_t count = state->count;
  const uint32_t maxkey = state->maxkey;
  const uint32_t accept_limit = k + (capacity - k) / 2;

  uint32_t above = 0;
  uint32_t range_lo = state->lo;
  uint32_t range_hi = maxkey;
  uint32_t rshift = state->shift;
  bool open_top = true;  // the maintained histogram's bin 255 is open-ended
  uint32_t edge = 0, tie_need = 0;
  bool tie = false;
  for (;;) {
    uint32_t bin, greater, population;
    warp_find_bin(hist, k - above, bin, greater, population);
    edge = range_lo + (bin << rshift);
    const uint64_t bin_end = static_cast<uint64_t>(edge) + ((uint64_t{1} << rshift) - 1);
    const uint32_t bin_last =
        (bin == 255 && open_top) ? range_hi : static_cast<uint32_t>(bin_end < range_hi ? bin_end : range_hi);
    if (above + greater + population <= accept_limit) break;
    if (edge == bin_last) {
      tie = true;
      tie_need = k - above - greater;
      break;
    }
    // Too many survivors: re-bin only [edge, bin_last].
    above += greater;
    range_lo = edge;
    range_hi = bin_last;
    open_top = false;
    rshift = shift_for_span(range_hi - range_lo);
    clear_hist(hist);
    for (uint32_t base = 0; base < count; base += kBatch) {
      uint64_t v[kPairsPerLane][2];
      load_batch(buffer, base, count, v);
#pragma unroll
      for (int u = 0; u < kPairsPerLane; ++u) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const uint32_t index = base + u * 64 + 2 * lane + e;
          const uint32_t key = static_cast<uint32_t>(v[u][e] >> 32);
          const bool in_range = index < count && key >= range_lo && key <= range_hi;
          warp_hist_add(hist, in_range ? (key - range_lo) >> rshift : 256u);
        }
      }
    }
    __syncwarp();
  }

  // Keep key >= edge (or key > edge plus the first tie_need entries equal to edge, which are
  // the lowest positions because the buffer is in position order); rebuild the histogram.
  // Writes keep the order: a lane's two entries are adjacent, lanes are in index order.
  const uint32_t new_lo = edge;
  const uint32_t new_shift = shift_for_span(maxkey - new_lo);
  clear_hist(hist);
  uint32_t written = 0, ties_seen = 0;
  for (uint32_t base = 0; base < count; base += kBatch) {
    uint64_t v[kPairsPerLane][2];
    load_batch(buffer, base, count, v);
    __syncwarp();  // every read of this batch happens before any write into it
#pragma unroll
    for (int u = 0; u < kPairsPerLane; ++u) {
      const uint32_t index = base + u * 64 + 2 * lane;
      bool keep[2];
      if (tie) {
        bool equal[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) equal[e] = index + e < count && static_cast<uint32_t>(v[u][e] >> 32) == edge;
        uint32_t equal_total;
        const uint32_t rank = ties_seen + warp_exclusive_sum(equal[0] + equal[1], equal_total);
        ties_seen += equal_total;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const uint32_t key = static_cast<uint32_t>(v[u][e] >> 32);
          const uint32_t my_rank = rank + (e == 1 && equal[0] ? 1 : 0);
          keep[e] = index + e < count && (key > edge || (equal[e] && my_rank < tie_need));
        }
      } else {
#pragma unroll
        for (int e = 0; e < 2; ++e) keep[e] = index + e < count && static_cast<uint32_t>(v[u][e] >> 32) >= edge;
      }
      uint32_t kept_total;
      uint32_t position = written + warp_exclusive_sum(keep[0] + keep[1], kept_total);
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        uint32_t b = 256;
        if (keep[e]) {
          buffer[position++] = v[u][e];
          b = (static_cast<uint32_t>(v[u][e] >> 32) - new_lo) >> new_shift;
          b = b < 255 ? b : 255;
        }
        warp_hist_add(hist, b);
      }
      written += kept_total;
    }
  }
  __syncwarp();
  if (lane == 0) {
    state->count = written;
    state->tau = tie ? edge : edge - 1;
    state->lo = new_lo;
    state->shift = new_shift;
  }
  __syncwarp();
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
  // Swizzled tiles need 1024-byte aligned atoms.
  const uint32_t raw_address = ptx::smem_addr(smem_raw);
  uint8_t* smem = smem_raw + ((1024 - (raw_address & 1023)) & 1023);
  uint8_t* q_smem = smem;
  uint8_t* k_smem = q_smem + C::kQStages * C::kQStageBytes;
  float* epi_smem = reinterpret_cast<float*>(k_smem + C::kKStages * C::kKStageBytes);
  uint32_t* hist_smem = reinterpret_cast<uint32_t*>(epi_smem + C::kEpiStages * C::kEpiStageFloats);
  float* rowmax_smem = reinterpret_cast<float*>(hist_smem + BQ * 256);
  SelectState* states = reinterpret_cast<SelectState*>(rowmax_smem + BQ * 32);
  uint64_t* barriers = reinterpret_cast<uint64_t*>(states + BQ);
  uint64_t* q_full = barriers;
  uint64_t* q_empty = q_full + 2;
  uint64_t* kv_full = q_empty + 2;
  uint64_t* kv_empty = kv_full + C::kKStages;
  uint64_t* epi_full = kv_empty + C::kKStages;
  uint64_t* epi_empty = epi_full + C::kEpiStages;

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
          ptx::tma_load_2d(q_smem + qs * C::kQStageBytes + c * C::kQChunkBytes, &q_map, c * C::kChunkElems,
                           q0 * kHeads, &q_full[qs]);
        }
        for (int tile = 0; tile < tiles; ++tile, ++g) {
          const int s = g % C::kKStages;
          ptx::mbar_wait(&kv_empty[s], ((g / C::kKStages) & 1) ^ 1);
          ptx::mbar_arrive_expect_tx(&kv_full[s], C::kKStageBytes);
          for (int c = 0; c < C::kChunks; ++c) {
            ptx::tma_load_2d(k_smem + s * C::kKStageBytes + c * C::kKChunkBytes, &k_map, c * C::kChunkElems,
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
        rowmax_smem[q * 32 + lane] = -INFINITY;
        clear_hist(hist_smem + q * 256);
      }
      __syncwarp();
      for (int tile = 0; tile < tiles; ++tile, ++g) {
        const int e = g % C::kEpiStages;
        ptx::mbar_wait(&epi_full[e], (g / C::kEpiStages) & 1);
        const float* epi = epi_smem + e * C::kEpiStageFloats;
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
            float m = rowmax_smem[q * 32 + lane];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int r = lane + 32 * half;
              const int s = tile * C::kBlockK + r;
              if (s <= t) m = fmaxf(m, epi[q * C::kEpiStride + r]);
            }
            rowmax_smem[q * 32 + lane] = m;
          } else {
            SelectState* st = &states[q];
            const uint32_t tau = st->tau, lo = st->lo, shift = st->shift;
            uint32_t count = st->count, maxkey = st->maxkey;
            uint64_t* buffer = p.candidates + row * static_cast<int64_t>(capacity);
            uint32_t* hist = hist_smem + q * 256;
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
              warp_hist_add(hist, b);
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
                                 hist_smem + q * 256, k, capacity);
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
          float m = rowmax_smem[q * 32 + lane];
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
      const uint64_t q_descriptor = ptx::sw128_descriptor(q_smem + qs * C::kQStageBytes + wg * (128 * 128));
      for (int tile = 0; tile < tiles; ++tile, ++g) {
        const int s = g % C::kKStages;
        ptx::mbar_wait(&kv_full[s], (g / C::kKStages) & 1);
        const uint64_t k_descriptor = ptx::sw128_descriptor(k_smem + s * C::kKStageBytes);
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
        float* epi = epi_smem + e * C::kEpiStageFloats;
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
