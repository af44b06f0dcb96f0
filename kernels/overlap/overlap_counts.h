// Cross-layer top-k overlap counts on the GPU (plain C++ launcher: raw device pointers, sizes,
// a stream; CPU reference: OverlapAccumulator in lib/overlap/overlap.cpp). For L layers'
// selections [tokens, k] (int64, padding -1) and the measured queries
// t = first_query + i * stride (i < measured), adds |A_t ∩ B_t| for every layer pair (a, b) to
// counts[a * L + b].
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace indexcache::kernels {

// Layers up to 128 and k up to 4095 (bit-sliced 12-bit counters); others return
// cudaErrorInvalidValue and the caller falls back to the ATen path.
bool overlap_counts_supported(int64_t layers, int64_t k);

// layer_rows: device array of `layers` device pointers, each to a [tokens, k] int64 matrix;
// counts: device [layers, layers] uint64, added to (not overwritten).
cudaError_t overlap_counts_launch(const int64_t* const* layer_rows, int64_t layers, int64_t tokens, int64_t k,
                                  int64_t first_query, int64_t stride, int64_t measured,
                                  unsigned long long* counts, cudaStream_t stream);

}  // namespace indexcache::kernels
