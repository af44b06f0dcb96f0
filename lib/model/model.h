// The DSA decoder run layer by layer, so callers can keep the hidden states between layers
// (prefix reuse in the greedy search) and choose per layer whether the indexer runs (F) or the
// previous F layer's selection is reused (S).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include "attention.h"
#include "checkpoint.h"
#include "layer_placement.h"
#include "indexer.h"
#include "model_config.h"
#include "model_family.h"
#include "model_weights.h"
#include "rope.h"

namespace indexcache {

struct ModelOptions {
  at::Device device = at::kCPU;
  // Several devices of one host: contiguous layer ranges balanced by weight bytes
  // (layer_placement.h). Empty: everything on `device`.
  std::vector<at::Device> devices;
  at::ScalarType dtype = at::kFloat;  // compute dtype: float32 or bfloat16
  // Keep every layer's weights once loaded (fast repeated forwards). When false (--offload),
  // weights stream from host memory (the checkpoint's page cache) for each use: the next
  // layer's weights are loaded in the background while the current layer runs, and at most
  // two layers are resident — for models larger than device memory.
  bool keep_weights = true;
  IndexerPrecision indexer_precision = IndexerPrecision::Model;
  AttentionPath attention = AttentionPath::Auto;  // eager reference or sparse gather (attention.h)
  // Temporaries of the chunked attention (query rows per chunk), in bytes; 0 chooses by device:
  // 256 MiB on the CPU (keeps the resident set small), 2 GiB on a GPU, where each chunk costs
  // about ten kernel launches and small chunks left the GPU idle a third of the time (profiled at
  // 32K tokens on the DeepSeek-V3.2-dimension bench model).
  int64_t attention_chunk_bytes = 0;
  // Forwards of several sequences (or search candidates) run layer-major in groups whose running
  // state (sequence_forward.h, forward_state_bytes) stays under this many bytes: a layer runs for
  // the whole group before the next layer starts, so with streamed weights each layer is loaded
  // once per group instead of once per forward. <= 0: one forward at a time. Losses are the same
  // either way (each forward computes the same operations on the same inputs).
  int64_t forward_group_bytes = 0;
};

struct LayerOutput {
  at::Tensor hidden;  // [tokens, hidden] entering the next layer
  at::Tensor topk;    // [tokens, index_topk] the selection this layer attended with
};

class DsaModel {
 public:
  DsaModel(ModelConfig config, Checkpoint checkpoint, ModelOptions options);

  const ModelConfig& config() const { return config_; }
  const Checkpoint& checkpoint() const { return checkpoint_; }
  // Which layers have an indexer and how a pattern (in the family's form) maps onto them.
  const ModelFamily& family() const { return family_; }
  const ModelOptions& options() const { return options_; }

  // Token embeddings [tokens, hidden] for ids in [0, vocab_size).
  at::Tensor embed(const std::vector<int64_t>& ids);

  // Runs decoder layer `layer` on `hidden` [tokens, hidden]. With `shared_topk` undefined the
  // layer runs its indexer (an F layer); otherwise it attends with `shared_topk` [tokens,
  // index_topk] (S). With `first_row` > 0 only rows [first_row, tokens) are computed: the earlier
  // rows serve as keys and values, `out.hidden` is [tokens - first_row, hidden], and `out.topk`
  // still covers every row.
  LayerOutput forward_layer(int64_t layer, const at::Tensor& hidden, const at::Tensor& shared_topk = {},
                            int64_t first_row = 0);

  // Where layer `layer` runs, and the whole placement (for reports).
  const at::Device& layer_device(int64_t layer) const { return layer_devices_[static_cast<std::size_t>(layer)]; }
  const std::vector<DevicePlacement>& placement() const { return placement_; }

  // Sum over positions t < T-1 of -log p(ids[t+1] | ids[..t]) from the last layer's output
  // [T, hidden], with the final norm and the lm-head applied in chunks (no [tokens, vocab] tensor
  // at once). Always summed as sequence_nll_range(0, pattern_invariant_rows) +
  // sequence_nll_range(pattern_invariant_rows, T), so a search that keeps the first part and
  // recomputes only the second gets bit-identical sums.
  double sequence_nll(const at::Tensor& hidden, const std::vector<int64_t>& ids);
  // The same sum over positions [first, end) only; `rows` [end - first, hidden] are those
  // positions' final hidden states.
  double sequence_nll_range(const at::Tensor& rows, const std::vector<int64_t>& ids, int64_t first, int64_t end);

  // Rows whose selection is every causal key under any pattern (t + 1 <= index_topk), so whose
  // hidden states never depend on which layers are F or S: min(index_topk, tokens).
  int64_t pattern_invariant_rows(int64_t tokens) const { return std::min(config_.index_topk, tokens); }

  // Layer weight loads so far (with keep_weights false, every load of a streamed layer, prefetches
  // included; otherwise each layer's first load): what --offload's transfer time scales with.
  int64_t layer_loads() const { return layer_loads_; }

 private:
  const LayerWeights& layer_weights(int64_t layer, bool need_indexer);
  std::shared_ptr<LayerWeights> streamed_weights(int64_t layer);
  // The stream streamed layers load on, per GPU (none on the CPU).
  std::optional<c10::Stream> loading_stream(const at::Device& device);
  const EmbeddingWeights& embedding_weights();
  const RopeTables& rope_for(int64_t tokens, const at::Device& device);

  ModelConfig config_;
  Checkpoint checkpoint_;
  ModelFamily family_;
  ModelOptions options_;
  std::vector<DevicePlacement> placement_;
  std::vector<at::Device> layer_devices_;
  RopeFrequencies frequencies_;
  double softmax_scale_ = 1.0;
  int64_t attention_chunk_bytes(const at::Device& device) const;
  struct DeviceRope {
    at::Device device;
    RopeTables tables;
    int64_t length = 0;
  };
  std::vector<DeviceRope> rope_;
  std::vector<std::unique_ptr<LayerWeights>> layers_;
  // Streaming (keep_weights false): the layer in use and the next one loading in the background.
  std::shared_ptr<LayerWeights> current_;
  int64_t current_layer_ = -1;
  std::shared_future<std::shared_ptr<LayerWeights>> next_;
  int64_t next_layer_ = -1;
  std::unique_ptr<EmbeddingWeights> embedding_;
  int64_t layer_loads_ = 0;
  std::vector<c10::Stream> loading_streams_;
};

}  // namespace indexcache
