// Bad input through the real tools: every case must exit with status 2, print exactly one
// line ("error: <file>: <problem>") naming the file and the problem, and write nothing.
#include <functional>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// A writable copy of a golden checkpoint, with its data file.
struct ModelCopy {
  TempDir temp;
  std::string model;
  std::string data;
  explicit ModelCopy(const std::string& name = "dsv32_default") {
    model = temp.file("model");
    copy_tree(golden_dir(name), model);
    data = temp.file("data.jsonl");
    copy_tree(golden_dir(name) + "/data.jsonl", data);
  }
  std::string out() const { return temp.file("out.json"); }
};

// The tensors of a safetensors file, with `edit` applied to the list before writing it back.
void rewrite_safetensors(const std::string& path, const std::function<void(std::vector<WriterTensor>&)>& edit) {
  std::vector<WriterTensor> tensors;
  {
    auto file = SafetensorsFile::open(path);
    for (const TensorInfo& info : file->tensors()) {
      const uint8_t* data = file->data(info);
      tensors.push_back({info.name, dtype_name(info.dtype), info.shape,
                         std::vector<uint8_t>(data, data + (info.end - info.begin))});
    }
  }
  edit(tensors);
  write_safetensors(path, tensors);
}

void edit_config(const std::string& model, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config = read_json_file(model + "/config.json");
  edit(config);
  write_text(model + "/config.json", config.dump(2));
}

// Runs --eval with the copy and checks the contract of a bad-input failure.
void expect_rejected(const ModelCopy& copy, const std::vector<std::string>& fragments,
                     const std::vector<std::string>& patterns = {"FSFSFS"}, const std::string& model = "",
                     const std::string& data = "") {
  std::vector<std::string> arguments = {"--model", model.empty() ? copy.model : model, "--data",
                                        data.empty() ? copy.data : data, "--json", copy.out()};
  for (const std::string& pattern : patterns) {
    arguments.push_back("--eval");
    arguments.push_back(pattern);
  }
  ToolResult result = run_tool("indexcache-calibrate", arguments);
  INFO("stderr: " << result.err);
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(result.err.rfind("error: ", 0) == 0);
  for (const std::string& fragment : fragments) CHECK(result.err.find(fragment) != std::string::npos);
  CHECK_FALSE(path_exists(copy.out()));
}

}  // namespace

TEST_CASE("bad model directory and config.json are rejected with exit 2", "[tools][bad-input]") {
  ModelCopy copy;
  SECTION("missing directory") { expect_rejected(copy, {"/nonexistent/model", "does not exist"}, {"FSFSFS"}, "/nonexistent/model"); }
  SECTION("missing config.json") {
    std::remove((copy.model + "/config.json").c_str());
    expect_rejected(copy, {"config.json", "missing"});
  }
  SECTION("config.json is not JSON") {
    write_text(copy.model + "/config.json", "{\"model_type\": ");
    expect_rejected(copy, {"config.json", "not valid JSON"});
  }
  SECTION("unsupported model_type lists the supported ones") {
    edit_config(copy.model, [](nlohmann::json& c) { c["model_type"] = "llama"; });
    expect_rejected(copy, {"config.json", "\"llama\" is not supported", "deepseek_v32", "glm_moe_dsa"});
  }
  SECTION("missing required field") {
    edit_config(copy.model, [](nlohmann::json& c) { c.erase("hidden_size"); });
    expect_rejected(copy, {"config.json", "hidden_size is missing"});
  }
  SECTION("field of the wrong JSON type") {
    edit_config(copy.model, [](nlohmann::json& c) { c["num_hidden_layers"] = "6"; });
    expect_rejected(copy, {"config.json", "num_hidden_layers must be an integer"});
  }
  SECTION("inconsistent fields") {
    edit_config(copy.model, [](nlohmann::json& c) { c["index_head_dim"] = 8; });
    expect_rejected(copy, {"config.json", "index_head_dim", "qk_rope_head_dim"});
  }
  SECTION("mlp_layer_types of the wrong length") {
    edit_config(copy.model, [](nlohmann::json& c) { c["mlp_layer_types"] = {"dense", "sparse"}; });
    expect_rejected(copy, {"config.json", "mlp_layer_types has 2 entries"});
  }
  SECTION("huge dimensions that would overflow sizes") {
    edit_config(copy.model, [](nlohmann::json& c) { c["vocab_size"] = int64_t{1} << 40; });
    expect_rejected(copy, {"config.json", "vocab_size"});
  }
  SECTION("a config that does not match the tensor shapes") {
    edit_config(copy.model, [](nlohmann::json& c) { c["q_lora_rank"] = 40; });
    expect_rejected(copy, {"q_a_proj.weight", "shape"});
  }
}

TEST_CASE("bad safetensors files are rejected with exit 2", "[tools][bad-input]") {
  ModelCopy copy;
  const std::string file = copy.model + "/model.safetensors";
  SECTION("header length past the end of the file") {
    write_bytes(file, safetensors_bytes_raw("{}", {}, uint64_t{1} << 40));
    expect_rejected(copy, {"model.safetensors", "header length 1099511627776 is over the"});
  }
  SECTION("header length 0") {
    write_bytes(file, safetensors_bytes_raw("", {}, 0));
    expect_rejected(copy, {"model.safetensors", "header length is 0"});
  }
  SECTION("truncated file") {
    std::string bytes = read_text(file);
    write_text(file, bytes.substr(0, bytes.size() / 2));
    expect_rejected(copy, {"model.safetensors"});
  }
  SECTION("header is not JSON") {
    write_bytes(file, safetensors_bytes_raw("{not json", {}));
    expect_rejected(copy, {"model.safetensors", "JSON"});
  }
  SECTION("offsets out of range") {
    write_bytes(file, safetensors_bytes_raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8000]}})", {0, 0, 0, 0, 0, 0, 0, 0}));
    expect_rejected(copy, {"model.safetensors", "w"});
  }
  SECTION("overlapping tensors") {
    write_bytes(file, safetensors_bytes_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                            std::vector<uint8_t>(12, 0)));
    expect_rejected(copy, {"model.safetensors", "overlap"});
  }
  SECTION("byte size not matching dtype x shape") {
    write_bytes(file, safetensors_bytes_raw(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                            std::vector<uint8_t>(8, 0)));
    expect_rejected(copy, {"model.safetensors", "w"});
  }
  SECTION("unknown dtype is named") {
    rewrite_safetensors(file, [](std::vector<WriterTensor>& t) { t.push_back({"extra", "F64", {1}, bytes_of(1.0)}); });
    expect_rejected(copy, {"model.safetensors", "F64"});
  }
  SECTION("a tensor the model needs is missing") {
    rewrite_safetensors(file, [](std::vector<WriterTensor>& tensors) {
      tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                   [](const WriterTensor& t) { return t.name == "model.layers.2.self_attn.indexer.wk.weight"; }),
                    tensors.end());
    });
    expect_rejected(copy, {"model.layers.2.self_attn.indexer.wk.weight", "missing"});
  }
  SECTION("NaN in a weight names the tensor") {
    rewrite_safetensors(file, [](std::vector<WriterTensor>& tensors) {
      for (WriterTensor& t : tensors) {
        if (t.name == "model.layers.1.mlp.experts.3.up_proj.weight") {
          float nan = std::numeric_limits<float>::quiet_NaN();
          std::memcpy(t.bytes.data() + 4, &nan, 4);
        }
      }
    });
    expect_rejected(copy, {"model.layers.1.mlp.experts.3.up_proj.weight", "NaN"});
  }
}

TEST_CASE("sharded and FP8 checkpoint problems are rejected with exit 2", "[tools][bad-input]") {
  SECTION("a shard named in the index is missing") {
    ModelCopy copy("dsv32_sharded");
    std::remove((copy.model + "/model-00002-of-00003.safetensors").c_str());
    expect_rejected(copy, {"model.safetensors.index.json", "model-00002-of-00003.safetensors"}, {"FSFS"});
  }
  SECTION("an FP8 weight without its scale") {
    ModelCopy copy("dsv32_fp8");
    rewrite_safetensors(copy.model + "/model.safetensors", [](std::vector<WriterTensor>& tensors) {
      tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                   [](const WriterTensor& t) { return t.name == "model.layers.1.self_attn.q_b_proj.weight_scale_inv"; }),
                    tensors.end());
    });
    expect_rejected(copy, {"model.layers.1.self_attn.q_b_proj.weight_scale_inv", "missing"}, {"FSF"});
  }
}

TEST_CASE("bad calibration data is rejected with exit 2", "[tools][bad-input]") {
  ModelCopy copy;
  SECTION("data file missing") { expect_rejected(copy, {"/nonexistent/data.jsonl"}, {"FSFSFS"}, "", "/nonexistent/data.jsonl"); }
  SECTION("data file empty") {
    write_text(copy.data, "");
    expect_rejected(copy, {"data.jsonl", "empty"});
  }
  SECTION("a line that is not JSON") {
    write_text(copy.data, "{\"input_ids\": [2, 3, 4]}\n{\"input_ids\": [2, 3\n");
    expect_rejected(copy, {"data.jsonl", "line 2"});
  }
  SECTION("input_ids outside the vocabulary") {
    write_text(copy.data, "{\"input_ids\": [2, 3, 512]}\n");
    expect_rejected(copy, {"data.jsonl", "512"});
  }
  SECTION("negative input_ids") {
    write_text(copy.data, "{\"input_ids\": [2, -1, 4]}\n");
    expect_rejected(copy, {"data.jsonl", "-1"});
  }
  SECTION("a sequence shorter than 2 tokens") {
    write_text(copy.data, "{\"input_ids\": [2, 3, 4]}\n{\"input_ids\": [7]}\n");
    expect_rejected(copy, {"data.jsonl", "line 2"});
  }
}

TEST_CASE("bad --eval patterns are rejected with exit 2", "[tools][bad-input]") {
  ModelCopy copy;
  SECTION("wrong length") { expect_rejected(copy, {"--eval", "FSF", "6 layers"}, {"FSF"}); }
  SECTION("characters other than F and S") { expect_rejected(copy, {"--eval", "'X'"}, {"FSXSFS"}); }
  SECTION("starting with S") { expect_rejected(copy, {"--eval", "starts with S"}, {"SFFFFF"}); }
}

TEST_CASE("calibrate --eval writes the documented JSON", "[tools]") {
  ModelCopy copy;
  ToolResult result = run_tool("indexcache-calibrate", {"--model", copy.model, "--data", copy.data, "--eval", "FSFSFS",
                                                        "--eval", "FFSSFF", "--json", copy.out()});
  INFO(result.err);
  REQUIRE(result.status == 0);
  nlohmann::json json = read_json_file(copy.out());
  nlohmann::json expected = read_json_file(golden_dir("dsv32_default") + "/expected.json");
  CHECK(json.at("tokens").get<int64_t>() == 117);
  CHECK(relative_error(json.at("baseline_loss").get<double>(), expected.at("baseline_loss").get<double>()) <= 1e-5);
  REQUIRE(json.at("evaluations").size() == 2);
  CHECK(json["evaluations"][0]["pattern"] == "FSFSFS");
  CHECK(relative_error(json["evaluations"][0]["loss"].get<double>(), expected["patterns"][0]["loss"].get<double>()) <= 1e-5);
  CHECK(json["evaluations"][1]["pattern"] == "FFSSFF");
  CHECK(result.out.find("FSFSFS") != std::string::npos);
}

TEST_CASE("overlap --json writes the documented matrix", "[tools]") {
  ModelCopy copy("glm_dsa");
  ToolResult result = run_tool("indexcache-overlap", {"--model", copy.model, "--data", copy.data, "--json", copy.out()});
  INFO(result.err);
  REQUIRE(result.status == 0);
  nlohmann::json json = read_json_file(copy.out());
  nlohmann::json expected = read_json_file(golden_dir("glm_dsa") + "/expected.json");
  CHECK(json.at("layers") == 6);
  CHECK(json.at("index_topk") == 12);
  CHECK(json.at("measured_queries") == expected.at("measured_queries"));
  for (int a = 0; a < 6; ++a) {
    for (int b = 0; b < 6; ++b) CHECK(std::abs(json["overlap"][a][b].get<double>() - expected["overlap"][a][b].get<double>()) <= 1e-3);
  }
}
