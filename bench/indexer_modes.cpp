// How often the indexer's precision modes select different sets: runs a model all-F with
// --indexer-precision fp32, bf16 and fp8 and compares every layer's top-k rows pairwise over
// the measured queries (t + 1 > k): mean |A ∩ B| / k, the share of rows that differ at all, and
// the calibration loss of each mode. Differences compound through the layers (a different
// selection changes the attention output that the next layer's indexer sees), as they would
// between a bf16 calibration run and an FP8-indexer server.
//
//   indexer_modes [--device cpu|cuda] [--dtype fp32|bf16] [--model DIR --data FILE.jsonl]
//
// Without --model it runs the golden fixture models (tests/fixtures/golden/*, data.jsonl).
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "device.h"
#include "evaluate.h"
#include "indexer.h"
#include "layer_pattern.h"
#include "model.h"
#include "model_config.h"

using namespace indexcache;

namespace {

std::vector<std::vector<int64_t>> read_sequences(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<int64_t>> sequences;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    sequences.push_back(nlohmann::json::parse(line).at("input_ids").get<std::vector<int64_t>>());
  }
  return sequences;
}

struct Pair {
  double overlap_sum = 0.0;
  int64_t rows = 0;
  int64_t differing = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string device_text = "cpu", dtype_text = "fp32", model_dir, data_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--device") device_text = next();
    else if (arg == "--dtype") dtype_text = next();
    else if (arg == "--model") model_dir = next();
    else if (arg == "--data") data_path = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  std::vector<std::pair<std::string, std::string>> cases;  // (model dir, data file)
  if (!model_dir.empty()) {
    cases.emplace_back(model_dir, data_path);
  } else {
    const std::string golden = std::string(INDEXCACHE_SOURCE_DIR) + "/tests/fixtures/golden/";
    for (const char* name : {"dsv32_default", "dsv32_yarn", "glm_dsa", "dsv32_fp8", "dsv32_sharded"}) {
      cases.emplace_back(golden + name, golden + name + "/data.jsonl");
    }
  }
  const at::Device device = parse_device(device_text);
  const at::ScalarType dtype = parse_dtype(dtype_text);
  const std::vector<IndexerPrecision> modes = {IndexerPrecision::Float32, IndexerPrecision::BFloat16,
                                               IndexerPrecision::Float8};
  std::printf("indexer precision modes on %s, compute dtype %s\n", describe_device(device).c_str(),
              dtype_label(dtype));
  std::printf("| model | heads x dim, k | rows | loss fp32 | loss bf16 | loss fp8 | bf16 vs fp32: overlap, rows differing | "
              "fp8 vs fp32 | fp8 vs bf16 |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& [dir, data] : cases) {
    const ModelConfig config = load_model_config(dir);
    const Fp8BlockSize block = config.fp8_block_size();
    const auto sequences = read_sequences(data);
    const int64_t layers = config.num_hidden_layers;
    const int64_t k = config.index_topk;
    std::vector<PatternEvaluation> runs;
    for (const IndexerPrecision mode : modes) {
      ModelOptions options;
      options.device = device;
      options.dtype = dtype;
      options.indexer_precision = mode;
      DsaModel model(config, Checkpoint::open(dir, block), options);
      runs.push_back(evaluate_pattern(model, sequences, LayerPattern::all_full(layers), true));
    }
    std::map<std::pair<int, int>, Pair> pairs;
    for (int a = 0; a < 3; ++a) {
      for (int b = a + 1; b < 3; ++b) {
        Pair& pair = pairs[{a, b}];
        for (std::size_t s = 0; s < sequences.size(); ++s) {
          for (int64_t layer = 0; layer < layers; ++layer) {
            const at::Tensor x = std::get<0>(runs[a].topk[s][layer].to(at::kCPU).sort(-1));
            const at::Tensor y = std::get<0>(runs[b].topk[s][layer].to(at::kCPU).sort(-1));
            for (int64_t t = k; t < x.size(0); ++t) {
              const double shared = at::isin(x[t], y[t]).to(at::kDouble).sum().item<double>();
              pair.overlap_sum += shared / static_cast<double>(k);
              pair.rows += 1;
              pair.differing += shared < static_cast<double>(k) ? 1 : 0;
            }
          }
        }
      }
    }
    const auto cell = [&](int a, int b) {
      const Pair& pair = pairs[{a, b}];
      char text[96];
      std::snprintf(text, sizeof(text), "%.4f, %.2f%%", pair.rows ? pair.overlap_sum / pair.rows : 1.0,
                    pair.rows ? 100.0 * pair.differing / pair.rows : 0.0);
      return std::string(text);
    };
    const std::string name = dir.substr(dir.find_last_of('/') + 1);
    std::printf("| %s | %lld x %lld, %lld | %lld | %.5f | %.5f | %.5f | %s | %s | %s |\n", name.c_str(),
                static_cast<long long>(config.index_n_heads), static_cast<long long>(config.index_head_dim),
                static_cast<long long>(k), static_cast<long long>(pairs[{0, 1}].rows), runs[0].loss, runs[1].loss,
                runs[2].loss, cell(0, 1).c_str(), cell(0, 2).c_str(),
                cell(1, 2).c_str());
    std::fflush(stdout);
  }
  return 0;
}
