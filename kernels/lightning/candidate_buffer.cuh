// The selection warps' candidate buffers (the TopKCandidates output of the score kernel).
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

#include <cuda_runtime.h>

#include <cstdint>

#include "common/ptx.cuh"
#include "common/select_primitives.cuh"
#include "lightning/config.h"

namespace indexcache::kernels::detail {

static_assert(kCandidateBins == selection::kWarpBins, "a candidate histogram is one warp's 256 bins");

// The bin width, as a shift, that spreads keys [lo, lo + span] over the 256 histogram bins.
__device__ __forceinline__ uint32_t shift_for_span(uint32_t span) {
  const int bits = span == 0 ? 0 : 32 - __clz(span);
  return bits > 8 ? static_cast<uint32_t>(bits - 8) : 0u;
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
    selection::warp_find_bin(hist, k - above, bin, greater, population);
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
    selection::warp_clear_histogram(hist);
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
          selection::warp_histogram_add(hist, in_range ? (key - range_lo) >> rshift : 256u);
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
  selection::warp_clear_histogram(hist);
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
        const uint32_t rank = ties_seen + selection::warp_exclusive_sum(equal[0] + equal[1], equal_total);
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
      uint32_t position = written + selection::warp_exclusive_sum(keep[0] + keep[1], kept_total);
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        uint32_t b = 256;
        if (keep[e]) {
          buffer[position++] = v[u][e];
          b = (static_cast<uint32_t>(v[u][e] >> 32) - new_lo) >> new_shift;
          b = b < 255 ? b : 255;
        }
        selection::warp_histogram_add(hist, b);
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

}  // namespace indexcache::kernels::detail
