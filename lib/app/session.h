// What every command starts from: the checkpoint opened as a model on the chosen device and the
// calibration data read into token sequences. Defaults point at the bundled tiny model and the
// bundled mixed calibration set (the embedded default).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calibration_data.h"
#include "hub_cache.h"
#include "model.h"
#include "model_config.h"
#include "tokenizer.h"

namespace indexcache {

struct SessionOptions {
  std::string model_dir;                // --model: a directory or a hub id (locate_session_model); empty: default_model_dir()
  std::vector<std::string> data_specs;  // empty: default_data_specs()
  int64_t seq_len = 0;
  int64_t num_samples = 0;
  uint64_t seed = 0;
  std::string split = "calibration";
  std::string device = "cpu";
  std::string devices;   // "cuda:0,cuda:1": layers placed over several devices (overrides device)
  bool offload = false;  // stream layer weights from host memory instead of keeping them
  std::string attention = "auto";  // auto, eager, sparse or fused (attention.h)
  std::string dtype;  // empty: fp32 on the CPU, bf16 on a GPU
  bool keep_weights = true;
  std::string indexer_precision = "model";
};

struct Session {
  std::string model_dir;         // the directory opened (a hub id's cached snapshot)
  ModelLocation model_location;  // with the hub id, revision and commit when --model named one
  std::vector<std::string> data_specs;
  ModelConfig config;
  std::optional<Tokenizer> tokenizer;  // when the checkpoint has tokenizer.json
  CalibrationSet data;
  std::unique_ptr<DsaModel> model;
  at::Device device = at::kCPU;  // the first device when layers are placed over several
  at::ScalarType dtype = at::kFloat;
};

// The bundled tiny DSA checkpoint (models/tiny-dsa in the source tree, or
// $INDEXCACHE_MODEL_DIR) and the bundled mix (configs/mix-default.yaml).
std::string default_model_dir();
std::vector<std::string> default_data_specs();

// Where a --model value points (empty: the bundled model): a local path as it is, else a hub id
// from the local Hugging Face cache (hub_cache.h). Throws InputError for an uncached hub id.
ModelLocation locate_session_model(const std::string& model_option);

// Validates everything (config, checkpoint headers, data, device) before returning, so no
// long work starts on bad input. Throws InputError.
Session open_session(const SessionOptions& options);

// Reads calibration data for an already opened session's model (another split or source).
CalibrationSet load_session_data(const Session& session, const SessionOptions& options);

}  // namespace indexcache
