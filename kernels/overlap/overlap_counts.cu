// Overlap counting without sorting. One CTA per measured query (grid-stride), positions taken in
// windows of W positions:
//   1. scatter: every (layer a, position p) of the query's L selections sets bit a of mask[p]
//      (one 64-bit word per 64 layers) and marks p in an occupancy bitmap;
//   2. count: thread (group g, layer a) walks the occupied positions of its share, and for each
//      p whose mask holds a, adds the whole mask into a bit-sliced counter (12 bit-planes of
//      64-bit words: counter[b] for all 64 layers b of a word at once, a carry-save add of a few
//      logic ops). So counts[a][b] = number of positions selected by both a and b;
//   3. at the end of the query the planes are decoded into a per-CTA [L, L] table in shared
//      memory, and the table is added to the global counts once per CTA.
// Work per query is O(L k + W / 32 + L * popcount) logic operations instead of the
// [L, tokens] x [tokens, L] product of the ATen path.
#include <cuda_runtime.h>

#include <cstdint>

#include "overlap/overlap_counts.h"

namespace indexcache::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kPlanes = 12;

template <int kWords>
struct OverlapConfig {
  static constexpr int kWindow = 16384 / kWords;            // positions per window
  static constexpr int kGroupSize = 64 * kWords;            // threads per group (one per layer)
  static constexpr int kGroups = kThreads / kGroupSize;
  static constexpr int kMaskBytes = kWindow * kWords * 8;   // 128 KB
  static constexpr int kOccupancyBytes = kWindow / 8;
};

template <int kWords>
__global__ void __launch_bounds__(kThreads, 1)
    overlap_counts_kernel(const int64_t* const* layer_rows, int layers, int64_t k, int64_t first_query,
                          int64_t stride, int64_t measured, unsigned long long* counts) {
  using C = OverlapConfig<kWords>;
  extern __shared__ unsigned long long overlap_smem[];
  unsigned long long* masks = overlap_smem;
  uint32_t* occupancy = reinterpret_cast<uint32_t*>(masks + C::kWindow * kWords);
  uint32_t* table = occupancy + C::kWindow / 32;  // [layers, layers]

  const int tid = threadIdx.x;
  const int layer = tid % C::kGroupSize;
  const int group = tid / C::kGroupSize;
  for (int i = tid; i < layers * layers; i += kThreads) table[i] = 0;

  for (int64_t query = blockIdx.x; query < measured; query += gridDim.x) {
    const int64_t t = first_query + query * stride;
    unsigned long long planes[kWords][kPlanes];
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
#pragma unroll
      for (int b = 0; b < kPlanes; ++b) planes[w][b] = 0;
    }
    for (int64_t window = 0; window <= t; window += C::kWindow) {
      __syncthreads();
      for (int i = tid; i < C::kWindow * kWords; i += kThreads) masks[i] = 0;
      for (int i = tid; i < C::kWindow / 32; i += kThreads) occupancy[i] = 0;
      __syncthreads();
      const int64_t entries = static_cast<int64_t>(layers) * k;
      for (int64_t e = tid; e < entries; e += kThreads) {
        const int a = static_cast<int>(e / k);
        const int64_t position = layer_rows[a][t * k + (e - static_cast<int64_t>(a) * k)];
        if (position < window || position >= window + C::kWindow || position > t) continue;  // padding is -1
        const int p = static_cast<int>(position - window);
        atomicOr(&masks[p * kWords + a / 64], 1ull << (a % 64));
        atomicOr(&occupancy[p / 32], 1u << (p % 32));
      }
      __syncthreads();
      if (layer < layers) {
        const int my_word = layer / 64;
        const unsigned long long my_bit = 1ull << (layer % 64);
        for (int word = group; word < C::kWindow / 32; word += C::kGroups) {
          uint32_t bits = occupancy[word];
          while (bits != 0) {
            const int p = word * 32 + __ffs(bits) - 1;
            bits &= bits - 1;
            if ((masks[p * kWords + my_word] & my_bit) == 0) continue;
#pragma unroll
            for (int w = 0; w < kWords; ++w) {
              unsigned long long carry = masks[p * kWords + w];
#pragma unroll
              for (int b = 0; b < kPlanes; ++b) {
                const unsigned long long next = planes[w][b] & carry;
                planes[w][b] ^= carry;
                carry = next;
              }
            }
          }
        }
      }
    }
    // Decode the bit-sliced counters of this query into the CTA's table.
    if (layer < layers) {
#pragma unroll
      for (int w = 0; w < kWords; ++w) {
        for (int bit = 0; bit < 64; ++bit) {
          const int other = w * 64 + bit;
          if (other >= layers) break;
          uint32_t value = 0;
#pragma unroll
          for (int b = 0; b < kPlanes; ++b) value |= static_cast<uint32_t>((planes[w][b] >> bit) & 1ull) << b;
          if (value != 0) atomicAdd(&table[layer * layers + other], value);
        }
      }
    }
  }
  __syncthreads();
  for (int i = tid; i < layers * layers; i += kThreads) {
    if (table[i] != 0) atomicAdd(&counts[i], static_cast<unsigned long long>(table[i]));
  }
}

template <int kWords>
cudaError_t launch(const int64_t* const* layer_rows, int layers, int64_t k, int64_t first_query, int64_t stride,
                   int64_t measured, unsigned long long* counts, cudaStream_t stream) {
  using C = OverlapConfig<kWords>;
  const size_t smem = C::kMaskBytes + C::kOccupancyBytes + static_cast<size_t>(layers) * layers * 4;
  const cudaError_t status =
      cudaFuncSetAttribute(overlap_counts_kernel<kWords>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem));
  if (status != cudaSuccess) return status;
  int device = 0, sms = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int64_t grid = measured < sms ? measured : sms;
  overlap_counts_kernel<kWords><<<static_cast<unsigned>(grid), kThreads, smem, stream>>>(
      layer_rows, layers, k, first_query, stride, measured, counts);
  return cudaGetLastError();
}

}  // namespace

bool overlap_counts_supported(int64_t layers, int64_t k) {
  return layers >= 1 && layers <= 128 && k >= 1 && k < (1 << kPlanes);
}

cudaError_t overlap_counts_launch(const int64_t* const* layer_rows, int64_t layers, int64_t tokens, int64_t k,
                                  int64_t first_query, int64_t stride, int64_t measured,
                                  unsigned long long* counts, cudaStream_t stream) {
  if (!overlap_counts_supported(layers, k) || stride < 1 || first_query < 0) return cudaErrorInvalidValue;
  if (measured <= 0) return cudaSuccess;
  if (first_query + (measured - 1) * stride >= tokens) return cudaErrorInvalidValue;
  if (layers <= 64) return launch<1>(layer_rows, static_cast<int>(layers), k, first_query, stride, measured, counts, stream);
  return launch<2>(layer_rows, static_cast<int>(layers), k, first_query, stride, measured, counts, stream);
}

}  // namespace indexcache::kernels
