// The score kernel for bf16, head dim 128, at 16, 32 and 64 heads (lightning/variants.h).
#include "lightning/lightning_kernel.cuh"
#include "lightning/variants.h"

namespace indexcache::kernels::detail {

cudaError_t launch_lightning_bf16_d128(int heads, const CUtensorMap& q_map, const CUtensorMap& k_map,
                                       const LightningParams& params, int grid, cudaStream_t stream) {
  switch (heads) {
    case 16: return launch_lightning<false, 128, 16>(q_map, k_map, params, grid, stream);
    case 32: return launch_lightning<false, 128, 32>(q_map, k_map, params, grid, stream);
    case 64: return launch_lightning<false, 128, 64>(q_map, k_map, params, grid, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace indexcache::kernels::detail
