// Our forward pass against Hugging Face transformers (fixtures from scripts/make_golden.py):
// identical top-k sets for every measured query and layer, losses within 1e-5 relative in
// float32, overlap entries within 1e-3, for deepseek_v32 (default RoPE, YaRN, FP8 blocks,
// shards) and glm_moe_dsa. The baseline is the model family's (every indexer F, fixed-S layers S),
// patterns are in the family's form.
#include <algorithm>

#include "catch_shim.h"
#include "checkpoint.h"
#include "error.h"
#include "evaluate.h"
#include "golden_fixture.h"
#include "model.h"
#include "overlap.h"

using namespace indexcache;
using namespace indexcache::testing;

namespace {

DsaModel open_golden_model(const std::string& name, AttentionPath attention = AttentionPath::Eager) {
  ModelConfig config = load_model_config(golden_dir(name));
  const Fp8BlockSize block = config.fp8_block_size();
  Checkpoint checkpoint = Checkpoint::open(golden_dir(name), block);
  ModelOptions options;
  options.attention = attention;
  return DsaModel(config, std::move(checkpoint), options);
}

// Rows t >= k of one layer's selection as sorted sets.
std::vector<std::vector<int64_t>> measured_sets(const at::Tensor& topk, int64_t k) {
  std::vector<std::vector<int64_t>> rows;
  for (int64_t t = k; t < topk.size(0); ++t) {
    at::Tensor row = std::get<0>(topk[t].sort());
    rows.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return rows;
}

}  // namespace

TEST_CASE("golden all-F forward matches transformers in top-k sets and loss and overlap", "[golden]") {
  for (const std::string& name : golden_cases()) {
    SECTION(name) {
      nlohmann::json expected = read_json_file(golden_dir(name) + "/expected.json");
      DsaModel model = open_golden_model(name);
      const int64_t layers = model.config().num_hidden_layers;
      const int64_t k = model.config().index_topk;
      auto sequences = golden_sequences(name);
      PatternEvaluation all_full = evaluate_pattern(model, sequences, model.family().full_pattern(), true);

      CHECK(all_full.predictions == expected.at("predicted_positions").get<int64_t>());
      // Cases with declared sharing or MTP layers (make_golden.py) say what the family must find.
      if (expected.contains("excluded_layers")) {
        std::vector<int64_t> fixed, next_n;
        for (const ExcludedLayer& excluded : model.family().excluded_layers()) {
          (excluded.role == kNextNRole ? next_n : fixed).push_back(excluded.layer);
        }
        CHECK(fixed == expected.at("excluded_layers").at("fixed_shared").get<std::vector<int64_t>>());
        CHECK(next_n == expected.at("excluded_layers").at("next_n").get<std::vector<int64_t>>());
        CHECK(model.family().full_pattern().text() == expected.at("baseline_pattern").get<std::string>());
      }
      INFO("baseline loss " << all_full.loss << " vs transformers " << expected.at("baseline_loss").get<double>());
      CHECK(relative_error(all_full.loss, expected.at("baseline_loss").get<double>()) <= 1e-5);

      int64_t compared_rows = 0;
      for (int64_t layer = 0; layer < layers; ++layer) {
        const auto& per_sequence = expected.at("topk").at(std::to_string(layer));
        for (std::size_t s = 0; s < sequences.size(); ++s) {
          auto ours = measured_sets(all_full.topk[s][static_cast<std::size_t>(layer)], k);
          auto theirs = per_sequence.at(s).get<std::vector<std::vector<int64_t>>>();
          REQUIRE(ours.size() == theirs.size());
          for (std::size_t row = 0; row < ours.size(); ++row) {
            INFO(name << " layer " << layer << " sequence " << s << " query " << k + static_cast<int64_t>(row));
            CHECK(ours[row] == theirs[row]);
            ++compared_rows;
          }
        }
      }
      CHECK(compared_rows == layers * expected.at("measured_queries").get<int64_t>());

      OverlapAccumulator overlap(layers, k);
      for (const auto& sequence_topk : all_full.topk) overlap.add(sequence_topk);
      CHECK(overlap.measured_queries() == expected.at("measured_queries").get<int64_t>());
      auto matrix = overlap.matrix();
      for (int64_t a = 0; a < layers; ++a) {
        for (int64_t b = 0; b < layers; ++b) {
          CHECK(std::abs(matrix[a][b] - expected.at("overlap")[a][b].get<double>()) <= 1e-3);
        }
      }
    }
  }
}

TEST_CASE("golden F and S patterns match transformers losses", "[golden]") {
  for (const std::string& name : golden_cases()) {
    SECTION(name) {
      nlohmann::json expected = read_json_file(golden_dir(name) + "/expected.json");
      DsaModel model = open_golden_model(name);
      auto sequences = golden_sequences(name);
      for (const auto& item : expected.at("patterns")) {
        std::string text = item.at("pattern").get<std::string>();
        LayerPattern pattern = model.family().parse_pattern(text, "test");
        double loss = evaluate_pattern(model, sequences, pattern, false).loss;
        INFO(name << " pattern " << text << ": " << loss << " vs " << item.at("loss").get<double>());
        CHECK(relative_error(loss, item.at("loss").get<double>()) <= 1e-5);
      }
    }
  }
}

TEST_CASE("golden sparse gather attention matches transformers like the eager path", "[golden]") {
  for (const std::string& name : golden_cases()) {
    SECTION(name) {
      nlohmann::json expected = read_json_file(golden_dir(name) + "/expected.json");
      DsaModel model = open_golden_model(name, AttentionPath::Sparse);
      const int64_t layers = model.config().num_hidden_layers;
      const int64_t k = model.config().index_topk;
      auto sequences = golden_sequences(name);
      PatternEvaluation all_full = evaluate_pattern(model, sequences, model.family().full_pattern(), true);
      INFO(name << " sparse-path loss " << all_full.loss);
      CHECK(relative_error(all_full.loss, expected.at("baseline_loss").get<double>()) <= 1e-5);
      for (int64_t layer = 0; layer < layers; ++layer) {
        for (std::size_t s = 0; s < sequences.size(); ++s) {
          auto theirs = expected.at("topk").at(std::to_string(layer)).at(s).get<std::vector<std::vector<int64_t>>>();
          CHECK(measured_sets(all_full.topk[s][static_cast<std::size_t>(layer)], k) == theirs);
        }
      }
      for (const auto& item : expected.at("patterns")) {
        LayerPattern pattern = model.family().parse_pattern(item.at("pattern").get<std::string>(), "test");
        CHECK(relative_error(evaluate_pattern(model, sequences, pattern, false).loss, item.at("loss").get<double>()) <= 1e-5);
      }
    }
  }
}

TEST_CASE("attention path: auto picks sparse for long sequences, fused only for bf16 on a GPU", "[attention]") {
  const at::Device cpu(at::kCPU);
  const at::Device cuda(at::kCUDA, 0);
  CHECK(resolve_attention_path(AttentionPath::Auto, 4097, 1024, cpu, at::kFloat) == AttentionPath::Sparse);
  CHECK(resolve_attention_path(AttentionPath::Auto, 4097, 1024, cuda, at::kBFloat16) == AttentionPath::Sparse);
  CHECK(resolve_attention_path(AttentionPath::Auto, 4096, 1024, cpu, at::kBFloat16) == AttentionPath::Eager);
  CHECK(resolve_attention_path(AttentionPath::Auto, 4096, 1024, cuda, at::kFloat) == AttentionPath::Eager);
  CHECK(resolve_attention_path(AttentionPath::Auto, 4096, 1024, cuda, at::kBFloat16) ==
        (fused_attention_available() ? AttentionPath::Fused : AttentionPath::Eager));
  CHECK(resolve_attention_path(AttentionPath::Eager, 100000, 8, cuda, at::kBFloat16) == AttentionPath::Eager);
  if (fused_attention_available()) {
    CHECK(parse_attention_path("fused") == AttentionPath::Fused);
  } else {
    // This libtorch (Debian's 1.13) has no scaled_dot_product_attention: a clear refusal.
    try {
      parse_attention_path("fused");
      FAIL("fused accepted without libtorch 2.0");
    } catch (const InputError& error) {
      CHECK(std::string(error.what()).find("libtorch 2.0") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(parse_attention_path("flash"), InputError);
}
