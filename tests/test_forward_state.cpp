// Issue 16, item 10b: a forward holds the selection its S layers reuse as int32 between layers
// (half the bytes of int64, so twice the forwards fit in a group that shares one load of a
// streamed layer), widened to int64 only for the S layer that attends with it; losses are the
// same as with the int64 selection held throughout.
#include "catch_shim.h"
#include "checkpoint.h"
#include "golden_fixture.h"
#include "layer_pattern.h"
#include "model.h"
#include "sequence_forward.h"

using namespace indexcache;
using namespace indexcache::testing;

namespace {

DsaModel open_model(const std::string& name) {
  ModelConfig config = load_model_config(golden_dir(name));
  return DsaModel(config, Checkpoint::open(golden_dir(name), config.fp8_block_size()), ModelOptions{});
}

// The forward as it was: the F layer's int64 selection held as is and handed to later S layers.
double loss_with_int64_selection(DsaModel& model, const std::vector<int64_t>& ids, const LayerPattern& pattern) {
  SequenceHead head = start_head(model, ids);
  at::Tensor tail = embed_tail(model, ids, head.rows);
  at::Tensor last_full;
  for (int64_t layer = 0; layer < model.config().num_hidden_layers; ++layer) {
    const bool full = pattern.is_full(layer);
    const LayerOutput out = forward_tail_layer(model, layer, head.hidden[static_cast<std::size_t>(layer)], tail,
                                               full ? at::Tensor() : last_full);
    if (full) last_full = out.topk;
    REQUIRE(last_full.scalar_type() == at::kLong);
    advance_head(model, head, layer, ids, 0);
    tail = out.hidden;
  }
  return head.nll + tail_nll(model, tail, ids, head.rows);
}

}  // namespace

TEST_CASE("a forward holds its shared selection as int32: half the selection state, same losses", "[search][offload]") {
  for (const std::string name : {"dsv32_default", "glm_dsa"}) {
    SECTION(name) {
      DsaModel model = open_model(name);
      const ModelConfig& config = model.config();
      const std::vector<std::vector<int64_t>> sequences = golden_sequences(name);
      const LayerPattern pattern = LayerPattern::evenly_spaced(config.num_hidden_layers, 2);
      REQUIRE(pattern.kept() < config.num_hidden_layers);  // S layers reuse a held selection
      for (std::size_t s = 0; s < sequences.size(); ++s) {
        const std::vector<int64_t>& ids = sequences[s];
        const auto tokens = static_cast<int64_t>(ids.size());
        PatternForward forward(model, ids, pattern, static_cast<int64_t>(s));
        for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
          forward.step();
          const at::Tensor& held = forward.shared_selection();
          REQUIRE(held.defined());
          CHECK(held.scalar_type() == at::kInt);
          CHECK(held.nbytes() == static_cast<std::size_t>(tokens * config.index_topk * 4));
        }
        const double nll = forward.finish();
        INFO(name << " sequence " << s);
        CHECK(nll == loss_with_int64_selection(model, ids, pattern));
      }
      // The estimate that sizes groups counts the selection at 4 bytes an entry: half of int64's.
      const auto tokens = static_cast<int64_t>(sequences.front().size());
      const int64_t tail_bytes = (tokens - model.pattern_invariant_rows(tokens)) * config.hidden_size *
                                 static_cast<int64_t>(at::elementSize(model.options().dtype));
      const int64_t int64_selection = tokens * config.index_topk * 8;
      CHECK(forward_state_bytes(model, tokens) - tail_bytes == int64_selection / 2);
    }
  }
}
