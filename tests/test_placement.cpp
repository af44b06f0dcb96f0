// Layer placement over several devices, streaming (offload) and their equivalence with the
// single-device, all-in-memory forward.
#include "catch_shim.h"
#include "checkpoint.h"
#include "evaluate.h"
#include "golden_fixture.h"
#include "layer_placement.h"
#include "model.h"

using namespace indexcache;
using namespace indexcache::testing;

namespace {

std::vector<at::Device> cpus(std::size_t count) { return std::vector<at::Device>(count, at::Device(at::kCPU)); }

DsaModel open_model(const std::string& name, ModelOptions options) {
  ModelConfig config = load_model_config(golden_dir(name));
  const Fp8BlockSize block = config.fp8_block_size();
  return DsaModel(config, Checkpoint::open(golden_dir(name), block), options);
}

std::vector<std::pair<int64_t, int64_t>> ranges(const std::vector<DevicePlacement>& placement) {
  std::vector<std::pair<int64_t, int64_t>> result;
  for (const DevicePlacement& p : placement) result.emplace_back(p.first_layer, p.end_layer);
  return result;
}

}  // namespace

TEST_CASE("layers are placed in contiguous ranges balanced by weight bytes", "[placement]") {
  ModelWeightBytes bytes;
  bytes.layers = {10, 10, 10, 10, 10, 10};
  CHECK(ranges(place_layers(bytes, cpus(2))) == std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 6}});
  CHECK(ranges(place_layers(bytes, cpus(3))) == std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 4}, {4, 6}});
  // A heavy embedding pushes layers off the first device.
  bytes.embedding = 20;
  auto placed = place_layers(bytes, cpus(2));
  CHECK(ranges(placed) == std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 6}});
  CHECK(placed[0].weight_bytes == 40);
  CHECK(placed[1].weight_bytes == 40);
  // Dense first layers heavier than MoE ones, like DeepSeek's first_k_dense_replace.
  bytes = ModelWeightBytes{};
  bytes.layers = {50, 5, 5, 5, 5, 5, 5, 5, 5, 5};
  CHECK(ranges(place_layers(bytes, cpus(2))) == std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 10}});
  // More devices than layers: one layer each, extra devices unused.
  bytes.layers = {1, 1};
  CHECK(place_layers(bytes, cpus(4)).size() == 2);
  // One device takes everything.
  bytes.layers = {3, 4, 5};
  bytes.head = 7;
  placed = place_layers(bytes, cpus(1));
  REQUIRE(placed.size() == 1);
  CHECK(placed[0].weight_bytes == 19);
}

TEST_CASE("the model's weight bytes come from the tensor headers", "[placement]") {
  ModelConfig config = load_model_config(golden_dir("dsv32_fp8"));
  Checkpoint checkpoint = Checkpoint::open(golden_dir("dsv32_fp8"));
  ModelWeightBytes fp32 = model_weight_bytes(checkpoint, config, at::kFloat);
  ModelWeightBytes bf16 = model_weight_bytes(checkpoint, config, at::kBFloat16);
  REQUIRE(fp32.layers.size() == 3);
  CHECK(fp32.embedding == 384 * 320 * 4);
  CHECK(fp32.head == (384 * 320 + 320) * 4);
  for (std::size_t l = 0; l < 3; ++l) CHECK(fp32.layers[l] == 2 * bf16.layers[l]);  // scales not counted
}

TEST_CASE("layers placed over several devices and streamed weights give identical losses", "[placement]") {
  auto sequences = golden_sequences("dsv32_default");
  LayerPattern pattern = LayerPattern::parse("FSFSFF", 6, "test");
  ModelOptions single;
  DsaModel reference = open_model("dsv32_default", single);
  double expected = evaluate_pattern(reference, sequences, pattern, false).loss;

  ModelOptions spread;
  spread.devices = cpus(3);
  DsaModel placed = open_model("dsv32_default", spread);
  CHECK(placed.placement().size() == 3);
  CHECK(evaluate_pattern(placed, sequences, pattern, false).loss == expected);

  ModelOptions streamed;
  streamed.keep_weights = false;
  DsaModel offloaded = open_model("dsv32_default", streamed);
  CHECK(evaluate_pattern(offloaded, sequences, pattern, false).loss == expected);
  // Twice more, so prefetched layers are used (and mispredicted ones discarded) across runs.
  CHECK(evaluate_pattern(offloaded, sequences, LayerPattern::all_full(6), false).loss ==
        evaluate_pattern(reference, sequences, LayerPattern::all_full(6), false).loss);
  CHECK(evaluate_pattern(offloaded, sequences, pattern, false).loss == expected);
}
