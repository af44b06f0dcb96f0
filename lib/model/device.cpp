#include "device.h"

#include <torch/cuda.h>

#include "error.h"

#ifdef INDEXCACHE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace indexcache {

at::Device parse_device(const std::string& text) {
  if (text == "cpu") return at::Device(at::kCPU);
  if (text.rfind("cuda", 0) != 0) {
    throw InputError("--device", "\"" + text + "\" is not a device (use cpu, cuda or cuda:N)");
  }
  int64_t index = 0;
  if (text.size() > 4) {
    std::string number = text.substr(4);
    if (number.size() < 2 || number[0] != ':' || number.find_first_not_of("0123456789", 1) != std::string::npos ||
        number.size() > 6) {
      throw InputError("--device", "\"" + text + "\" is not a device (use cpu, cuda or cuda:N)");
    }
    index = std::stoll(number.substr(1));
  }
  if (!at::hasCUDA()) {
    throw InputError("--device", text + " was asked for, but this build of indexcache has no CUDA support "
                                        "(its libtorch is CPU-only); use --device cpu");
  }
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (count == 0) throw InputError("--device", text + " was asked for, but no GPU is visible");
  if (index >= count) {
    throw InputError("--device", "cuda:" + std::to_string(index) + " does not exist (this machine has " +
                                     std::to_string(count) + " GPU" + (count == 1 ? "" : "s") + ")");
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

at::ScalarType parse_dtype(const std::string& text) {
  if (text == "fp32" || text == "float32") return at::kFloat;
  if (text == "bf16" || text == "bfloat16") return at::kBFloat16;
  throw InputError("--dtype", "\"" + text + "\" is not supported (use fp32 or bf16)");
}

std::string describe_device(const at::Device& device) {
  if (!device.is_cuda()) return "cpu";
  std::string name = "cuda:" + std::to_string(device.index() < 0 ? 0 : device.index());
#ifdef INDEXCACHE_CUDA
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, device.index() < 0 ? 0 : device.index()) == cudaSuccess) {
    name += std::string(" (") + properties.name + ")";
  }
#endif
  return name;
}

const char* dtype_label(at::ScalarType dtype) { return dtype == at::kBFloat16 ? "bf16" : "fp32"; }

int64_t device_free_memory(const at::Device& device) {
#ifdef INDEXCACHE_CUDA
  if (device.is_cuda()) {
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device.index() < 0 ? 0 : device.index());
    size_t free_bytes = 0, total_bytes = 0;
    cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
    cudaSetDevice(previous);
    if (status == cudaSuccess) return static_cast<int64_t>(free_bytes);
  }
#endif
  (void)device;
  return -1;
}

}  // namespace indexcache
