// The compiled variants of the score kernel, one per (element, head dim), each defined in its
// own file under instantiations/ so that the build compiles them in parallel; each switches on
// the head count. lightning_launch.cu picks one.
#pragma once

#include <cuda.h>  // CUtensorMap (a plain struct; nothing from libcuda is linked)
#include <cuda_runtime.h>

#include "lightning/params.h"

namespace indexcache::kernels::detail {

cudaError_t launch_lightning_bf16_d64(int heads, const CUtensorMap& q_map, const CUtensorMap& k_map,
                                      const LightningParams& params, int grid, cudaStream_t stream);
cudaError_t launch_lightning_bf16_d128(int heads, const CUtensorMap& q_map, const CUtensorMap& k_map,
                                       const LightningParams& params, int grid, cudaStream_t stream);
cudaError_t launch_lightning_fp8_d128(int heads, const CUtensorMap& q_map, const CUtensorMap& k_map,
                                      const LightningParams& params, int grid, cudaStream_t stream);

}  // namespace indexcache::kernels::detail
