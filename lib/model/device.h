// --device and --dtype values, checked against what this build and machine can do.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace indexcache {

// "cpu", "cuda" (device 0) or "cuda:N". Throws InputError when the text is malformed, when
// this build's libtorch has no CUDA, when no GPU is visible, or when N does not exist.
at::Device parse_device(const std::string& text);

// "fp32" or "bf16" (also "float32", "bfloat16").
at::ScalarType parse_dtype(const std::string& text);

// "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)", ... for reports.
std::string describe_device(const at::Device& device);
const char* dtype_label(at::ScalarType dtype);

// Free memory of a GPU in bytes (cudaMemGetInfo), or -1 for the CPU or a build without CUDA.
int64_t device_free_memory(const at::Device& device);

}  // namespace indexcache
