// The largest top-k the indexer kernels accept. One constant for both folders because they
// form one pipeline: the score kernel's candidate output (lightning/lightning.h) is read by the
// exact select (select/topk_select.h), and both reject a larger k with cudaErrorInvalidValue.
// The dense select's gather buffer (select/topk_select.cu, kRowCandidates) is sized for the
// ~2k entries its sampled threshold keeps at this k.
#pragma once

#include <cstdint>

namespace indexcache::kernels {

constexpr int64_t kMaxTopK = 2048;

}  // namespace indexcache::kernels
