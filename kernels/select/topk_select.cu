// Exact per-row top-k with the documented rule (interface: topk_select.h; CPU reference:
// select_topk in lib/model/indexer.cpp): rows with t + 1 <= k hold 0..t then -1; other rows the
// k best positions (higher score first, exact ties to the lower position), written in ascending
// position order.
//
// One CTA per row. Every entry is a 64-bit composite (score key << 32 | ~position), all
// distinct, so the top-k is "the k largest integers". The exact selection of a set held in
// shared memory is an MSB-first radix select (12-bit digits, stopping as soon as a digit's bin
// holds exactly the entries still needed: two digits for distinct float scores) that finds the
// smallest member; the members' positions then go into a bitmap, and a prefix sum over its words
// writes them in ascending order. (The members used to be bitonic-sorted by descending score:
// 66 block-wide stages for k = 2048, which made the select compute-bound; the selection is a set
// for every consumer, so the order is now the one that costs nothing.)
//
// Candidate rows (the streaming pipeline's buffers, at most 2k + 1024 entries) are copied to
// shared memory and selected there.
//
// Dense rows (the chunked dense pipeline and the fp32 path: up to 256K scores per row) are read
// from global memory about 1.06-1.5 times (a radix select straight from global memory reads a
// row 3-5 times, and rows of 64K+ entries do not stay in L2 between passes):
//   - rows of up to kRowKeys entries: the row's keys are copied to shared memory once;
//   - longer rows: a sample of the row (every S-th run of 32 entries, at most kRowKeys keys)
//     gives a threshold whose expected count of entries above it is 2k; one full read gathers
//     every entry at or above it into shared memory (about 2k, at most kRowCandidates). Anything
//     below it is safely dropped when at least k entries reach it. When the sample misleads
//     (fewer than k or more than kRowCandidates entries reach the threshold: many equal scores,
//     or scores whose order the sample does not represent), the row falls back to the radix
//     select from global memory, so the result is exact either way.
// The first radix digit is counted while the keys are copied (or gathered), saving a pass.
//
// The block-wide bin search and prefix sum, and the warp append, are the select primitives the
// score kernel's selection warps also use (common/select_primitives.cuh).
#include <cuda_runtime.h>

#include <cstdint>

#include "common/ptx.cuh"
#include "common/select_primitives.cuh"
#include "select/topk_select.h"

namespace indexcache::kernels {

namespace {

constexpr int kSelectThreads = 512;
constexpr int kRowSmemBytes = 64 * 1024;            // dynamic shared memory of a dense-row CTA
constexpr int64_t kRowKeys = kRowSmemBytes / 4;       // 16384 uint32 keys: whole rows or a sample
constexpr int64_t kRowCandidates = kRowSmemBytes / 8;  // 8192 composites above the threshold
constexpr int kSampleRun = 32;                        // entries per sampled run (one warp load)

constexpr int kDigitBits = 12;  // radix digits of the 64-bit composites: 12, 12, 12, 12, 12, 4
constexpr int kBins = 1 << kDigitBits;

using SelectScratch = selection::BlockScratch<kBins>;

// The smallest of the `need` largest values among value(0 .. n-1) (distinct 64-bit integers,
// need <= n), returned as a prefix: exactly `need` values are >= it. MSB-first radix select with
// 12-bit digits, stopping as soon as a digit's bin holds exactly the entries still needed (for
// distinct float scores that is after two digits). With `first_digit_counted` the caller has
// already filled scratch.hist with the first digit (bits 63..52) of every value.
template <typename Value>
__device__ uint64_t radix_threshold(Value value, int64_t n, uint32_t need, SelectScratch& scratch,
                                    bool first_digit_counted = false) {
  uint64_t prefix = 0;
  for (int top = 64; top > 0;) {
    const int width = top >= kDigitBits ? kDigitBits : top;
    const int shift = top - width;
    if (!(top == 64 && first_digit_counted)) {
      selection::block_clear_histogram(scratch);
      __syncthreads();
      const uint64_t high_mask = top == 64 ? 0 : (~uint64_t{0} << top);
      const uint64_t digit_mask = (uint64_t{1} << width) - 1;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const uint64_t v = value(i);
        if ((v & high_mask) == prefix) atomicAdd(&scratch.hist[(v >> shift) & digit_mask], 1u);
      }
      __syncthreads();
    }
    selection::block_find_bin(need, scratch);
    const uint32_t bin = scratch.found[0], above = scratch.found[1], population = scratch.found[2];
    __syncthreads();  // every thread has read `found` before the next digit's find_bin
    prefix |= static_cast<uint64_t>(bin) << shift;
    need -= above;
    if (population == need) break;  // every entry under this prefix is a member
    top = shift;
  }
  return prefix;
}

// Writes the positions of the values >= prefix (exactly k of them) to out_row in ascending
// order, with no sort: the positions are marked in a bitmap (scratch.hist, free once the
// threshold is known; kBitmapBits positions per window, so rows longer than that take a pass per
// window) and a prefix sum over the words' populations places them. `count` values, positions
// in [0, positions).
template <typename Value>
__device__ void write_members_ascending(Value value, int64_t count, uint64_t prefix, int64_t positions,
                                        int64_t* out_row, SelectScratch& scratch) {
  constexpr int64_t kBitmapBits = int64_t{kBins} * 32;
  uint32_t* bitmap = scratch.hist;
  int64_t written = 0;
  for (int64_t window = 0; window < positions; window += kBitmapBits) {
    const int64_t span = positions - window < kBitmapBits ? positions - window : kBitmapBits;
    const int words = static_cast<int>((span + 31) / 32);
    for (int w = threadIdx.x; w < words; w += blockDim.x) bitmap[w] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const uint64_t v = value(i);
      if (v < prefix) continue;
      const int64_t p = static_cast<int64_t>(ptx::composite_position(v)) - window;
      if (p >= 0 && p < span) atomicOr(&bitmap[p >> 5], 1u << (p & 31));
    }
    __syncthreads();
    const int per_thread = (words + static_cast<int>(blockDim.x) - 1) / static_cast<int>(blockDim.x);
    const int first_word = static_cast<int>(threadIdx.x) * per_thread;
    uint32_t own = 0;
    for (int j = 0; j < per_thread && first_word + j < words; ++j) own += __popc(bitmap[first_word + j]);
    uint32_t total = 0;
    int64_t slot = written + selection::block_exclusive_sum(own, total, scratch);
    for (int j = 0; j < per_thread && first_word + j < words; ++j) {
      uint32_t bits = bitmap[first_word + j];
      while (bits != 0) {
        const int bit = __ffs(bits) - 1;
        bits &= bits - 1;
        out_row[slot++] = window + 32 * int64_t{first_word + j} + bit;
      }
    }
    written += total;
    __syncthreads();  // the bitmap is read before the next window clears it
  }
}

// Rows with t + 1 <= k select every causal position: 0..t, then -1. Writes such a row and
// returns true; false (nothing written) for rows that need a selection.
__device__ __forceinline__ bool write_whole_row(int64_t t, int64_t k, int64_t* out_row) {
  if (t >= k) return false;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) out_row[j] = j <= t ? j : -1;
  return true;
}

__global__ void __launch_bounds__(kSelectThreads)
    select_candidate_rows_kernel(const uint64_t* candidates, const int32_t* counts, int64_t capacity,
                                 int64_t row_begin, int64_t k, int64_t* out) {
  extern __shared__ uint64_t row_smem[];  // the whole candidate row, read by every pass
  __shared__ SelectScratch scratch;
  const int64_t r = blockIdx.x;
  const int64_t t = row_begin + r;
  int64_t* out_row = out + r * k;
  if (write_whole_row(t, k, out_row)) return;
  const int64_t n = counts[r];
  const uint64_t* source = candidates + r * capacity;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) row_smem[i] = source[i];
  __syncthreads();
  const auto value = [&](int64_t i) { return row_smem[i]; };
  const uint64_t prefix = radix_threshold(value, n, static_cast<uint32_t>(k), scratch);
  write_members_ascending(value, n, prefix, t + 1, out_row, scratch);
}

// The first radix digit (bits 63..52 of a composite: the key's top 12 bits) of a key, counted
// while the keys are copied, which saves radix_threshold its first pass.
__device__ __forceinline__ void count_first_digit(uint32_t key, SelectScratch& scratch) {
  atomicAdd(&scratch.hist[key >> (32 - kDigitBits)], 1u);
}

// Calls visit(i, in_row, key) for i = threadIdx.x + j * blockDim.x over the row, with key =
// score_key(row[i]) (in_row false past the end); every thread makes the same number of calls,
// so visit may use warp collectives. Eight loads are in flight per thread (bandwidth).
template <typename Visit>
__device__ __forceinline__ void for_each_row_key(const float* row, int64_t n, Visit visit) {
  constexpr int kUnroll = 8;
  const int64_t step = blockDim.x;
  for (int64_t base = 0; base < n; base += step * kUnroll) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * step + threadIdx.x;
      v[u] = i < n ? row[i] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * step + threadIdx.x;
      visit(i, i < n, ptx::score_key(v[u]));
    }
  }
}

// keys[j] = score_key(row[j]) for j < n, and their first digits counted (scratch.hist cleared
// before).
__device__ __forceinline__ void copy_row_keys(const float* row, int64_t n, uint32_t* keys, SelectScratch& scratch) {
  for_each_row_key(row, n, [&](int64_t i, bool in_row, uint32_t key) {
    if (!in_row) return;
    keys[i] = key;
    count_first_digit(key, scratch);
  });
}

// The sample of a long row: runs c = 0, S, 2S, ... of kSampleRun entries, packed into keys.
// Returns the sample's size (only the row's last run can be partial, and it is packed last).
// Counts the first digits like copy_row_keys.
__device__ int64_t copy_row_sample(const float* row, int64_t n, int64_t stride_runs, uint32_t* keys,
                                   SelectScratch& scratch) {
  const int64_t runs = (n + kSampleRun - 1) / kSampleRun;
  const int64_t sampled = (runs + stride_runs - 1) / stride_runs;
  const int warps = blockDim.x / 32;
  const int warp = threadIdx.x / 32;
  const uint32_t lane = ptx::lane_id();
  constexpr int kUnroll = 4;
  for (int64_t base = warp; base < sampled; base += warps * kUnroll) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = base + u * warps;
      const int64_t i = j * stride_runs * kSampleRun + lane;
      v[u] = j < sampled && i < n ? row[i] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = base + u * warps;
      const int64_t i = j * stride_runs * kSampleRun + lane;
      if (j < sampled && i < n) {
        const uint32_t key = ptx::score_key(v[u]);
        keys[j * kSampleRun + lane] = key;
        count_first_digit(key, scratch);
      }
    }
  }
  const int64_t last_start = (sampled - 1) * stride_runs * kSampleRun;
  const int64_t last_size = n - last_start < kSampleRun ? n - last_start : kSampleRun;
  return (sampled - 1) * kSampleRun + last_size;
}

// Appends composite(key, position) of every entry with key >= threshold to candidates (the
// count goes on past kRowCandidates; only the first kRowCandidates are written, and their first
// digits counted).
__device__ void gather_above(const float* row, int64_t n, uint32_t threshold, uint64_t* candidates,
                             SelectScratch& scratch) {
  if (threadIdx.x == 0) scratch.counter = 0;
  selection::block_clear_histogram(scratch);
  __syncthreads();
  for_each_row_key(row, n, [&](int64_t i, bool in_row, uint32_t key) {
    const bool take = in_row && key >= threshold;
    if (selection::warp_append(take, ptx::composite_key(key, static_cast<uint32_t>(i)), candidates, &scratch.counter,
                    static_cast<uint32_t>(kRowCandidates))) {
      count_first_digit(key, scratch);
    }
  });
  __syncthreads();
}

__global__ void __launch_bounds__(kSelectThreads, 2)
    select_dense_rows_kernel(const float* scores, int64_t ld, int64_t row_begin, int64_t k, int64_t* out) {
  extern __shared__ uint64_t row_smem[];  // kRowSmemBytes: row keys, a sample's keys, or candidates
  __shared__ SelectScratch scratch;
  const int64_t r = blockIdx.x;
  const int64_t t = row_begin + r;
  int64_t* out_row = out + r * k;
  if (write_whole_row(t, k, out_row)) return;
  const int64_t n = t + 1;
  const uint32_t need = static_cast<uint32_t>(k);
  const float* row = scores + r * ld;
  uint32_t* keys = reinterpret_cast<uint32_t*>(row_smem);

  selection::block_clear_histogram(scratch);
  __syncthreads();
  if (n <= kRowKeys) {
    copy_row_keys(row, n, keys, scratch);
    __syncthreads();
    const auto value = [&](int64_t i) { return ptx::composite_key(keys[i], static_cast<uint32_t>(i)); };
    const uint64_t prefix = radix_threshold(value, n, need, scratch, /*first_digit_counted=*/true);
    write_members_ascending(value, n, prefix, n, out_row, scratch);
    return;
  }

  // A sample of at most kRowKeys keys; its rank that scales to about 2k entries of the row.
  const int64_t stride_runs = (n + kRowKeys - 1) / kRowKeys;
  const int64_t m = copy_row_sample(row, n, stride_runs, keys, scratch);
  __syncthreads();
  int64_t rank = (2 * k * m) / n;
  rank = rank < 1 ? 1 : (rank > m ? m : rank);
  const auto sample_value = [&](int64_t i) { return ptx::composite_key(keys[i], static_cast<uint32_t>(i)); };
  const uint32_t threshold =
      static_cast<uint32_t>(radix_threshold(sample_value, m, static_cast<uint32_t>(rank), scratch, true) >> 32);

  // The sample's keys are dead from here: the same shared memory takes the candidates.
  gather_above(row, n, threshold, row_smem, scratch);
  const int64_t found = scratch.counter;
  if (found >= k && found <= kRowCandidates) {
    const auto value = [&](int64_t i) { return row_smem[i]; };
    const uint64_t prefix = radix_threshold(value, found, need, scratch, /*first_digit_counted=*/true);
    write_members_ascending(value, found, prefix, n, out_row, scratch);
  } else {
    const auto value = [&](int64_t i) {
      return ptx::composite_key(ptx::score_key(row[i]), static_cast<uint32_t>(i));
    };
    const uint64_t prefix = radix_threshold(value, n, need, scratch);
    write_members_ascending(value, n, prefix, n, out_row, scratch);
  }
}

// Dynamic shared memory above 48 KB needs the attribute, once per kernel and size.
template <typename Kernel>
cudaError_t allow_shared_memory(Kernel kernel, size_t bytes, size_t& configured) {
  if (configured >= bytes) return cudaSuccess;
  const cudaError_t status =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (status == cudaSuccess) configured = bytes;
  return status;
}

}  // namespace

cudaError_t select_topk_from_candidates(const uint64_t* candidates, const int32_t* counts, int64_t capacity,
                                        int64_t row_begin, int64_t rows, int64_t k, int64_t* out,
                                        cudaStream_t stream) {
  if (k < 1 || k > kMaxTopK || rows < 0 || capacity < k) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const size_t dynamic = static_cast<size_t>(capacity) * sizeof(uint64_t);
  static size_t configured = 0;
  const cudaError_t status = allow_shared_memory(select_candidate_rows_kernel, dynamic, configured);
  if (status != cudaSuccess) return status;
  select_candidate_rows_kernel<<<static_cast<unsigned>(rows), kSelectThreads, dynamic, stream>>>(
      candidates, counts, capacity, row_begin, k, out);
  return cudaGetLastError();
}

cudaError_t select_topk_from_scores(const float* scores, int64_t ld, int64_t row_begin, int64_t rows, int64_t k,
                                    int64_t* out, cudaStream_t stream) {
  if (k < 1 || k > kMaxTopK || rows < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  static size_t configured = 0;
  const cudaError_t status = allow_shared_memory(select_dense_rows_kernel, kRowSmemBytes, configured);
  if (status != cudaSuccess) return status;
  select_dense_rows_kernel<<<static_cast<unsigned>(rows), kSelectThreads, kRowSmemBytes, stream>>>(scores, ld,
                                                                                                   row_begin, k, out);
  return cudaGetLastError();
}

}  // namespace indexcache::kernels
