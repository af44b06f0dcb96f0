// GLM-5.2-like checkpoints (declared-shared layers stored WITHOUT indexer tensors) and checkpoints
// with a complete MTP / next-n layer, checked against transformers through the golden fixtures:
//
//   - glm_dsa's greedy trajectory (transformers 5.17, tests/fixtures/golden/glm_dsa) passes
//     through FFFSFS after two steps. A copy of that checkpoint whose config declares FFFSFS
//     (GLM-5.2's way: indexer_types, or index_topk_freq 2 / index_skip_topk_offset 3) and whose
//     layers 3 and 5 have no indexer tensors is that model: its baseline is the fixture's loss of
//     FFFSFS, and a search over it must be the rest of the fixture's trajectory, candidates and
//     losses included (layers 3 and 5 never candidates).
//   - dsv32_default with a full MTP layer (id 6: attention, indexer, experts, enorm, hnorm,
//     eh_proj, shared_head) is still the fixture's model: same losses and trajectory; the MTP
//     layer is reported as excluded and never fingerprinted.
// (scripts/make_golden.py's glm52_shared and dsv32_mtp cases make the same kinds of checkpoint
// directly from transformers on the GPU machine.)
#include <algorithm>
#include <functional>

#include "calibrate_run.h"
#include "catch_shim.h"
#include "checkpoint.h"
#include "error.h"
#include "evaluate.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "greedy_search.h"
#include "layer_plan.h"
#include "model.h"
#include "model_weights.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// A golden fixture copied into a temporary directory, to be edited.
struct FixtureCopy {
  TempDir temp;
  std::string model;
  std::string data;
  explicit FixtureCopy(const std::string& name) {
    model = temp.file("model");
    REQUIRE(copy_tree(golden_dir(name), model));
    data = model + "/data.jsonl";
  }

  void edit_config(const std::function<void(nlohmann::json&)>& edit) const {
    nlohmann::json config = read_json_file(model + "/config.json");
    edit(config);
    write_text(model + "/config.json", config.dump(2));
  }

  // Rewrites model.safetensors with `edit` applied to its tensor list.
  void edit_tensors(const std::function<void(std::vector<WriterTensor>&)>& edit) const {
    const std::string path = model + "/model.safetensors";
    std::vector<WriterTensor> tensors;
    {
      auto file = SafetensorsFile::open(path);
      for (const TensorInfo& info : file->tensors()) {
        const uint8_t* bytes = file->data(info);
        tensors.push_back({info.name, dtype_name(info.dtype), info.shape, std::vector<uint8_t>(bytes, bytes + (info.end - info.begin))});
      }
    }
    edit(tensors);
    write_safetensors(path, tensors);
  }
};

bool is_indexer_of(const std::string& name, int64_t layer) {
  return name.rfind("model.layers." + std::to_string(layer) + ".self_attn.indexer.", 0) == 0;
}

// glm_dsa with layers 3 and 5 declared shared (by `declare`) and their indexer tensors removed.
void make_glm52_like(const FixtureCopy& copy, const std::function<void(nlohmann::json&)>& declare) {
  copy.edit_config(declare);
  copy.edit_tensors([](std::vector<WriterTensor>& tensors) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                 [](const WriterTensor& t) { return is_indexer_of(t.name, 3) || is_indexer_of(t.name, 5); }),
                  tensors.end());
  });
}

// A complete MTP layer at id `layer`: the tensors of layer `layer - 1` under the new id (with an
// indexer), plus the next-n extras, replacing the fixture's partial MTP tensors.
void add_full_mtp_layer(const FixtureCopy& copy, int64_t layer, int64_t hidden, int64_t vocab) {
  copy.edit_tensors([&](std::vector<WriterTensor>& tensors) {
    const std::string mtp = "model.layers." + std::to_string(layer) + ".";
    const std::string last = "model.layers." + std::to_string(layer - 1) + ".";
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [&](const WriterTensor& t) { return t.name.rfind(mtp, 0) == 0; }),
                  tensors.end());
    std::vector<WriterTensor> added;
    for (const WriterTensor& t : tensors) {
      if (t.name.rfind(last, 0) == 0) added.push_back({mtp + t.name.substr(last.size()), t.dtype, t.shape, t.bytes});
    }
    added.push_back(writer_tensor(mtp + "enorm.weight", at::ones({hidden})));
    added.push_back(writer_tensor(mtp + "hnorm.weight", at::ones({hidden})));
    added.push_back(writer_tensor(mtp + "eh_proj.weight", at::full({hidden, 2 * hidden}, 0.01f)));
    added.push_back(writer_tensor(mtp + "shared_head.norm.weight", at::ones({hidden})));
    added.push_back(writer_tensor(mtp + "shared_head.head.weight", at::full({vocab, hidden}, 0.01f)));
    tensors.insert(tensors.end(), added.begin(), added.end());
  });
}

DsaModel open_copy(const FixtureCopy& copy) {
  ModelConfig config = load_model_config(copy.model);
  Checkpoint checkpoint = Checkpoint::open(copy.model, config.fp8_block_size());
  check_model_tensors(checkpoint, config);
  return DsaModel(config, std::move(checkpoint), ModelOptions{});
}

std::vector<std::vector<int64_t>> sequences_of(const FixtureCopy& copy) {
  std::vector<std::vector<int64_t>> sequences;
  std::ifstream in(copy.data);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) sequences.push_back(nlohmann::json::parse(line).at("input_ids").get<std::vector<int64_t>>());
  }
  return sequences;
}

// The glm_dsa fixture's trajectory from its step `first` on, against `result`'s from step 0.
void check_trajectory_tail(const SearchResult& result, const nlohmann::json& trajectory, std::size_t first) {
  REQUIRE(result.trajectory.size() == trajectory.size() - first);
  for (std::size_t i = 0; i < result.trajectory.size(); ++i) {
    const nlohmann::json& theirs = trajectory[first + i];
    INFO("step " << i + 1 << " (transformers' step " << first + i + 1 << ")");
    CHECK(result.trajectory[i].removed == theirs.at("removed").get<int64_t>());
    CHECK(result.trajectory[i].pattern.text() == theirs.at("pattern").get<std::string>());
    CHECK(relative_error(result.trajectory[i].loss, theirs.at("loss").get<double>()) <= 1e-5);
    const nlohmann::json& candidates = theirs.at("candidates");
    REQUIRE(result.trajectory[i].candidates.size() == candidates.size());
    for (std::size_t j = 0; j < candidates.size(); ++j) {
      CHECK(result.trajectory[i].candidates[j].layer == candidates[j].at("layer").get<int64_t>());
      CHECK(relative_error(result.trajectory[i].candidates[j].loss, candidates[j].at("loss").get<double>()) <= 1e-5);
    }
  }
}

}  // namespace

TEST_CASE("GLM-5.2-like checkpoint: declared-shared layers without indexer tensors match transformers", "[golden][family]") {
  const nlohmann::json expected = read_json_file(golden_dir("glm_dsa") + "/expected.json");
  const nlohmann::json& trajectory = expected.at("greedy").at("trajectory");
  REQUIRE(trajectory[1].at("pattern") == "FFFSFS");
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> declarations = {
      {"indexer_types", [](nlohmann::json& c) { c["indexer_types"] = {"full", "full", "full", "shared", "full", "shared"}; }},
      // GLM-5.2's own schedule form, freq 2 and offset 3: layers 0, 1, 2, 4 full.
      {"index_topk_freq/index_skip_topk_offset", [](nlohmann::json& c) {
         c["index_topk_freq"] = 2;
         c["index_skip_topk_offset"] = 3;
       }}};
  for (const auto& [field, declare] : declarations) {
    SECTION(field) {
      FixtureCopy copy("glm_dsa");
      make_glm52_like(copy, declare);
      DsaModel model = open_copy(copy);
      const ModelFamily& family = model.family();
      CHECK(model.config().declared_sharing_field == field);
      CHECK(family.full_pattern().text() == "FFFSFS");
      CHECK(family.role(3) == LayerRole::FixedShared);
      CHECK(family.role(5) == LayerRole::FixedShared);
      CHECK_FALSE(family.has_indexer_weights(3));
      const auto sequences = sequences_of(copy);

      // The baseline (every indexer F) is transformers' loss of FFFSFS, and a pattern with F
      // only where indexers exist is transformers' loss of it.
      PatternEvaluation baseline = evaluate_pattern(model, sequences, family.full_pattern(), true);
      CHECK(relative_error(baseline.loss, trajectory[1].at("loss").get<double>()) <= 1e-5);
      // An S layer without an indexer reports its source's selection (layer 3 uses layer 2's).
      CHECK(at::equal(baseline.topk[0][3], baseline.topk[0][2]));
      CHECK(at::equal(baseline.topk[0][5], baseline.topk[0][4]));
      const LayerPattern fsssss = family.parse_pattern("FSSSSS", "test");
      CHECK(relative_error(evaluate_pattern(model, sequences, fsssss, false).loss,
                           trajectory[4].at("loss").get<double>()) <= 1e-5);

      // The search starts from the declared pattern and searches only layers 1, 2, 4: it is the
      // rest of transformers' trajectory, every candidate's loss included.
      Progress quiet(true);
      SearchOptions options;
      options.target_kept = 1;
      SearchResult result = greedy_search(model, sequences, options, quiet);
      CHECK(relative_error(result.baseline_loss, trajectory[1].at("loss").get<double>()) <= 1e-5);
      check_trajectory_tail(result, trajectory, 2);
      CHECK(result.final_pattern.text() == "FSSSSS");

      // The plan's fingerprint holds no tensor of layers 3 and 5 (they have none).
      for (const std::string& name : indexer_tensor_names(model.config(), model.checkpoint())) {
        CHECK_FALSE(is_indexer_of(name, 3));
        CHECK_FALSE(is_indexer_of(name, 5));
      }
    }
  }
}

TEST_CASE("GLM-5.2-like checkpoint through the tool: --eval refuses F without an indexer, the plan lists fixed layers",
          "[golden][family][tools]") {
  FixtureCopy copy("glm_dsa");
  // As GLM-5.2 ships it: indexer_types and the freq/offset schedule that says the same.
  make_glm52_like(copy, [](nlohmann::json& c) {
    c["indexer_types"] = {"full", "full", "full", "shared", "full", "shared"};
    c["index_topk_freq"] = 2;
    c["index_skip_topk_offset"] = 3;
  });
  const std::string json = copy.temp.file("eval.json");

  // F on layer 3 (declared shared, no indexer tensors): exit 2, one line naming the layer.
  ToolResult refused = run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--eval", "FFFFSS"});
  CHECK(refused.status == 2);
  CHECK(refused.err.find("--eval") != std::string::npos);
  CHECK(refused.err.find("asks F at layer 3") != std::string::npos);
  CHECK(refused.error_lines() == 1);

  // A pattern within the indexers the model has: the baseline is its declared pattern.
  ToolResult evaluated = run_tool("indexcache-calibrate",
                                  {"--model", copy.model, "--data", copy.data, "--eval", "FFFSSS", "--json", json});
  REQUIRE(evaluated.status == 0);
  const nlohmann::json losses = read_json_file(json);
  const nlohmann::json expected = read_json_file(golden_dir("glm_dsa") + "/expected.json");
  CHECK(losses.at("baseline_pattern") == "FFFSFS");
  CHECK(relative_error(losses.at("baseline_loss").get<double>(),
                       expected.at("greedy").at("trajectory")[1].at("loss").get<double>()) <= 1e-5);
  CHECK(relative_error(losses.at("evaluations")[0].at("loss").get<double>(),
                       expected.at("greedy").at("trajectory")[2].at("loss").get<double>()) <= 1e-5);

  // A search: --keep 0.5 is half of the model's 4 indexers; the plan lists layers 3 and 5 as
  // fixed S and reads back (its trajectory starts from the declared pattern).
  const std::string plan_path = copy.temp.file("plan.yaml");
  ToolResult searched = run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--keep", "0.5",
                                                          "--out", plan_path, "--no-report"});
  REQUIRE(searched.status == 0);
  const LayerPlan plan = read_plan(plan_path);
  CHECK(plan.target_kept == 2);
  CHECK(plan.kept() == 2);
  CHECK(plan.pattern.text() == expected.at("greedy").at("trajectory")[3].at("pattern").get<std::string>());
  REQUIRE(plan.excluded_layers.size() == 2);
  CHECK(plan.excluded_layers[0].layer == 3);
  CHECK(plan.excluded_layers[0].role == kFixedSharedRole);
  CHECK(plan.excluded_layers[1].layer == 5);
  CHECK(search_start_pattern(plan).text() == "FFFSFS");
  for (const UniformPattern& uniform : plan.uniform) {
    // Uniform baselines keep F only where an indexer exists.
    CHECK_FALSE(uniform.pattern.is_full(3));
    CHECK_FALSE(uniform.pattern.is_full(5));
  }
  // --export hf-config states the plan in indexer_types and index_topk_pattern and drops the
  // freq/offset schedule, which describes the model's own FFFSFS.
  const std::string exported_path = copy.temp.file("config.json");
  ToolResult exported = run_tool("indexcache-calibrate", {"--plan", plan_path, "--model", copy.model, "--export",
                                                          "hf-config", "--export-out", exported_path});
  REQUIRE(exported.status == 0);
  const nlohmann::json written = read_json_file(exported_path);
  CHECK(written.at("index_topk_pattern") == plan.pattern.text());
  nlohmann::json types = nlohmann::json::array();
  for (char c : plan.pattern.text()) types.push_back(c == 'F' ? "full" : "shared");
  CHECK(written.at("indexer_types") == types);
  CHECK_FALSE(written.contains("index_topk_freq"));
  CHECK_FALSE(written.contains("index_skip_topk_offset"));
  CHECK(exported.err.find("removed index_topk_freq=2 and index_skip_topk_offset=3") != std::string::npos);
  // Uniform baselines: the engines' schedule at the default offset 2 and at the config's own
  // offset 3, each the first freq giving the plan's count with F only on indexer layers. With 3
  // kept: freq 3 offset 2 is FFSSFS, freq 4 offset 3 is FFFSSS; then evenly spaced over 0, 1, 2, 4.
  const std::string plan3_path = copy.temp.file("plan3.yaml");
  REQUIRE(run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--keep-layers", "3", "--out",
                                            plan3_path, "--no-report"})
              .status == 0);
  const LayerPlan plan3 = read_plan(plan3_path);
  REQUIRE(plan3.uniform.size() == 3);
  CHECK(plan3.uniform[0].name == "index_topk_freq=3 offset=2");
  CHECK(plan3.uniform[0].pattern.text() == "FFSSFS");
  CHECK(plan3.uniform[1].name == "index_topk_freq=4 offset=3");
  CHECK(plan3.uniform[1].pattern.text() == "FFFSSS");
  CHECK(plan3.uniform[2].name == "evenly-spaced");
  CHECK(relative_error(plan3.uniform[1].loss, expected.at("greedy").at("trajectory")[2].at("loss").get<double>()) <= 1e-5);

  // A pipeline stage cannot start on a fixed-S layer.
  ToolResult staged = run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--keep-layers", "3",
                                                        "--pp-stages", "0,3", "--out", copy.temp.file("p2.yaml")});
  CHECK(staged.status == 2);
  CHECK(staged.err.find("fixed S") != std::string::npos);
}

TEST_CASE("checkpoint with a full MTP layer: loaded, never searched, listed in the plan", "[golden][family]") {
  const nlohmann::json expected = read_json_file(golden_dir("dsv32_default") + "/expected.json");
  FixtureCopy copy("dsv32_default");
  const ModelConfig config = load_model_config(copy.model);
  REQUIRE(config.num_nextn_predict_layers == 1);
  add_full_mtp_layer(copy, config.num_hidden_layers, config.hidden_size, config.vocab_size);
  DsaModel model = open_copy(copy);
  REQUIRE(model.checkpoint().has("model.layers.6.self_attn.indexer.wq_b.weight"));
  REQUIRE(model.checkpoint().has("model.layers.6.mlp.experts.0.gate_proj.weight"));

  const ModelFamily& family = model.family();
  CHECK(family.positions() == 6);
  REQUIRE(family.excluded_layers().size() == 1);
  CHECK(family.excluded_layers()[0].layer == 6);
  CHECK(family.excluded_layers()[0].role == kNextNRole);
  for (const std::string& name : indexer_tensor_names(model.config(), model.checkpoint())) CHECK_FALSE(is_indexer_of(name, 6));

  // Still transformers' model: the same baseline and greedy trajectory.
  const auto sequences = sequences_of(copy);
  Progress quiet(true);
  SearchOptions options;
  options.target_kept = 1;
  SearchResult result = greedy_search(model, sequences, options, quiet);
  CHECK(relative_error(result.baseline_loss, expected.at("baseline_loss").get<double>()) <= 1e-5);
  check_trajectory_tail(result, expected.at("greedy").at("trajectory"), 0);

  // The plan says which layer was left out and why.
  const std::string plan_path = copy.temp.file("plan.yaml");
  ToolResult searched = run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--keep-layers", "3",
                                                          "--out", plan_path, "--no-report"});
  REQUIRE(searched.status == 0);
  const std::string text = read_text(plan_path);
  CHECK(text.find("excluded_layers:") != std::string::npos);
  CHECK(text.find("MTP (next-n) layer") != std::string::npos);
  const LayerPlan plan = read_plan(plan_path);
  REQUIRE(plan.excluded_layers.size() == 1);
  CHECK(plan.excluded_layers[0].layer == 6);
  CHECK(plan.excluded_layers[0].role == kNextNRole);
  CHECK(search_start_pattern(plan) == LayerPattern::all_full(6));
}

TEST_CASE("a layer with no indexer tensors is fixed S; the first layer without one is exit 2", "[family][tools]") {
  SECTION("layer 4 without indexer, not declared: fixed S, named in the plan") {
    FixtureCopy copy("glm_dsa");
    copy.edit_tensors([](std::vector<WriterTensor>& tensors) {
      tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const WriterTensor& t) { return is_indexer_of(t.name, 4); }),
                    tensors.end());
    });
    DsaModel model = open_copy(copy);
    CHECK(model.family().full_pattern().text() == "FFFFSF");
    REQUIRE(model.family().excluded_layers().size() == 1);
    CHECK(model.family().excluded_layers()[0].reason.find("no indexer tensors") != std::string::npos);
  }
  SECTION("layer 0 without indexer: exit 2 naming it") {
    FixtureCopy copy("glm_dsa");
    copy.edit_tensors([](std::vector<WriterTensor>& tensors) {
      tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const WriterTensor& t) { return is_indexer_of(t.name, 0); }),
                    tensors.end());
    });
    ToolResult result = run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--eval", "FSSSSS"});
    CHECK(result.status == 2);
    CHECK(result.err.find("layer 0 is the model's first indexer layer") != std::string::npos);
  }
}
