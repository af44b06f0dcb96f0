// DeepSeek-V4 forward against Hugging Face transformers 5.17 (fixture dsv4_tiny from
// scripts/golden_deepseek_v4.py): the all-F loss and every CSA layer's selected compressed
// entries, the losses of CSA-only patterns (S reuses the nearest F CSA layer's top-k), the
// compressed-block causal boundary, the two-part forward, and the config's two spellings.
#include <algorithm>

#include "catch_shim.h"
#include "checkpoint.h"
#include "deepseek_v4_model.h"
#include "error.h"
#include "golden_fixture.h"
#include "input_error.h"

using namespace indexcache;
using namespace indexcache::testing;
using indexcache::test_support::input_error_message;

namespace {

const char* const kCase = "dsv4_tiny";

DeepseekV4Model open_v4(at::ScalarType dtype = at::kFloat) {
  DeepseekV4Config config = load_deepseek_v4_config(golden_dir(kCase));
  Checkpoint checkpoint = Checkpoint::open(golden_dir(kCase), config.fp8_block.value_or(Fp8BlockSize{}));
  V4ModelOptions options;
  options.dtype = dtype;
  return DeepseekV4Model(config, std::move(checkpoint), options);
}

// Per query: the sorted valid entries of one layer's [T, k] selection.
std::vector<std::vector<int64_t>> selected_sets(const at::Tensor& topk) {
  std::vector<std::vector<int64_t>> rows;
  const at::Tensor cpu = topk.cpu().contiguous();
  for (int64_t t = 0; t < cpu.size(0); ++t) {
    std::vector<int64_t> row;
    for (int64_t j = 0; j < cpu.size(1); ++j) {
      const int64_t entry = cpu[t][j].item<int64_t>();
      if (entry >= 0) row.push_back(entry);
    }
    std::sort(row.begin(), row.end());
    rows.push_back(row);
  }
  return rows;
}

double mean_loss(DeepseekV4Model& model, const std::vector<std::vector<int64_t>>& sequences, const LayerPattern& pattern,
                 std::vector<V4SequenceResult>* results = nullptr) {
  double total = 0.0;
  int64_t predictions = 0;
  for (const auto& ids : sequences) {
    V4SequenceResult result = model.run_sequence(ids, pattern);
    total += result.nll;
    predictions += static_cast<int64_t>(ids.size()) - 1;
    if (results != nullptr) results->push_back(std::move(result));
  }
  return total / static_cast<double>(predictions);
}

}  // namespace

TEST_CASE("deepseek_v4 all-F forward matches transformers in loss and per-CSA-layer top-k", "[deepseek_v4][golden]") {
  const nlohmann::json expected = read_json_file(golden_dir(kCase) + "/expected.json");
  DeepseekV4Model model = open_v4();
  const auto sequences = golden_sequences(kCase);
  const std::vector<int64_t> csa = model.config().csa_layers();
  REQUIRE(csa == expected.at("csa_layers").get<std::vector<int64_t>>());

  std::vector<V4SequenceResult> results;
  const double loss = mean_loss(model, sequences, LayerPattern::all_full(static_cast<int64_t>(csa.size())), &results);
  const double reference = expected.at("baseline_loss").get<double>();
  INFO("loss " << loss << " vs transformers " << reference << ", relative error " << relative_error(loss, reference));
  CHECK(relative_error(loss, reference) <= 1e-5);

  int64_t compared = 0, selecting = 0;
  for (int64_t layer : csa) {
    const auto& per_sequence = expected.at("topk").at(std::to_string(layer));
    for (std::size_t s = 0; s < sequences.size(); ++s) {
      const auto ours = selected_sets(results[s].topk.at(layer));
      const auto theirs = per_sequence.at(s).get<std::vector<std::vector<int64_t>>>();
      REQUIRE(ours.size() == theirs.size());
      for (std::size_t t = 0; t < ours.size(); ++t) {
        INFO("layer " << layer << " sequence " << s << " query " << t);
        CHECK(ours[t] == theirs[t]);
        ++compared;
        // Rows that see more entries than index_topk are where the indexer chooses.
        if (static_cast<int64_t>(t + 1) / model.config().csa_compress_rate > model.config().index_topk) ++selecting;
      }
    }
  }
  CHECK(compared == static_cast<int64_t>(csa.size()) * expected.at("predicted_positions").get<int64_t>() +
                        static_cast<int64_t>(csa.size() * sequences.size()));
  CHECK(selecting > 50);
}

TEST_CASE("deepseek_v4 CSA-only pattern losses match transformers with S layers patched as the engines do",
          "[deepseek_v4][golden]") {
  const nlohmann::json expected = read_json_file(golden_dir(kCase) + "/expected.json");
  DeepseekV4Model model = open_v4();
  const auto sequences = golden_sequences(kCase);
  const int64_t csa_count = static_cast<int64_t>(model.config().csa_layers().size());
  const double baseline = expected.at("baseline_loss").get<double>();
  int64_t changed = 0;
  for (const auto& entry : expected.at("patterns")) {
    const std::string text = entry.at("pattern").get<std::string>();
    const double reference = entry.at("loss").get<double>();
    const double loss = mean_loss(model, sequences, LayerPattern::parse(text, csa_count, "test"));
    INFO("pattern " << text << ": " << loss << " vs transformers " << reference << ", relative error "
                    << relative_error(loss, reference));
    CHECK(relative_error(loss, reference) <= 1e-5);
    if (relative_error(reference, baseline) > 1e-4) ++changed;
  }
  // Reuse changes the loss well beyond the tolerance (FSS and FSF do; FFS only by 3e-7), so
  // the fixture tells reuse apart from running the indexer.
  CHECK(changed >= 2);
}

TEST_CASE("deepseek_v4 bfloat16 forward stays close to the float32 reference", "[deepseek_v4][golden]") {
  const nlohmann::json expected = read_json_file(golden_dir(kCase) + "/expected.json");
  DeepseekV4Model model = open_v4(at::kBFloat16);
  const auto sequences = golden_sequences(kCase);
  const int64_t csa_count = static_cast<int64_t>(model.config().csa_layers().size());
  const double loss = mean_loss(model, sequences, LayerPattern::all_full(csa_count));
  INFO("bf16 loss " << loss << " vs transformers float32 " << expected.at("baseline_loss").get<double>());
  CHECK(relative_error(loss, expected.at("baseline_loss").get<double>()) <= 2e-2);
}

TEST_CASE("deepseek_v4 compressed entries are visible once their whole block is in the past", "[deepseek_v4]") {
  // Block w of rate 4 covers positions 4w .. 4w + 3: its last position sees it, the position
  // before does not; the first position of the next block sees it too but not the next entry.
  CHECK(v4_visible_entries(2, 4) == 0);
  CHECK(v4_visible_entries(3, 4) == 1);
  CHECK(v4_visible_entries(6, 4) == 1);
  CHECK(v4_visible_entries(7, 4) == 2);
  CHECK(v4_visible_entries(8, 4) == 2);

  // HCA mask over 12 raw keys and 3 entries (rate 4), queries at 6, 7, 8.
  const at::Tensor mask = v4_attention_mask(6, 3, 12, 3, 8, 4, {}, at::kFloat, at::kCPU);
  const at::Tensor entries = at::isfinite(mask.narrow(1, 12, 3));
  CHECK(entries[0][0].item<bool>());
  CHECK_FALSE(entries[0][1].item<bool>());  // t = 6: block 1 (4..7) not complete
  CHECK(entries[1][1].item<bool>());        // t = 7: block 1 just completed
  CHECK_FALSE(entries[1][2].item<bool>());
  CHECK(entries[2][1].item<bool>());        // t = 8: first of block 2 sees 0 and 1, not 2
  CHECK_FALSE(entries[2][2].item<bool>());
  // Sliding window 8: t = 8 sees raw keys 1 .. 8.
  const at::Tensor raw = at::isfinite(mask[2].narrow(0, 0, 12));
  CHECK_FALSE(raw[0].item<bool>());
  CHECK(raw[1].item<bool>());
  CHECK(raw[8].item<bool>());
  CHECK_FALSE(raw[9].item<bool>());

  // The indexer never picks an entry past the boundary, even its best-scored one; a query that
  // sees fewer entries than k gets -1 for the rest.
  at::manual_seed(5);
  const at::Tensor keys = at::randn({3, 16});
  at::Tensor q = keys[2].reshape({1, 1, 16}).expand({3, 1, 16}).contiguous();  // entry 2 scores highest
  const at::Tensor weights = at::ones({3, 1});
  const at::Tensor chosen = v4_indexer_select(q, keys, weights, 2, 4, 6);
  CHECK(chosen[0][0].item<int64_t>() == 0);  // t = 6: only entry 0
  CHECK(chosen[0][1].item<int64_t>() == -1);
  CHECK(chosen[1].max().item<int64_t>() <= 1);  // t = 7: entries 0, 1
  CHECK(chosen[1].min().item<int64_t>() == 0);
  CHECK(chosen[2].max().item<int64_t>() <= 1);  // t = 8: still 0, 1 (entry 2 ends at 11)

  // An entry depends only on its own block (and, overlapping, the block before it): changing
  // block 2's raw positions leaves entries 0 and 1 as they were.
  const at::Tensor kv = at::randn({12, 8});
  const at::Tensor gate = at::randn({12, 8});
  const at::Tensor ape = at::randn({4, 8});
  const V4RopeTables none{at::ones({3, 1}), at::zeros({3, 1})};
  for (bool overlapping : {true, false}) {
    const int64_t dim = overlapping ? 4 : 8;
    const at::Tensor norm_weight = at::ones({dim});
    const at::Tensor before = v4_compress(kv, gate, ape, norm_weight, 4, overlapping, none, 1e-6);
    at::Tensor changed_kv = kv.clone();
    changed_kv.narrow(0, 8, 4).add_(1.0);
    const at::Tensor after = v4_compress(changed_kv, gate, ape, norm_weight, 4, overlapping, none, 1e-6);
    CHECK(before.size(0) == 3);
    CHECK(at::equal(before.narrow(0, 0, 2), after.narrow(0, 0, 2)));
    CHECK_FALSE(at::equal(before[2], after[2]));
  }
}

TEST_CASE("deepseek_v4 two-part forward gives the rows of the whole forward", "[deepseek_v4]") {
  DeepseekV4Model model = open_v4();
  const std::vector<int64_t> ids = golden_sequences(kCase).front();
  const int64_t tokens = static_cast<int64_t>(ids.size());
  const int64_t split = model.pattern_invariant_rows(tokens);
  REQUIRE(split == 19);  // rate 4, index_topk 4: rows t < 4 x 5 - 1 select every visible entry
  at::Tensor hidden = model.embed(ids);
  for (int64_t layer = 0; layer < model.config().num_hidden_layers; ++layer) {
    const V4LayerOutput whole = model.forward_layer(layer, hidden, ids);
    const V4LayerOutput tail = model.forward_layer(layer, hidden, ids, {}, split);
    INFO("layer " << layer << " max difference "
                  << (tail.hidden - whole.hidden.narrow(0, split, tokens - split)).abs().max().item<double>()
                  << " max value " << whole.hidden.abs().max().item<double>());
    // Same math on fewer rows: equal up to float32 rounding of differently shaped products.
    CHECK(at::allclose(tail.hidden, whole.hidden.narrow(0, split, tokens - split), 1e-5, 1e-5));
    if (whole.topk.defined()) CHECK(at::equal(tail.topk, whole.topk));
    hidden = whole.hidden;
  }
}

TEST_CASE("deepseek_v4 config reads the released spelling and refuses bad fields", "[deepseek_v4]") {
  const std::string released = R"({
    "model_type": "deepseek_v4", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 4,
    "num_attention_heads": 4, "head_dim": 32, "qk_rope_head_dim": 8, "q_lora_rank": 16,
    "compress_ratios": [0, 4, 128, 4, 4], "num_hash_layers": 1, "compress_rope_theta": 160000,
    "rope_theta": 10000, "max_position_embeddings": 4096, "o_groups": 2, "o_lora_rank": 8,
    "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 256,
                     "beta_fast": 32, "beta_slow": 1},
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
    "expert_dtype": "fp4"})";
  const DeepseekV4Config config = parse_deepseek_v4_config(released, "config.json");
  // Parenthesised: Catch cannot print vectors of these enums.
  CHECK((config.layer_types == std::vector<V4Attention>{V4Attention::Sliding, V4Attention::Compressed,
                                                        V4Attention::HeavilyCompressed, V4Attention::Compressed}));
  CHECK(config.csa_layers() == std::vector<int64_t>{1, 3});
  CHECK((config.mlp_layer_types == std::vector<V4Routing>{V4Routing::Hash, V4Routing::Scores, V4Routing::Scores,
                                                          V4Routing::Scores}));
  CHECK(config.qk_rope_head_dim == 8);
  CHECK(config.main_rope.type == "default");
  CHECK(config.main_rope.theta == Approx(10000.0));
  CHECK(config.compress_rope.type == "yarn");
  CHECK(config.compress_rope.theta == Approx(160000.0));
  CHECK(config.compress_rope.factor == Approx(16.0));
  CHECK(config.compress_rope.attention_factor.value_or(0.0) == Approx(1.0));
  CHECK(config.csa_compress_rate == 4);
  CHECK(config.hca_compress_rate == 128);
  CHECK(config.expert_dtype == "fp4");
  REQUIRE(config.fp8_block.has_value());

  // The fixture's config is the spelling transformers writes (nested rope, layer_types, ...).
  const DeepseekV4Config saved = load_deepseek_v4_config(golden_dir(kCase));
  CHECK(saved.csa_layers() == std::vector<int64_t>{1, 3, 5});
  CHECK(saved.hca_compress_rate == 8);
  CHECK(saved.compress_rope.type == "yarn");
  CHECK(saved.main_rope.type == "default");
  CHECK(saved.qk_rope_head_dim == 8);

  std::string wrong = released;
  wrong.replace(wrong.find("[0, 4, 128, 4, 4]"), 17, "[0, 4, 64, 4, 4]");
  CHECK(input_error_message([&] { parse_deepseek_v4_config(wrong, "config.json"); }).value_or("") ==
        "config.json: compress_ratios[2] is 64 (expected 0, 4 or 128)");
  CHECK(input_error_message([&] { parse_deepseek_v4_config(R"({"model_type": "deepseek_v32"})", "c.json"); })
            .value_or("") == "c.json: model_type is \"deepseek_v32\", expected deepseek_v4");
}

TEST_CASE("deepseek_v4 hash-routing table is read as integers and never as a weight", "[deepseek_v4]") {
  const Checkpoint checkpoint = Checkpoint::open(golden_dir(kCase));
  const std::string table = "model.layers.0.ffn.gate.tid2eid";
  REQUIRE(checkpoint.info(table).dtype == DType::I64);
  const at::Tensor experts = checkpoint.load_integer(table, at::kCPU, {256, 2});
  CHECK(experts.scalar_type() == at::kLong);
  CHECK(experts.min().item<int64_t>() >= 0);
  CHECK(experts.max().item<int64_t>() < 4);
  CHECK(input_error_message([&] { checkpoint.load(table, at::kFloat, at::kCPU); }).value_or("").find(
            "tensor " + table + " has dtype I64, expected a floating-point weight") != std::string::npos);
  CHECK(input_error_message([&] { checkpoint.load_integer("model.norm.weight", at::kCPU); }).value_or("").find(
            "tensor model.norm.weight has dtype F32, expected I64 or I32") != std::string::npos);
}
