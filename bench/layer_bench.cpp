// Calibration throughput through one full decoder layer (indexer, sparse MLA attention, MoE) at
// several sequence lengths: tokens per second and the device memory the run took.
//
//   layer_bench MODEL_DIR [--device cuda] [--dtype bf16] [--layer 3] [--tokens 8192,32768,131072]
//               [--attention sparse] [--repeats 3] [--trace PREFIX]
//
// --trace writes, per length, a Chrome trace of one more forward (PyTorch's Kineto profiler:
// operators and, on a GPU, kernels) to PREFIX-<tokens>.json, to see where a layer's time goes.
//
// Prints one Markdown table row per length. Memory on a GPU is the growth of used device
// memory over the run (the caching allocator keeps what it reserved, so this is the peak).
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "device.h"
#include "model.h"
#include "tool_main.h"

using namespace indexcache;

namespace {

struct Arguments {
  std::string model;
  std::string device = "cuda";
  std::string dtype = "bf16";
  std::string attention = "sparse";
  int64_t layer = 3;
  std::vector<int64_t> tokens = {8192, 32768, 131072};
  int repeats = 3;
  std::string trace_prefix;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (flag == "--device") a.device = next();
    else if (flag == "--dtype") a.dtype = next();
    else if (flag == "--attention") a.attention = next();
    else if (flag == "--layer") a.layer = std::stoll(next());
    else if (flag == "--repeats") a.repeats = std::stoi(next());
    else if (flag == "--trace") a.trace_prefix = next();
    else if (flag == "--tokens") {
      a.tokens.clear();
      std::stringstream list(next());
      for (std::string item; std::getline(list, item, ',');) a.tokens.push_back(std::stoll(item));
    } else a.model = flag;
  }
  return a;
}

void synchronize(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

// One forward of `layer` under the Kineto profiler, saved as a Chrome trace.
void trace_forward(DsaModel& model, int64_t layer, const at::Tensor& hidden, const at::Device& device,
                   const std::string& path) {
  namespace profiler = torch::profiler::impl;
  std::set<profiler::ActivityType> activities = {profiler::ActivityType::CPU};
  if (device.is_cuda()) activities.insert(profiler::ActivityType::CUDA);
  const profiler::ProfilerConfig config(profiler::ProfilerState::KINETO);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  model.forward_layer(layer, hidden);
  synchronize(device);
  torch::autograd::profiler::disableProfiler()->save(path);
}

}  // namespace

int main(int argc, char** argv) {
  return run_tool("layer_bench", [&]() -> int {
    Arguments a = parse(argc, argv);
    ModelConfig config = load_model_config(a.model);
    const Fp8BlockSize block = config.fp8_block_size();
    ModelOptions options;
    options.device = parse_device(a.device);
    options.dtype = parse_dtype(a.dtype);
    options.attention = parse_attention_path(a.attention);
    DsaModel model(config, Checkpoint::open(a.model, block), options);
    std::printf("| tokens | layer %lld (%s) | ms per layer | tokens/s through one layer | device memory growth |\n",
                static_cast<long long>(a.layer), config.layer_is_moe[a.layer] ? "MoE" : "dense");
    std::printf("| --- | --- | --- | --- | --- |\n");
    std::mt19937_64 random(1);
    for (int64_t tokens : a.tokens) {
      std::vector<int64_t> ids(static_cast<std::size_t>(tokens));
      for (int64_t& id : ids) id = static_cast<int64_t>(random() % static_cast<uint64_t>(config.vocab_size));
      const int64_t free_before = device_free_memory(options.device);
      at::Tensor hidden = model.embed(ids);
      model.forward_layer(a.layer, hidden);  // warm-up: loads the weights, fills the allocator
      synchronize(options.device);
      auto start = std::chrono::steady_clock::now();
      for (int r = 0; r < a.repeats; ++r) model.forward_layer(a.layer, hidden);
      synchronize(options.device);
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / a.repeats;
      const int64_t free_after = device_free_memory(options.device);
      std::string memory = free_before > 0 ? std::to_string((free_before - free_after) >> 20) + " MiB" : "n/a (cpu)";
      std::printf("| %lld | %s %s | %.1f | %.0f | %s |\n", static_cast<long long>(tokens), a.dtype.c_str(),
                  a.attention.c_str(), seconds * 1e3, static_cast<double>(tokens) / seconds, memory.c_str());
      std::fflush(stdout);
      if (!a.trace_prefix.empty()) {
        trace_forward(model, a.layer, hidden, options.device, a.trace_prefix + "-" + std::to_string(tokens) + ".json");
      }
    }
    return 0;
  });
}
