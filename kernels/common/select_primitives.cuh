// Histogram-threshold primitives shared by the two top-k selections: the score kernel's
// selection warps (one warp per query, 256-bin histograms: lightning/candidate_buffer.cuh) and
// the exact select (one CTA per row, radix digits: select/topk_select.cu). Both find a
// threshold the same way - the highest bin whose suffix sum reaches the number of entries
// still needed - and both place survivors with prefix sums, so the scans live here once, in a
// warp flavour (data in one warp's registers and a small shared histogram) and a block flavour
// (partial results of the warps meet in shared scratch). Device code only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/ptx.cuh"

namespace indexcache::kernels::selection {

// --- warp scans -------------------------------------------------------------------------------

// Sum of `value` over this lane and the lanes above it. The bin searches scan from the top
// because they look for the highest bin with enough entries at or above it.
__device__ __forceinline__ uint32_t warp_suffix_sum(uint32_t value) {
  const uint32_t lane = ptx::lane_id();
  uint32_t suffix = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const uint32_t other = __shfl_down_sync(ptx::kFullMask, suffix, offset);
    if (lane + offset < 32) suffix += other;
  }
  return suffix;
}

// Sum of `value` over this lane and the lanes below it (the write positions of survivors).
__device__ __forceinline__ uint32_t warp_prefix_sum(uint32_t value) {
  const uint32_t lane = ptx::lane_id();
  uint32_t inclusive = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const uint32_t other = __shfl_up_sync(ptx::kFullMask, inclusive, offset);
    if (lane >= static_cast<uint32_t>(offset)) inclusive += other;
  }
  return inclusive;
}

// --- warp flavour: one warp, a 256-bin histogram --------------------------------------------

constexpr int kWarpBins = 256;  // 8 bins per lane

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
  const uint32_t suffix = warp_suffix_sum(total);  // this lane's bins and every higher lane's
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

__device__ __forceinline__ void warp_clear_histogram(uint32_t* hist) {
  const uint32_t lane = ptx::lane_id();
  __syncwarp();  // earlier reads of the bins by other lanes (warp_find_bin) come first
#pragma unroll
  for (int j = 0; j < 8; ++j) hist[lane + 32 * j] = 0;
  __syncwarp();
}

// Exclusive prefix sum of a small per-lane count over the warp; `total` gets the warp's sum.
__device__ __forceinline__ uint32_t warp_exclusive_sum(uint32_t value, uint32_t& total) {
  const uint32_t inclusive = warp_prefix_sum(value);
  total = __shfl_sync(ptx::kFullMask, inclusive, 31);
  return inclusive - value;
}

// hist[bin] += 1 for every lane with bin < 256; lanes that hit the same bin are added with one
// atomic (candidates cluster in few bins, so plain atomics would serialise up to 32-way).
__device__ __forceinline__ void warp_histogram_add(uint32_t* hist, uint32_t bin) {
  const uint32_t peers = __match_any_sync(ptx::kFullMask, bin);
  if (bin < 256 && ptx::lane_id() == static_cast<uint32_t>(__ffs(peers) - 1)) atomicAdd(&hist[bin], __popc(peers));
}

// Appends `v` to destination[counter++] for every lane with `take` (slots past `limit` are
// counted but not written); true for the lanes that wrote. One shared atomic per warp. The
// whole warp calls.
__device__ __forceinline__ bool warp_append(bool take, uint64_t v, uint64_t* destination, uint32_t* counter,
                                            uint32_t limit) {
  const uint32_t mask = __ballot_sync(ptx::kFullMask, take);
  if (mask == 0) return false;
  const int leader = __ffs(mask) - 1;
  uint32_t base = 0;
  if (static_cast<int>(ptx::lane_id()) == leader) base = atomicAdd(counter, static_cast<uint32_t>(__popc(mask)));
  base = __shfl_sync(ptx::kFullMask, base, leader);
  const uint32_t slot = base + static_cast<uint32_t>(__popc(mask & ptx::lanemask_lt()));
  const bool written = take && slot < limit;
  if (written) destination[slot] = v;
  return written;
}

// --- block flavour: one CTA, kBins bins -------------------------------------------------------

// Shared scratch of a block-wide selection: the histogram, one partial sum per warp (the
// block scans meet there), the bin that block_find_bin found, and an append counter.
template <int kBins>
struct BlockScratch {
  uint32_t hist[kBins];
  uint32_t warp_totals[32];
  uint32_t found[3];  // bin, entries above it, entries in it
  uint32_t counter;
};

template <int kBins>
__device__ __forceinline__ void block_clear_histogram(BlockScratch<kBins>& scratch) {
  for (int i = threadIdx.x; i < kBins; i += blockDim.x) scratch.hist[i] = 0;
}

// The highest bin b with hist[b] + hist[b+1] + ... >= need (the total must reach need): bin,
// count above it and its population into scratch.found. Block-wide: each thread owns
// kBins / blockDim.x consecutive bins, and a suffix sum over threads finds the owner.
template <int kBins>
__device__ void block_find_bin(uint32_t need, BlockScratch<kBins>& scratch) {
  const int per_thread = kBins / blockDim.x;
  const int tid = threadIdx.x;
  const uint32_t lane = ptx::lane_id();
  const int warp = tid / 32, warps = blockDim.x / 32;
  uint32_t own = 0;
  for (int j = 0; j < per_thread; ++j) own += scratch.hist[tid * per_thread + j];
  uint32_t suffix = warp_suffix_sum(own);  // bins of this lane and the higher lanes of the warp
  if (lane == 0) scratch.warp_totals[warp] = suffix;
  __syncthreads();
  for (int w = warp + 1; w < warps; ++w) suffix += scratch.warp_totals[w];
  const uint32_t higher = suffix - own;
  if (higher < need && suffix >= need) {  // exactly one thread
    uint32_t running = higher;
    for (int j = per_thread - 1; j >= 0; --j) {
      const uint32_t count = scratch.hist[tid * per_thread + j];
      if (running + count >= need) {
        scratch.found[0] = static_cast<uint32_t>(tid * per_thread + j);
        scratch.found[1] = running;
        scratch.found[2] = count;
        break;
      }
      running += count;
    }
  }
  __syncthreads();
}

// Exclusive prefix sum of one value per thread over the block; `total` gets the block's sum.
template <int kBins>
__device__ uint32_t block_exclusive_sum(uint32_t value, uint32_t& total, BlockScratch<kBins>& scratch) {
  const uint32_t lane = ptx::lane_id();
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const uint32_t inclusive = warp_prefix_sum(value);
  if (lane == 31) scratch.warp_totals[warp] = inclusive;
  __syncthreads();
  uint32_t before = inclusive - value;
  total = 0;
  for (int w = 0; w < warps; ++w) {
    const uint32_t count = scratch.warp_totals[w];
    if (w < warp) before += count;
    total += count;
  }
  __syncthreads();  // warp_totals are read before anyone writes them again
  return before;
}

}  // namespace indexcache::kernels::selection
