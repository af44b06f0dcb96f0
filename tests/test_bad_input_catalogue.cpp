// The bad-input catalogue (tests/bad_inputs/README.md lists it together with the cases of
// test_tools_bad_input.cpp and test_plan.cpp). Each row breaks one thing in a fresh workspace
// (a writable copy of the dsv32_default golden checkpoint with the tiny tokenizer, its data,
// an output path) and runs the real indexcache-calibrate. Every row must give:
//   exit status 2, exactly one stderr line "error: ..." holding every expected fragment (which
//   name the file and the problem), and no new file anywhere in the workspace (no output, no
//   temporary), and no crash or hang (ctest's timeout).
// Tables are grouped by area, one TEST_CASE each, so ctest runs the areas in parallel.
//
// Permission denied as root: root ignores permission bits, so those rows run the tool through
// `setpriv --bounding-set=-dac_override,-dac_read_search`, which takes away the capabilities
// that let root read any file. Where setpriv cannot do that they are skipped with a WARN.
// Disk full: a 16 KiB tmpfs holds the output (ENOSPC) where mount works, else the row is skipped
// with a WARN; RLIMIT_FSIZE (`ulimit -f`, EFBIG) always runs.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "calibrate_run.h"
#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "session.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

const std::string kTokenizer = std::string(INDEXCACHE_FIXTURES_DIR) + "/data/tiny-tokenizer.json";

// A writable copy of a golden checkpoint (with tokenizer.json), its data, and the command line
// of an --eval run that writes --json out.json. Rows edit files and/or the arguments.
struct Workspace {
  TempDir temp;
  std::string model, data, out;
  std::vector<std::string> arguments;
  std::string shell_prefix;  // e.g. "ulimit -f 1;"
  std::function<void()> cleanup;

  explicit Workspace(const std::string& golden = "dsv32_default") {
    model = temp.file("model");
    copy_tree(golden_dir(golden), model);
    copy_tree(kTokenizer, model + "/tokenizer.json");
    data = temp.file("data.jsonl");
    copy_tree(golden_dir(golden) + "/data.jsonl", data);
    out = temp.file("out.json");
    const std::string pattern = golden == "dsv32_fp8" ? "FSF" : golden == "dsv32_sharded" ? "FSFS" : "FSFSFS";
    arguments = {"--model", model, "--data", data, "--eval", pattern, "--json", out};
  }
  ~Workspace() {
    if (cleanup) cleanup();
  }
  std::string file(const std::string& name) const { return temp.file(name); }
  std::string model_file(const std::string& name) const { return model + "/" + name; }
  // Replaces the value after `option` in the arguments.
  void set_argument(const std::string& option, const std::string& value) {
    for (std::size_t i = 0; i + 1 < arguments.size(); ++i) {
      if (arguments[i] == option) arguments[i + 1] = value;
    }
  }
};

struct BadInput {
  const char* input;                        // what is wrong (the catalogue's first column)
  std::function<void(Workspace&)> make;     // breaks a fresh workspace
  std::vector<std::string> expected;        // fragments of the one-line message
  const char* golden = "dsv32_default";     // the checkpoint the workspace copies
};

// ---- making broken files ------------------------------------------------------------------------

void replace_text(const std::string& path, const std::string& text) {
  std::remove(path.c_str());
  write_text(path, text);
}

void replace_with_directory(const std::string& path) {
  remove_tree(path);
  make_directories(path);
}

void replace_with_fifo(const std::string& path) {
  remove_tree(path);
  REQUIRE(::mkfifo(path.c_str(), 0644) == 0);
}

// A symbolic link to itself: every open() fails with ELOOP.
void replace_with_symlink_loop(const std::string& path) {
  remove_tree(path);
  REQUIRE(::symlink(file_name(path).c_str(), path.c_str()) == 0);
}

void truncate_file(const std::string& path, int64_t size) {
  std::string bytes = read_text(path);
  REQUIRE(static_cast<int64_t>(bytes.size()) > size);
  replace_text(path, bytes.substr(0, static_cast<std::size_t>(size)));
}

uint64_t header_length(const std::string& safetensors_path) {
  const std::string bytes = read_text(safetensors_path);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = length << 8 | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  return length;
}

void edit_json(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json value = read_json_file(path);
  edit(value);
  replace_text(path, value.dump(1));
}

// Every tensor of a safetensors file, `edit` applied, written back.
void edit_tensors(const std::string& path, const std::function<void(std::vector<WriterTensor>&)>& edit) {
  std::vector<WriterTensor> tensors;
  {
    auto file = SafetensorsFile::open(path);
    for (const TensorInfo& info : file->tensors()) {
      const uint8_t* bytes = file->data(info);
      tensors.push_back({info.name, dtype_name(info.dtype), info.shape,
                         std::vector<uint8_t>(bytes, bytes + (info.end - info.begin))});
    }
  }
  edit(tensors);
  write_safetensors(path, tensors);
}

WriterTensor& tensor_named(std::vector<WriterTensor>& tensors, const std::string& name) {
  for (WriterTensor& tensor : tensors) {
    if (tensor.name == name) return tensor;
  }
  FAIL("no tensor " << name);
  return tensors.front();
}

void set_float(WriterTensor& tensor, std::size_t index, float value) {
  std::memcpy(tensor.bytes.data() + index * 4, &value, 4);
}

// The tiny tokenizer's JSON with `edit` applied, as the model's tokenizer.json.
void edit_tokenizer(Workspace& ws, const std::function<void(nlohmann::json&)>& edit) {
  edit_json(ws.model_file("tokenizer.json"), edit);
}

void use_text_data(Workspace& ws) {
  ws.data = ws.file("text.jsonl");
  write_text(ws.data, "{\"text\": \"The quick brown fox jumps over the lazy dog, again and again.\"}\n");
  ws.set_argument("--data", ws.data);
  ws.arguments.insert(ws.arguments.end(), {"--seq-len", "8"});
}

// ---- privileges and mounts ------------------------------------------------------------------

// The prefix that makes permission bits apply to this process's children, or "" with
// `available` false when there is none.
std::string permission_prefix(bool& available) {
  available = true;
  if (::geteuid() != 0) return "";
  const std::string prefix = "setpriv --bounding-set=-dac_override,-dac_read_search --";
  available = std::system((prefix + " true >/dev/null 2>&1").c_str()) == 0;
  return prefix;
}

void deny_reading(Workspace& ws, const std::string& path) {
  bool available = false;
  ws.shell_prefix = permission_prefix(available);
  if (!available) {
    WARN("setpriv cannot drop CAP_DAC_OVERRIDE here: permission-denied row skipped");
    ws.shell_prefix = "SKIP";
    return;
  }
  REQUIRE(::chmod(path.c_str(), 0) == 0);
}

// Mounts a 16 KiB tmpfs at `directory` and fills it, so the next write gets ENOSPC; false
// when mounting is not allowed here.
bool mount_full_tmpfs(Workspace& ws, const std::string& directory) {
  make_directories(directory);
  if (::mount("tmpfs", directory.c_str(), "tmpfs", 0, "size=16k") != 0) return false;
  ws.cleanup = [directory] { ::umount2(directory.c_str(), MNT_DETACH); };
  FILE* filler = std::fopen((directory + "/filler").c_str(), "wb");
  REQUIRE(filler != nullptr);
  const std::string block(512, 'x');
  while (std::fwrite(block.data(), 1, block.size(), filler) == block.size() && std::fflush(filler) == 0) {
  }
  std::fclose(filler);
  return true;
}

// ---- running a row --------------------------------------------------------------------------

// Every path under `root` (directories descended, links not followed).
void list_tree(const std::string& root, std::set<std::string>& paths) {
  for (const std::string& name : list_directory(root)) {
    const std::string path = join_path(root, name);
    paths.insert(path);
    struct stat info {};
    if (::lstat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) list_tree(path, paths);
  }
}

void expect_rejected(const BadInput& bad) {
  Workspace ws(bad.golden);
  bad.make(ws);
  if (ws.shell_prefix == "SKIP") return;
  std::set<std::string> before;
  list_tree(ws.temp.path(), before);
  const ToolResult result = run_tool("indexcache-calibrate", ws.arguments, ws.shell_prefix);
  std::set<std::string> after;
  list_tree(ws.temp.path(), after);
  INFO("input: " << bad.input << "\nstderr: " << result.err);
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(result.err.rfind("error: ", 0) == 0);
  for (const std::string& fragment : bad.expected) CHECK(result.err.find(fragment) != std::string::npos);
  for (const std::string& path : after) {
    INFO("written despite the error: " << path);
    CHECK(before.count(path) == 1);
  }
}

void run_catalogue(const std::vector<BadInput>& rows) {
  for (const BadInput& row : rows) expect_rejected(row);
}

// ---- journals -----------------------------------------------------------------------------

// The identity a --keep-layers 2 search of this workspace records, so journal rows get past
// the identity check and reach the part they break.
nlohmann::json search_run_identity(const Workspace& ws) {
  SessionOptions options;
  options.model_dir = ws.model;
  options.data_specs = {ws.data};
  Session session = open_session(options);
  SearchSettings settings;
  settings.keep_layers = 2;
  return search_identity(session, options, settings, 2);
}

// Turns the workspace into a --resume of a --keep-layers 2 search whose journal holds `steps`.
void resume_with_steps(Workspace& ws, const nlohmann::json& steps, const nlohmann::json& baseline = 6.8) {
  const std::string plan = ws.file("p.yaml");
  nlohmann::json journal = {{"format", "indexcache-journal/1"},
                            {"run", search_run_identity(ws)},
                            {"baseline_loss", baseline},
                            {"steps", steps}};
  write_text(plan + ".journal", journal.dump());
  ws.arguments = {"--model", ws.model, "--data", ws.data, "--keep-layers", "2", "--out", plan, "--resume", "--no-report"};
}

void resume_with_journal_text(Workspace& ws, const std::string& text) {
  const std::string plan = ws.file("p.yaml");
  write_text(plan + ".journal", text);
  ws.arguments = {"--model", ws.model, "--data", ws.data, "--keep-layers", "2", "--out", plan, "--resume", "--no-report"};
}

nlohmann::json step(int64_t removed, const std::string& pattern) {
  return {{"removed", removed}, {"loss", 6.9}, {"pattern", pattern}, {"candidates", nlohmann::json::array()}};
}

// ---- plans --------------------------------------------------------------------------------

// A valid plan of the workspace's model (as a search writes it), at ws.file("p.yaml").
const std::string& reference_plan_text() {
  static const std::string text = [] {
    Workspace ws;
    const ToolResult result = run_tool("indexcache-calibrate", {"--model", ws.model, "--data", ws.data, "--keep-layers",
                                                                "2", "--out", ws.file("p.yaml"), "--no-report"});
    REQUIRE(result.status == 0);
    return read_text(ws.file("p.yaml"));
  }();
  return text;
}

// --validate of the reference plan with `from` replaced by `to`.
void validate_edited_plan(Workspace& ws, const std::string& from, const std::string& to) {
  std::string text = reference_plan_text();
  const std::size_t found = text.find(from);
  REQUIRE(found != std::string::npos);
  text.replace(found, from.size(), to);
  write_text(ws.file("p.yaml"), text);
  ws.arguments = {"--validate", ws.file("p.yaml")};
}

void validate_plan_file(Workspace& ws, const std::function<void(const std::string&)>& make) {
  write_text(ws.file("p.yaml"), reference_plan_text());
  make(ws.file("p.yaml"));
  ws.arguments = {"--validate", ws.file("p.yaml")};
}

}  // namespace

TEST_CASE("catalogue: broken checkpoint files", "[tools][bad-input][catalogue]") {
  run_catalogue({
      {"model.safetensors truncated inside the 8-byte length field",
       [](Workspace& ws) { truncate_file(ws.model_file("model.safetensors"), 5); },
       {"model.safetensors", "too short for the 8-byte header length"}},
      {"model.safetensors truncated inside the JSON header",
       [](Workspace& ws) {
         const std::string path = ws.model_file("model.safetensors");
         truncate_file(path, 8 + static_cast<int64_t>(header_length(path)) / 2);
       },
       {"model.safetensors", "runs past the end of the file"}},
      {"model.safetensors truncated right after the header (no data)",
       [](Workspace& ws) {
         const std::string path = ws.model_file("model.safetensors");
         truncate_file(path, 8 + static_cast<int64_t>(header_length(path)));
       },
       {"model.safetensors", "run past the data section of 0 bytes"}},
      {"model.safetensors missing its last byte",
       [](Workspace& ws) {
         const std::string path = ws.model_file("model.safetensors");
         truncate_file(path, static_cast<int64_t>(read_text(path).size()) - 1);
       },
       {"model.safetensors", "run past the data section"}},
      {"a shape whose element count overflows 64 bits",
       [](Workspace& ws) {
         write_bytes(ws.model_file("model.safetensors"),
                     safetensors_bytes_raw(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
                                           std::vector<uint8_t>(8, 0)));
       },
       {"model.safetensors", "tensor w", "more elements than fit in 64 bits"}},
      {"a negative dimension",
       [](Workspace& ws) {
         write_bytes(ws.model_file("model.safetensors"),
                     safetensors_bytes_raw(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                                           std::vector<uint8_t>(8, 0)));
       },
       {"model.safetensors", "tensor w", "is negative"}},
      {"+Inf in a weight (the tensor is named)",
       [](Workspace& ws) {
         edit_tensors(ws.model_file("model.safetensors"), [](std::vector<WriterTensor>& tensors) {
           set_float(tensor_named(tensors, "model.layers.0.self_attn.indexer.wk.weight"), 7,
                     std::numeric_limits<float>::infinity());
         });
       },
       {"model.safetensors", "model.layers.0.self_attn.indexer.wk.weight", "NaN or Inf"}},
      {"a tensor of the wrong shape for the config",
       [](Workspace& ws) {
         edit_tensors(ws.model_file("model.safetensors"), [](std::vector<WriterTensor>& tensors) {
           WriterTensor& tensor = tensor_named(tensors, "model.layers.2.self_attn.indexer.wk.weight");
           tensor.shape = {tensor.shape[1], tensor.shape[0]};  // transposed
         });
       },
       {"model.layers.2.self_attn.indexer.wk.weight", "shape"}},
      {"a header length one byte more than the file holds",
       [](Workspace& ws) {
         write_bytes(ws.model_file("model.safetensors"), safetensors_bytes_raw("{}", {}, uint64_t{3}));
       },
       {"model.safetensors", "header length 3 runs past the end of the file (10 bytes)"}},
      {"NaN in a norm weight (the tensor is named)",
       [](Workspace& ws) {
         edit_tensors(ws.model_file("model.safetensors"), [](std::vector<WriterTensor>& tensors) {
           set_float(tensor_named(tensors, "model.norm.weight"), 0, std::numeric_limits<float>::quiet_NaN());
         });
       },
       {"model.safetensors", "model.norm.weight", "NaN or Inf"}},
      {"model.safetensors is a dangling symlink",
       [](Workspace& ws) {
         const std::string path = ws.model_file("model.safetensors");
         remove_tree(path);
         REQUIRE(::symlink("nowhere.safetensors", path.c_str()) == 0);
       },
       {"model.safetensors", "No such file or directory"}},
      {"model.safetensors is a directory",
       [](Workspace& ws) { replace_with_directory(ws.model_file("model.safetensors")); },
       {"model.safetensors", "is a directory"}},
      {"model.safetensors is a symlink loop",
       [](Workspace& ws) { replace_with_symlink_loop(ws.model_file("model.safetensors")); },
       {"model.safetensors", "Too many levels of symbolic links"}},
      {"model.safetensors is a FIFO (must not block)",
       [](Workspace& ws) { replace_with_fifo(ws.model_file("model.safetensors")); },
       {"model.safetensors", "not a regular file"}},
      {"model.safetensors cannot be read (permission denied)",
       [](Workspace& ws) { deny_reading(ws, ws.model_file("model.safetensors")); },
       {"model.safetensors", "Permission denied"}},
      {"--model names a file, not a directory",
       [](Workspace& ws) { ws.set_argument("--model", ws.model_file("config.json")); },
       {"config.json", "is not a directory"}},
      {"model.safetensors.index.json is not JSON",
       [](Workspace& ws) { replace_text(ws.model_file("model.safetensors.index.json"), "{\"weight_map\": {"); },
       {"model.safetensors.index.json", "not valid JSON"}, "dsv32_sharded"},
      {"the index names a shard outside the checkpoint directory",
       [](Workspace& ws) {
         edit_json(ws.model_file("model.safetensors.index.json"),
                   [](nlohmann::json& index) { index["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors"; });
       },
       {"model.safetensors.index.json", "model.norm.weight", "not a file name inside the checkpoint directory"},
       "dsv32_sharded"},
      {"a tensor stored in two shards",
       [](Workspace& ws) {
         edit_tensors(ws.model_file("model-00001-of-00003.safetensors"), [](std::vector<WriterTensor>& tensors) {
           tensors.push_back({"model.norm.weight", "F32", {64}, std::vector<uint8_t>(256, 0)});
         });
       },
       {"model.norm.weight", "stored twice"}, "dsv32_sharded"},
      {"an FP8 block scale of the wrong shape",
       [](Workspace& ws) {
         edit_tensors(ws.model_file("model.safetensors"), [](std::vector<WriterTensor>& tensors) {
           for (WriterTensor& tensor : tensors) {
             if (tensor.name.size() > 10 && tensor.name.compare(tensor.name.size() - 10, 10, "_scale_inv") == 0) {
               tensor.shape = {1, static_cast<int64_t>(tensor.bytes.size() / 4)};
               tensor.bytes.resize(tensor.bytes.size() + 4, 0);
               tensor.shape[1] += 1;
               break;
             }
           }
         });
       },
       {"model.safetensors", "_scale_inv", "shape"}, "dsv32_fp8"},
  });
}

TEST_CASE("catalogue: broken config.json", "[tools][bad-input][catalogue]") {
  run_catalogue({
      {"config.json is a directory", [](Workspace& ws) { replace_with_directory(ws.model_file("config.json")); },
       {"config.json", "is a directory"}},
      {"config.json is a symlink loop", [](Workspace& ws) { replace_with_symlink_loop(ws.model_file("config.json")); },
       {"config.json", "Too many levels of symbolic links"}},
      {"config.json is a FIFO (must not block)", [](Workspace& ws) { replace_with_fifo(ws.model_file("config.json")); },
       {"config.json", "not a regular file"}},
      {"config.json cannot be read (permission denied)",
       [](Workspace& ws) { deny_reading(ws, ws.model_file("config.json")); }, {"config.json", "Permission denied"}},
      {"config.json is empty", [](Workspace& ws) { replace_text(ws.model_file("config.json"), ""); },
       {"config.json", "not valid JSON"}},
      {"config.json is a JSON array", [](Workspace& ws) { replace_text(ws.model_file("config.json"), "[1, 2]"); },
       {"config.json", "must be a JSON object"}},
      {"hidden_size is a float",
       [](Workspace& ws) { edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["hidden_size"] = 64.5; }); },
       {"config.json", "hidden_size must be an integer, got a float"}},
      {"rope_parameters is a string",
       [](Workspace& ws) {
         edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["rope_parameters"] = "default"; });
       },
       {"config.json", "rope_parameters must be an object"}},
      {"tie_word_embeddings is a string",
       [](Workspace& ws) {
         edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["tie_word_embeddings"] = "false"; });
       },
       {"config.json", "tie_word_embeddings must be true or false"}},
      {"a negative hidden_size",
       [](Workspace& ws) { edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["hidden_size"] = -64; }); },
       {"config.json", "hidden_size must be > 0"}},
      {"num_hidden_layers of 2^40 (sizes would overflow)",
       [](Workspace& ws) {
         edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["num_hidden_layers"] = int64_t{1} << 40; });
       },
       {"config.json", "num_hidden_layers", "out of range"}},
      {"num_hidden_layers of a million",
       [](Workspace& ws) {
         edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["num_hidden_layers"] = 1000000; });
       },
       {"config.json", "num_hidden_layers", "layers indexcache supports"}},
      {"indexer sizes whose product overflows",
       [](Workspace& ws) {
         edit_json(ws.model_file("config.json"), [](nlohmann::json& c) {
           c["index_n_heads"] = int64_t{1} << 30;
           c["q_lora_rank"] = int64_t{1} << 30;
         });
       },
       {"config.json", "index_n_heads", "too large"}},
  });
}

TEST_CASE("catalogue: broken tokenizer.json", "[tools][bad-input][catalogue]") {
  run_catalogue({
      {"tokenizer.json is not JSON", [](Workspace& ws) { replace_text(ws.model_file("tokenizer.json"), "{\"model\": "); },
       {"tokenizer.json", "malformed JSON"}},
      {"a model type other than BPE",
       [](Workspace& ws) { edit_tokenizer(ws, [](nlohmann::json& t) { t["model"]["type"] = "Unigram"; }); },
       {"tokenizer.json", "Unigram", "not supported"}},
      {"an unsupported normalizer",
       [](Workspace& ws) { edit_tokenizer(ws, [](nlohmann::json& t) { t["normalizer"] = {{"type", "Lowercase"}}; }); },
       {"tokenizer.json", "normalizer", "Lowercase"}},
      {"an unsupported pre-tokenizer",
       [](Workspace& ws) { edit_tokenizer(ws, [](nlohmann::json& t) { t["pre_tokenizer"] = {{"type", "Whitespace"}}; }); },
       {"tokenizer.json", "pre_tokenizer", "Whitespace"}},
      {"a merge of tokens not in the vocabulary",
       [](Workspace& ws) {
         edit_tokenizer(ws, [](nlohmann::json& t) { t["model"]["merges"].push_back(nlohmann::json::array({"zq", "qz"})); });
       },
       {"tokenizer.json", "not in model.vocab"}},
      {"an invalid regex in a Split pre-tokenizer",
       [](Workspace& ws) {
         edit_tokenizer(ws, [](nlohmann::json& t) {
           nlohmann::json split = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"},
                                   {"invert", false}};
           t["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split, t["pre_tokenizer"]}}};
         });
       },
       {"tokenizer.json", "pre_tokenizer.pretokenizers[0].pattern"}},
      {"an added token listed twice",
       [](Workspace& ws) { edit_tokenizer(ws, [](nlohmann::json& t) { t["added_tokens"].push_back(t["added_tokens"][0]); }); },
       {"tokenizer.json", "repeats an earlier added token"}},
      {"a template naming an unknown special token",
       [](Workspace& ws) {
         edit_tokenizer(ws, [](nlohmann::json& t) { t["post_processor"]["single"][0]["SpecialToken"]["id"] = "<bos>"; });
       },
       {"tokenizer.json", "\"<bos>\" is not in special_tokens"}},
      {"token ids beyond the model's vocabulary",
       [](Workspace& ws) {
         use_text_data(ws);
         edit_json(ws.model_file("config.json"), [](nlohmann::json& c) { c["vocab_size"] = 100; });
       },
       {"tokenizer.json", "outside the model's vocabulary [0, 100)"}},
      {"text data but no tokenizer.json",
       [](Workspace& ws) {
         use_text_data(ws);
         std::remove(ws.model_file("tokenizer.json").c_str());
       },
       {"text.jsonl", "needs the model's tokenizer.json"}},
  });
}

TEST_CASE("catalogue: broken calibration data", "[tools][bad-input][catalogue]") {
  auto data_file = [](Workspace& ws, const std::string& name, const std::string& text) {
    ws.data = ws.file(name);
    write_text(ws.data, text);
    ws.set_argument("--data", ws.data);
    ws.arguments.insert(ws.arguments.end(), {"--seq-len", "8"});
  };
  run_catalogue({
      {"invalid UTF-8 in a .txt document",
       [&](Workspace& ws) { data_file(ws, "doc.txt", "first line\nsecond \xff\xfe line\n"); },
       {"doc.txt", "invalid UTF-8 at line 2 (byte 19"}},
      {"invalid UTF-8 in a jsonl text record",
       [&](Workspace& ws) { data_file(ws, "text.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"bad \xc3\x28 byte\"}\n"); },
       {"text.jsonl", "line 2", "invalid UTF-8 at byte 15"}},
      {"a 10 MB single-line jsonl record that never closes its string",
       [&](Workspace& ws) { data_file(ws, "big.jsonl", "{\"text\": \"" + std::string(10 << 20, 'a')); },
       {"big.jsonl", "line 1", "not valid JSON"}},
      {"a 10 MB single-line .txt document with invalid UTF-8 at its end",
       [&](Workspace& ws) { data_file(ws, "big.txt", std::string(10 << 20, 'a') + "\xff"); },
       {"big.txt", "invalid UTF-8 at line 1 (byte 10485761"}},
      {"the data file is a directory", [](Workspace& ws) { replace_with_directory(ws.data); },
       {"data.jsonl", "is a directory"}},
      {"the data file is a symlink loop", [](Workspace& ws) { replace_with_symlink_loop(ws.data); },
       {"data.jsonl", "Too many levels of symbolic links"}},
      {"the data file is a FIFO (must not block)", [](Workspace& ws) { replace_with_fifo(ws.data); },
       {"data.jsonl", "not a regular file"}},
      {"the data file cannot be read (permission denied)", [](Workspace& ws) { deny_reading(ws, ws.data); },
       {"data.jsonl", "Permission denied"}},
      {"text and input_ids records in one file",
       [&](Workspace& ws) { data_file(ws, "mixed.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"text\": \"words\"}\n"); },
       {"mixed.jsonl", "line 2", "one file holds one kind"}},
      {"a float in input_ids", [&](Workspace& ws) { data_file(ws, "ids.jsonl", "{\"input_ids\": [1, 2.5, 3]}\n"); },
       {"ids.jsonl", "input_ids[1] is not an integer"}},
      {"an input id of 2^64", [&](Workspace& ws) { data_file(ws, "ids.jsonl", "{\"input_ids\": [1, 18446744073709551615]}\n"); },
       {"ids.jsonl", "input_ids[1]", "outside the vocabulary"}},
      {"a number beyond double range in input_ids (found by fuzzing)",
       [&](Workspace& ws) { data_file(ws, "ids.jsonl", "{\"input_ids\": [1, 1E888]}\n"); },
       {"ids.jsonl", "line 1", "not valid JSON (a number is out of range)"}},
      {"a record that is a JSON array", [&](Workspace& ws) { data_file(ws, "ids.jsonl", "[1, 2, 3]\n"); },
       {"ids.jsonl", "line 1", "expected a JSON object"}},
      {"a .csv data file", [&](Workspace& ws) { data_file(ws, "data.csv", "a,b\n"); },
       {"data.csv", "unsupported data file"}},
      {"a mix with an unknown key", [&](Workspace& ws) { data_file(ws, "mix.yaml", "sets:\n  - path: data.jsonl\nweights: 2\n"); },
       {"mix.yaml", "weights: unknown key"}},
      {"a mix whose weights sum to 0",
       [&](Workspace& ws) { data_file(ws, "mix.yaml", "sets:\n  - path: data.jsonl\n    weight: 0\n"); },
       {"mix.yaml", "sum to 0"}},
      {"a mix whose weights overflow",
       [&](Workspace& ws) {
         data_file(ws, "mix.yaml", "sets:\n  - path: data.jsonl\n    weight: 1e308\n  - path: data.jsonl\n    weight: 1e308\n");
       },
       {"mix.yaml", "sum overflows"}},
      {"a mix naming a missing file",
       [&](Workspace& ws) { data_file(ws, "mix.yaml", "sets:\n  - path: missing.jsonl\n"); },
       {"missing.jsonl", "file not found"}},
      {"a mix that is not YAML", [&](Workspace& ws) { data_file(ws, "mix.yaml", "sets: [unclosed\n"); },
       {"mix.yaml", "not valid YAML"}},
  });
}

TEST_CASE("catalogue: broken layer plans", "[tools][bad-input][catalogue]") {
  run_catalogue({
      {"the plan is a directory",
       [](Workspace& ws) { validate_plan_file(ws, [](const std::string& path) { replace_with_directory(path); }); },
       {"p.yaml", "is a directory"}},
      {"the plan is a FIFO (must not block)",
       [](Workspace& ws) { validate_plan_file(ws, [](const std::string& path) { replace_with_fifo(path); }); },
       {"p.yaml", "not a regular file"}},
      {"the plan is a symlink loop",
       [](Workspace& ws) { validate_plan_file(ws, [](const std::string& path) { replace_with_symlink_loop(path); }); },
       {"p.yaml", "Too many levels of symbolic links"}},
      {"the plan cannot be read (permission denied)",
       [](Workspace& ws) { validate_plan_file(ws, [&ws](const std::string& path) { deny_reading(ws, path); }); },
       {"p.yaml", "Permission denied"}},
      {"the plan is empty",
       [](Workspace& ws) { validate_plan_file(ws, [](const std::string& path) { replace_text(path, ""); }); },
       {"p.yaml", "not a layer plan"}},
      {"the plan is binary garbage",
       [](Workspace& ws) {
         validate_plan_file(ws, [](const std::string& path) { replace_text(path, std::string("\x00\xff\x01[{", 5)); });
       },
       {"p.yaml"}},
      // Truncations at three offsets; where the cut lands decides the message, so each row cuts
      // at a fixed landmark of the plan text.
      {"the plan truncated in the middle (inside a line of a flow list)",
       [](Workspace& ws) {
         validate_plan_file(ws, [](const std::string& path) {
           const std::string text = read_text(path);
           const std::size_t list = text.find("indexer_fingerprint:");
           truncate_file(path, static_cast<int64_t>(text.find(", ", text.find('[', list)) + 2));
         });
       },
       {"p.yaml", "is not valid YAML: line", "end of sequence flow not found"}},
      {"the plan truncated at a line boundary before calibration:",
       [](Workspace& ws) {
         validate_plan_file(ws, [](const std::string& path) {
           truncate_file(path, static_cast<int64_t>(read_text(path).find("\ncalibration:") + 1));
         });
       },
       {"p.yaml", "calibration is missing"}},
      {"the plan truncated to its first 10 bytes (a comment)",
       [](Workspace& ws) { validate_plan_file(ws, [](const std::string& path) { truncate_file(path, 10); }); },
       {"p.yaml", "not a layer plan"}},
      {"num_hidden_layers is a string", [](Workspace& ws) { validate_edited_plan(ws, "num_hidden_layers: 6", "num_hidden_layers: six"); },
       {"p.yaml", "model.num_hidden_layers must be an integer"}},
      {"num_hidden_layers is 0", [](Workspace& ws) { validate_edited_plan(ws, "num_hidden_layers: 6", "num_hidden_layers: 0"); },
       {"p.yaml", "model.num_hidden_layers must be at least 1"}},
      {"a pattern holding X", [](Workspace& ws) { validate_edited_plan(ws, "pattern: \"FSSSSF\"", "pattern: \"FSXSSF\""); },
       {"p.yaml", "'X' at layer 2"}},
      {"full_layers that do not match the pattern",
       [](Workspace& ws) { validate_edited_plan(ws, "full_layers: [0, 5]", "full_layers: [0, 4]"); },
       {"p.yaml", "full_layers does not match the pattern"}},
      {"a fingerprint entry that is not [name, dtype, shape, sha256]",
       [](Workspace& ws) { validate_edited_plan(ws, "\"F32\", [", "["); },
       {"p.yaml", "model.indexer_fingerprint[0] must be [name, dtype, shape, sha256]"}},
      {"--export of a broken plan writes nothing",
       [](Workspace& ws) {
         validate_edited_plan(ws, "kept: 2", "kept: 3");
         ws.arguments = {"--plan", ws.file("p.yaml"), "--export", "vllm", "--export-out", ws.file("overrides.json")};
       },
       {"p.yaml", "kept does not match"}},
      {"--export in an unknown format",
       [](Workspace& ws) {
         write_text(ws.file("p.yaml"), reference_plan_text());
         ws.arguments = {"--plan", ws.file("p.yaml"), "--export", "tensorrt", "--export-out", ws.file("overrides.json")};
       },
       {"--export", "tensorrt"}},
  });
}

TEST_CASE("catalogue: broken resume journals", "[tools][bad-input][catalogue]") {
  run_catalogue({
      {"the journal truncated mid-JSON",
       [](Workspace& ws) { resume_with_journal_text(ws, "{\"format\": \"indexcache-journal/1\", \"run\": {\"mo"); },
       {"p.yaml.journal", "not an indexcache search journal"}},
      {"a journal of another format",
       [](Workspace& ws) { resume_with_journal_text(ws, "{\"format\": \"indexcache-journal/0\"}"); },
       {"p.yaml.journal", "format is not"}},
      {"a journal whose format is a number", [](Workspace& ws) { resume_with_journal_text(ws, "{\"format\": 1}"); },
       {"p.yaml.journal", "format is not"}},
      {"the journal is a directory",
       [](Workspace& ws) {
         resume_with_journal_text(ws, "");
         replace_with_directory(ws.file("p.yaml.journal"));
       },
       {"p.yaml.journal", "is a directory"}},
      {"the journal is a FIFO (must not block)",
       [](Workspace& ws) {
         resume_with_journal_text(ws, "");
         replace_with_fifo(ws.file("p.yaml.journal"));
       },
       {"p.yaml.journal", "not a regular file"}},
      {"a step whose removed layer is a string",
       [](Workspace& ws) {
         nlohmann::json bad = step(3, "FFFSFF");
         bad["removed"] = "3";
         resume_with_steps(ws, nlohmann::json::array({bad}));
       },
       {"p.yaml.journal", "steps[0] is malformed: removed must be an integer"}},
      {"a step removing layer 99 of 6", [](Workspace& ws) { resume_with_steps(ws, nlohmann::json::array({step(99, "FFFSFF")})); },
       {"p.yaml.journal", "steps[0] removes layer 99"}},
      {"a step removing layer 0", [](Workspace& ws) { resume_with_steps(ws, nlohmann::json::array({step(0, "SFFFFF")})); },
       {"p.yaml.journal", "steps[0] removes layer 0"}},
      {"a step whose pattern does not follow from the removed layer",
       [](Workspace& ws) { resume_with_steps(ws, {step(3, "FFFSFF"), step(2, "FFSFFF")}); },
       {"p.yaml.journal", "steps[1] records pattern \"FFSFFF\""}},
      {"more steps than the search takes",
       [](Workspace& ws) {
         resume_with_steps(ws, {step(1, "FSFFFF"), step(2, "FSSFFF"), step(3, "FSSSFF"), step(4, "FSSSSF"), step(5, "FSSSSS")});
       },
       {"p.yaml.journal", "has 5 steps"}},
      {"steps is an object, not a list",
       [](Workspace& ws) { resume_with_steps(ws, step(3, "FFFSFF")); },
       {"p.yaml.journal", "steps must be a list, got object"}},
      {"baseline_loss is not a number",
       [](Workspace& ws) { resume_with_steps(ws, nlohmann::json::array(), "6.8"); },
       {"p.yaml.journal", "baseline_loss must be a finite number, got string"}},
  });
}

TEST_CASE("catalogue: bad command-line values", "[tools][bad-input][catalogue]") {
  auto with = [](std::vector<std::string> extra) {
    return [extra](Workspace& ws) { ws.arguments.insert(ws.arguments.end(), extra.begin(), extra.end()); };
  };
  run_catalogue({
      {"--seq-len 1", with({"--seq-len", "1"}), {"--seq-len", "less than 2"}},
      {"--seq-len abc", with({"--seq-len", "abc"}), {"--seq-len", "abc"}},
      {"--num-samples -3", with({"--num-samples", "-3"}), {"--num-samples", "negative"}},
      {"--num-samples more than the data has", with({"--num-samples", "1000"}), {"num_samples 1000"}},
      {"--eval with an empty pattern", [](Workspace& ws) { ws.set_argument("--eval", ""); }, {"--eval", "0 characters"}},
      {"--device tpu", with({"--device", "tpu"}), {"--device", "\"tpu\" is not a device"}},
      {"--dtype fp64", with({"--dtype", "fp64"}), {"--dtype", "\"fp64\" is not supported"}},
      {"--indexer-precision int4", with({"--indexer-precision", "int4"}), {"--indexer-precision", "int4"}},
      {"--split nosuch with a bundled set",
       [](Workspace& ws) {
         ws.set_argument("--data", "code");
         ws.arguments.insert(ws.arguments.end(), {"--split", "nosuch"});
       },
       {"code", "no split \"nosuch\""}},
      {"--json names a directory", [](Workspace& ws) { ws.set_argument("--json", ws.temp.path()); }, {"is a directory"}},
      {"--json in a missing directory",
       [](Workspace& ws) { ws.set_argument("--json", ws.file("missing/out.json")); },
       {"out.json", "does not exist"}},
      {"--eval together with --validate", with({"--validate", "p.yaml"}), {"separate modes"}},
  });
}

TEST_CASE("catalogue: outputs that cannot be written", "[tools][bad-input][catalogue]") {
  run_catalogue({
      {"disk full (a full 16 KiB tmpfs holds --json)",
       [](Workspace& ws) {
         if (!mount_full_tmpfs(ws, ws.file("full"))) {
           WARN("cannot mount a tmpfs here: disk-full row skipped (the RLIMIT_FSIZE row still runs)");
           ws.shell_prefix = "SKIP";
           return;
         }
         ws.set_argument("--json", ws.file("full/out.json"));
       },
       {"out.json", "No space left on device"}},
      {"file size limit (ulimit -f: 512 bytes) below the --json output",
       [](Workspace& ws) { ws.shell_prefix = "ulimit -f 1;"; }, {"out.json", "File too large"}},
  });
}
