#include "session.h"

#include <cstdlib>
#include <sys/stat.h>

#include "device.h"
#include "layer_placement.h"
#include "error.h"

namespace indexcache {
namespace {

bool file_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string source_path(const char* environment, const std::string& relative) {
  if (const char* value = std::getenv(environment); value != nullptr && *value != '\0') return value;
  return std::string(INDEXCACHE_SOURCE_DIR) + "/" + relative;
}

}  // namespace

std::string default_model_dir() { return source_path("INDEXCACHE_MODEL_DIR", "models/tiny-dsa"); }

std::vector<std::string> default_data_specs() {
  return {source_path("INDEXCACHE_MIX", "configs/mix-default.yaml")};
}

ModelLocation locate_session_model(const std::string& model_option) {
  return locate_model(model_option.empty() ? default_model_dir() : model_option);
}

CalibrationSet load_session_data(const Session& session, const SessionOptions& options) {
  DataOptions data;
  data.specs = session.data_specs;
  data.seq_len = options.seq_len;
  data.num_samples = options.num_samples;
  data.seed = options.seed;
  data.vocab_size = session.config.vocab_size;
  data.tokenizer = session.tokenizer ? &*session.tokenizer : nullptr;
  data.split = options.split;
  return load_calibration_data(data);
}

Session open_session(const SessionOptions& options) {
  Session session;
  session.model_location = locate_session_model(options.model_dir);
  session.model_dir = session.model_location.directory;
  session.data_specs = options.data_specs.empty() ? default_data_specs() : options.data_specs;
  std::vector<at::Device> devices;
  if (!options.devices.empty()) {
    devices = parse_device_list(options.devices);
    session.device = devices.front();
  } else {
    session.device = parse_device(options.device);
  }
  parse_indexer_precision(options.indexer_precision);  // reject bad values before any work
  parse_attention_path(options.attention);
  session.dtype = options.dtype.empty() ? (session.device.is_cuda() ? at::kBFloat16 : at::kFloat)
                                        : parse_dtype(options.dtype);
  session.config = load_model_config(session.model_dir);
  std::string tokenizer_path = session.model_dir + "/tokenizer.json";
  if (file_exists(tokenizer_path)) session.tokenizer = Tokenizer::load(tokenizer_path);
  session.data = load_session_data(session, options);

  const Fp8BlockSize block = session.config.fp8_block_size();
  Checkpoint checkpoint = Checkpoint::open(session.model_dir, block);
  check_model_tensors(checkpoint, session.config);
  ModelOptions model_options;
  model_options.device = session.device;
  model_options.dtype = session.dtype;
  model_options.devices = devices;
  model_options.attention = parse_attention_path(options.attention);
  model_options.keep_weights = options.keep_weights && !options.offload;
  model_options.indexer_precision = parse_indexer_precision(options.indexer_precision);
  if (!model_options.keep_weights) {
    // Streamed weights: many forwards per layer load (model.h). Weights kept in memory gain nothing
    // from it, and one forward at a time needs the least activation memory.
    const int64_t free_bytes = device_free_memory(session.device);
    model_options.forward_group_bytes =
        free_bytes > 0 ? static_cast<int64_t>(0.25 * static_cast<double>(free_bytes)) : int64_t{4} << 30;
  }
  session.model = std::make_unique<DsaModel>(session.config, std::move(checkpoint), model_options);
  return session;
}

}  // namespace indexcache
