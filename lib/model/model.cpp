#include "model.h"

#include <ATen/record_function.h>
#include <c10/core/StreamGuard.h>

#include <algorithm>
#include <optional>

#ifdef INDEXCACHE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "attention.h"
#include "error.h"
#include "indexer.h"
#include "moe.h"
#include "norm.h"

namespace indexcache {

DsaModel::DsaModel(ModelConfig config, Checkpoint checkpoint, ModelOptions options)
    : config_(std::move(config)), checkpoint_(std::move(checkpoint)),
      family_(ModelFamily::describe(config_, checkpoint_)), options_(std::move(options)) {
  frequencies_ = rope_frequencies(config_.rope, config_.qk_rope_head_dim);
  softmax_scale_ = attention_softmax_scale(config_);
  layers_.resize(static_cast<std::size_t>(config_.num_hidden_layers));
  if (options_.devices.empty()) options_.devices = {options_.device};
  options_.device = options_.devices.front();
  placement_ = place_layers(model_weight_bytes(checkpoint_, config_, options_.dtype), options_.devices);
  for (const DevicePlacement& range : placement_) {
    for (int64_t layer = range.first_layer; layer < range.end_layer; ++layer) layer_devices_.push_back(range.device);
  }
}

const EmbeddingWeights& DsaModel::embedding_weights() {
  if (!embedding_) {
    // The embedding sits with the first layers, the head with the last ones.
    embedding_ = std::make_unique<EmbeddingWeights>(load_embedding_weights(
        checkpoint_, config_, options_.dtype, placement_.front().device, placement_.back().device));
  }
  return *embedding_;
}

namespace {

// Loads a layer for --offload on `stream` (see DsaModel::loading_stream). The load ends with the
// per-tensor finiteness checks, which synchronise that stream: when it returns, the weights are
// complete.
LayerWeights load_streamed_layer(const Checkpoint& checkpoint, const ModelConfig& config, int64_t layer,
                                 at::ScalarType dtype, const at::Device& device, std::optional<c10::Stream> stream) {
  std::optional<c10::StreamGuard> on_stream;
  if (stream) on_stream.emplace(*stream);
  // Every layer's indexer comes along: an S layer's indexer is small next to its experts.
  return load_layer_weights(checkpoint, config, layer, dtype, device, true);
}

// Weights allocated on the loading stream and read on the compute stream: tell the caching
// allocator, so their memory is not handed to the next load before the compute stream is done.
void mark_used_on_current_stream(LayerWeights& weights, const at::Device& device) {
#ifdef INDEXCACHE_CUDA
  if (!device.is_cuda()) return;
  const c10::Stream stream = at::cuda::getCurrentCUDAStream(device.index()).unwrap();
  for_each_tensor(weights, [&](at::Tensor& t) { t.record_stream(stream); });
#else
  (void)weights;
  (void)device;
#endif
}

}  // namespace

std::optional<c10::Stream> DsaModel::loading_stream(const at::Device& device) {
#ifdef INDEXCACHE_CUDA
  if (!device.is_cuda()) return std::nullopt;
  for (const c10::Stream& stream : loading_streams_) {
    if (stream.device() == device) return stream;
  }
  // One stream per device for the model's life: the caching allocator keeps freed blocks per
  // stream, so a new stream per load would never reuse the previous layers' memory.
  loading_streams_.push_back(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()).unwrap());
  return loading_streams_.back();
#else
  (void)device;
  return std::nullopt;
#endif
}

std::shared_ptr<LayerWeights> DsaModel::streamed_weights(int64_t layer) {
  // The copies and the FP8 decoding run on a stream of their own, so on a GPU they overlap the
  // layer computing on the current stream (the default stream would serialise them).
  auto load = [this](int64_t which, std::optional<c10::Stream> stream) {
    return std::make_shared<LayerWeights>(
        load_streamed_layer(checkpoint_, config_, which, options_.dtype, layer_device(which), stream));
  };
  if (current_layer_ != layer) {
    if (next_layer_ != layer) ++layer_loads_;
    current_ = next_layer_ == layer ? next_.get() : load(layer, loading_stream(layer_device(layer)));
    current_layer_ = layer;
    mark_used_on_current_stream(*current_, layer_device(layer));
  }
  // Start loading the next layer while this one runs; it is what a forward needs next.
  const int64_t upcoming = (layer + 1) % config_.num_hidden_layers;
  if (next_layer_ != upcoming) {
    if (next_.valid()) next_.wait();  // never two loads in flight
    ++layer_loads_;
    next_ = std::async(std::launch::async, load, upcoming, loading_stream(layer_device(upcoming))).share();
    next_layer_ = upcoming;
  }
  return current_;
}

const LayerWeights& DsaModel::layer_weights(int64_t layer, bool need_indexer) {
  if (!options_.keep_weights) return *streamed_weights(layer);
  std::unique_ptr<LayerWeights>& slot = layers_[static_cast<std::size_t>(layer)];
  if (!slot) {
    ++layer_loads_;
    slot = std::make_unique<LayerWeights>(
        load_layer_weights(checkpoint_, config_, layer, options_.dtype, layer_device(layer), need_indexer));
  } else if (need_indexer && !slot->indexer.wq_b.defined()) {
    slot->indexer = load_indexer_weights(checkpoint_, config_, layer, options_.dtype, layer_device(layer));
  }
  return *slot;
}

const RopeTables& DsaModel::rope_for(int64_t tokens, const at::Device& device) {
  auto found = std::find_if(rope_.begin(), rope_.end(), [&](const DeviceRope& r) { return r.device == device; });
  if (found == rope_.end()) {
    rope_.push_back({device, {}, 0});
    found = rope_.end() - 1;
  }
  if (tokens > found->length) {
    // Grow in powers of two so sequences of varying length rarely rebuild the tables.
    int64_t length = std::max<int64_t>(found->length * 2, 64);
    while (length < tokens) length *= 2;
    found->tables = rope_tables(frequencies_, length, options_.dtype, device);
    found->length = length;
  }
  return found->tables;
}

at::Tensor DsaModel::embed(const std::vector<int64_t>& ids) {
  at::Tensor index = at::tensor(ids, at::kLong).to(placement_.front().device);
  return embedding_weights().embed.index_select(0, index);
}

int64_t DsaModel::attention_chunk_bytes(const at::Device& device) const {
  if (options_.attention_chunk_bytes > 0) return options_.attention_chunk_bytes;
  return device.is_cuda() ? int64_t{2} << 30 : int64_t{256} << 20;
}

LayerOutput DsaModel::forward_layer(int64_t layer, const at::Tensor& layer_input, const at::Tensor& shared,
                                    int64_t first_row) {
  const bool run_indexer = !shared.defined();
  const at::Device& device = layer_device(layer);
  // With several devices, activations and a shared selection follow the layer.
  const at::Tensor hidden = layer_input.to(device);
  const at::Tensor shared_topk = run_indexer ? shared : shared.to(device);
  std::shared_ptr<LayerWeights> streamed;  // keeps a streamed layer alive for this call
  if (!options_.keep_weights) streamed = streamed_weights(layer);
  const LayerWeights& w = options_.keep_weights ? layer_weights(layer, run_indexer) : *streamed;
  const RopeTables& rope = rope_for(hidden.size(0), device);

  // The named scopes cost nothing unless a profiler is on (bench/layer_bench --trace): they let
  // a trace attribute each kernel to its stage of the layer.
  LayerOutput out;
  at::Tensor x;
  MlaProjection projection;
  {
    RECORD_FUNCTION("indexcache::projections", std::vector<c10::IValue>());
    x = rms_norm(hidden, w.input_norm, config_.rms_norm_eps);
    projection = mla_project(w.attention, config_, x, rope, first_row);
  }
  if (run_indexer && !w.indexer.wq_b.defined()) {
    // The family keeps patterns from asking this (ModelFamily::check_pattern); a caller that
    // does gets a clear error instead of a computation on missing weights.
    throw InputError(checkpoint_.dir(), "layer " + std::to_string(layer) +
                                            " has no indexer tensors, so it cannot run as F (it is fixed S)");
  }
  if (run_indexer) {
    RECORD_FUNCTION("indexcache::indexer", std::vector<c10::IValue>());
    IndexerProjection indexer =
        indexer_project(w.indexer, config_, x, projection.q_latent, rope, options_.indexer_precision);
    out.topk = indexer_topk(indexer, config_.index_topk);
  } else {
    out.topk = shared_topk;
  }
  at::Tensor residual, ffn;
  {
    RECORD_FUNCTION("indexcache::attention", std::vector<c10::IValue>());
    at::Tensor attended = mla_attend(projection, w.attention, config_, out.topk, softmax_scale_, options_.attention,
                                     attention_chunk_bytes(device));
    residual = hidden.narrow(0, first_row, hidden.size(0) - first_row) + attended;
  }
  {
    RECORD_FUNCTION("indexcache::mlp", std::vector<c10::IValue>());
    at::Tensor y = rms_norm(residual, w.post_attention_norm, config_.rms_norm_eps);
    ffn = w.is_moe ? moe_forward(w.moe, config_, y) : dense_mlp(w.mlp, y);
  }
  out.hidden = residual + ffn;
  return out;
}

double DsaModel::sequence_nll(const at::Tensor& hidden, const std::vector<int64_t>& ids) {
  const auto tokens = static_cast<int64_t>(ids.size());
  const int64_t split = pattern_invariant_rows(tokens);
  return sequence_nll_range(hidden.narrow(0, 0, split), ids, 0, split) +
         sequence_nll_range(hidden.narrow(0, split, tokens - split), ids, split, tokens);
}

double DsaModel::sequence_nll_range(const at::Tensor& rows, const std::vector<int64_t>& ids, int64_t first,
                                    int64_t end) {
  const EmbeddingWeights& w = embedding_weights();
  // Position t predicts ids[t + 1]: the last position predicts nothing.
  const int64_t predictions = std::min<int64_t>(end, static_cast<int64_t>(ids.size()) - 1) - first;
  if (predictions <= 0) return 0.0;
  const at::Device& device = placement_.back().device;
  at::Tensor targets =
      at::tensor(std::vector<int64_t>(ids.begin() + first + 1, ids.begin() + first + 1 + predictions), at::kLong)
          .to(device);
  // Rows of float32 logits per chunk: about 256 MB at a time.
  const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 20) / (config_.vocab_size * 4 * 2), 1, predictions);
  // The running sum stays on the device (float64, the same additions as on the host), so the
  // chunks queue without a host synchronisation each.
  at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  for (int64_t begin = 0; begin < predictions; begin += chunk) {
    const int64_t count = std::min(chunk, predictions - begin);
    at::Tensor h = rms_norm(rows.narrow(0, begin, count).to(device), w.final_norm, config_.rms_norm_eps);
    // Logits in the compute dtype, the loss in float32 (transformers upcasts the logits).
    at::Tensor log_probs = at::log_softmax(apply_linear(h, w.lm_head).to(at::kFloat), -1);
    at::Tensor picked = log_probs.gather(1, targets.narrow(0, begin, count).unsqueeze(1));
    total.sub_(picked.sum().to(at::kDouble));
  }
  return total.item<double>();
}

}  // namespace indexcache
