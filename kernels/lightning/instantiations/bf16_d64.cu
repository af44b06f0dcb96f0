// The score kernel for bf16, head dim 64, at 16, 32 and 64 heads (lightning/variants.h).
#include "lightning/lightning_kernel.cuh"
#include "lightning/variants.h"

namespace indexcache::kernels::detail {

cudaError_t launch_lightning_bf16_d64(int heads, const CUtensorMap& q_map, const CUtensorMap& k_map,
                                       const LightningParams& params, int grid, cudaStream_t stream) {
  switch (heads) {
    case 16: return launch_lightning<false, 64, 16>(q_map, k_map, params, grid, stream);
    case 32: return launch_lightning<false, 64, 32>(q_map, k_map, params, grid, stream);
    case 64: return launch_lightning<false, 64, 64>(q_map, k_map, params, grid, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace indexcache::kernels::detail
