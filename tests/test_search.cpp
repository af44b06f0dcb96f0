// The greedy search (Algorithm 1) against transformers' trajectories, prefix reuse against full
// forwards, the stop rules, and the layer-pattern helpers it relies on.
#include <algorithm>
#include <cstdio>

#include "calibrate_run.h"
#include "catch_shim.h"
#include "checkpoint.h"
#include "golden_fixture.h"
#include "greedy_search.h"
#include "layer_pattern.h"
#include "model.h"
#include "error.h"
#include "evaluate.h"
#include "sequence_forward.h"

using namespace indexcache;
using namespace indexcache::testing;

namespace {

DsaModel open_model(const std::string& name) {
  ModelConfig config = load_model_config(golden_dir(name));
  const Fp8BlockSize block = config.fp8_block_size();
  return DsaModel(config, Checkpoint::open(golden_dir(name), block), ModelOptions{});
}

SearchResult search(DsaModel& model, const std::string& name, SearchOptions options) {
  Progress quiet(true);
  return greedy_search(model, golden_sequences(name), options, quiet);
}

// Same steps with bit-identical candidate losses from step `first_step` on, same final pattern.
void check_same_search(const SearchResult& a, const SearchResult& b, std::size_t first_step = 0) {
  REQUIRE(a.trajectory.size() == b.trajectory.size());
  for (std::size_t i = first_step; i < a.trajectory.size(); ++i) {
    REQUIRE(a.trajectory[i].candidates.size() == b.trajectory[i].candidates.size());
    for (std::size_t j = 0; j < a.trajectory[i].candidates.size(); ++j) {
      CHECK(a.trajectory[i].candidates[j].loss == b.trajectory[i].candidates[j].loss);
    }
  }
  CHECK(a.final_pattern == b.final_pattern);
}

}  // namespace

TEST_CASE("greedy search reproduces transformers trajectories", "[search][golden]") {
  for (const std::string& name : golden_cases()) {
    SECTION(name) {
      nlohmann::json expected = read_json_file(golden_dir(name) + "/expected.json");
      DsaModel model = open_model(name);
      SearchOptions options;
      options.target_kept = 1;
      SearchResult result = search(model, name, options);
      const auto& trajectory = expected.at("greedy").at("trajectory");
      REQUIRE(result.trajectory.size() == trajectory.size());
      CHECK(relative_error(result.baseline_loss, expected.at("baseline_loss").get<double>()) <= 1e-5);
      for (std::size_t i = 0; i < trajectory.size(); ++i) {
        INFO(name << " step " << i + 1);
        CHECK(result.trajectory[i].removed == trajectory[i].at("removed").get<int64_t>());
        CHECK(relative_error(result.trajectory[i].loss, trajectory[i].at("loss").get<double>()) <= 1e-5);
        CHECK(result.trajectory[i].pattern.text() == trajectory[i].at("pattern").get<std::string>());
        // Every candidate's loss, not only the winner's.
        const auto& candidates = trajectory[i].at("candidates");
        REQUIRE(result.trajectory[i].candidates.size() == candidates.size());
        for (std::size_t j = 0; j < candidates.size(); ++j) {
          CHECK(result.trajectory[i].candidates[j].layer == candidates[j].at("layer").get<int64_t>());
          CHECK(relative_error(result.trajectory[i].candidates[j].loss, candidates[j].at("loss").get<double>()) <= 1e-5);
        }
      }
      CHECK(result.stop_rule == "target-kept");
      CHECK(result.final_pattern.kept() == 1);
    }
  }
}

TEST_CASE("prefix reuse gives bit-identical losses to full forwards with fewer layer forwards", "[search]") {
  DsaModel model = open_model("glm_dsa");
  SearchOptions with_reuse;
  with_reuse.target_kept = 2;
  SearchOptions without_reuse = with_reuse;
  without_reuse.prefix_reuse = false;
  SearchResult reused = search(model, "glm_dsa", with_reuse);
  SearchResult full = search(model, "glm_dsa", without_reuse);
  CHECK(reused.baseline_loss == full.baseline_loss);
  check_same_search(reused, full);
  // 6 layers, 4 sequences: the naive count is 4 x 6 x (1 baseline + 5 + 4 + 3 + 2 candidates).
  CHECK(full.naive_layer_forwards == 4 * 6 * 15);
  CHECK(full.layer_forwards == full.naive_layer_forwards);
  CHECK(full.layer_forwards_run == full.layer_forwards);
  CHECK(reused.naive_layer_forwards == full.naive_layer_forwards);
  CHECK(reused.layer_forwards_run == reused.layer_forwards);
  CHECK(reused.layer_forwards < full.layer_forwards);
  // The cache at its peak (after the all-F baseline), on the CPU all in host memory: per
  // sequence the head entering every layer, the tail rows entering every layer and every F
  // layer's selection as int32.
  const ModelConfig& c = model.config();
  int64_t heads = 0, tails = 0, selections = 0;
  for (const auto& ids : golden_sequences("glm_dsa")) {
    const auto tokens = static_cast<int64_t>(ids.size());
    const int64_t head_rows = model.pattern_invariant_rows(tokens);
    heads += c.num_hidden_layers * head_rows * c.hidden_size * 4;
    tails += c.num_hidden_layers * (tokens - head_rows) * c.hidden_size * 4;
    selections += c.num_hidden_layers * tokens * c.index_topk * 4;
  }
  CHECK(reused.prefix_cache_host_bytes == heads + tails + selections);
  CHECK(reused.prefix_cache_device_bytes == 0);
  CHECK(full.prefix_cache_host_bytes == heads);  // without prefix reuse only the heads are kept
}

TEST_CASE("layer-major groups of forwards give identical losses and load each streamed layer far less often",
          "[search][offload]") {
  // Streamed weights (--offload) on the CPU: the loading path the GPU uses, minus the side stream.
  const std::string name = "glm_dsa";
  const ModelConfig config = load_model_config(golden_dir(name));
  const std::vector<std::vector<int64_t>> sequences = golden_sequences(name);
  auto streamed_model = [&](int64_t group_bytes) {
    ModelOptions options;
    options.keep_weights = false;
    options.forward_group_bytes = group_bytes;
    return DsaModel(config, Checkpoint::open(golden_dir(name)), options);
  };
  SearchOptions options;
  options.target_kept = 2;
  DsaModel in_memory = open_model(name);
  const SearchResult reference = search(in_memory, name, options);
  const LayerPattern pattern = reference.final_pattern;
  const PatternEvaluation reference_eval = evaluate_pattern(in_memory, sequences, pattern, false);
  const auto tokens = static_cast<int64_t>(sequences.front().size());
  const int64_t job = forward_state_bytes(in_memory, tokens);
  CHECK(job == (tokens - in_memory.pattern_invariant_rows(tokens)) * config.hidden_size * 4 +
                   tokens * config.index_topk * 4);  // int32 selections
  // One at a time; one group per pass; below one forward's state (still one per group); pairs
  // (groups crossing from one candidate to the next).
  const std::vector<int64_t> budgets = {0, int64_t{1} << 40, 1, 2 * job + job / 2};
  std::vector<int64_t> loads;
  for (const int64_t budget : budgets) {
    DsaModel model = streamed_model(budget);
    const SearchResult result = search(model, name, options);
    INFO("forward_group_bytes " << budget << ", layer loads " << model.layer_loads());
    CHECK(result.baseline_loss == reference.baseline_loss);
    check_same_search(result, reference);
    CHECK(result.layer_forwards_run == reference.layer_forwards_run);
    loads.push_back(model.layer_loads());
    if (budget == budgets[1]) {
      // One pass over the layers for the baseline, each step and each refresh (prefetches of the
      // layer after the last, or of a layer the next group does not start with, add a few).
      const int64_t passes = 1 + 2 * static_cast<int64_t>(result.trajectory.size());
      CHECK(loads.back() <= passes * (config.num_hidden_layers + 1));
    }
    // Evaluations group the same way, with the same losses.
    const int64_t before = model.layer_loads();
    const PatternEvaluation eval = evaluate_pattern(model, sequences, pattern, false);
    CHECK(eval.nll_sum == reference_eval.nll_sum);
    if (budget == budgets[1]) CHECK(model.layer_loads() - before <= config.num_hidden_layers + 1);
  }
  std::printf("streamed search, %lld layer forwards: layer loads one at a time %lld, one group per pass %lld, "
              "pairs %lld\n", static_cast<long long>(reference.layer_forwards_run), static_cast<long long>(loads[0]),
              static_cast<long long>(loads[1]), static_cast<long long>(loads[3]));
  // One forward at a time loads a layer for nearly every layer forward; groups below one forward
  // are the same; pairs about halve it; one group per pass cuts it by far more.
  CHECK(loads[0] * 2 > reference.layer_forwards_run);
  CHECK(loads[2] == loads[0]);
  CHECK(loads[3] < loads[0] * 3 / 4);
  CHECK(loads[1] * 5 < loads[0]);
  CHECK(in_memory.layer_loads() == config.num_hidden_layers);

  // A resumed search (its first step from a journal) rebuilds its cache in one group and goes on
  // to the same candidates' losses.
  REQUIRE(reference.trajectory.size() >= 2);
  DsaModel resumed_model = streamed_model(budgets[1]);
  Progress quiet(true);
  const SearchResult resumed = greedy_search(resumed_model, sequences, options, quiet, {reference.trajectory.front()});
  check_same_search(resumed, reference, 1);
}

TEST_CASE("rows before index_topk are the same under every pattern; the two-part forward equals the full one",
          "[search]") {
  DsaModel model = open_model("dsv32_default");
  const int64_t layers = model.config().num_hidden_layers;
  const int64_t k = model.config().index_topk;
  const std::vector<int64_t> ids = golden_sequences("dsv32_default").front();
  REQUIRE(static_cast<int64_t>(ids.size()) > 3 * k);
  // Full-row forwards (one call per layer, every row) under two very different patterns.
  auto run = [&](const LayerPattern& pattern) {
    std::vector<at::Tensor> states;
    at::Tensor hidden = model.embed(ids), last_full;
    for (int64_t layer = 0; layer < layers; ++layer) {
      LayerOutput out = model.forward_layer(layer, hidden, pattern.is_full(layer) ? at::Tensor() : last_full);
      if (pattern.is_full(layer)) last_full = out.topk;
      hidden = out.hidden;
      states.push_back(hidden);
    }
    return states;
  };
  const auto all_full = run(LayerPattern::all_full(layers));
  const auto one_full = run(LayerPattern::parse("F" + std::string(static_cast<std::size_t>(layers - 1), 'S'), layers, "t"));
  SequenceHead head = start_head(model, ids);
  for (int64_t layer = 0; layer < layers; ++layer) advance_head(model, head, layer, ids, 0);
  REQUIRE(head.rows == k);
  for (int64_t layer = 0; layer < layers; ++layer) {
    INFO("layer " << layer);
    const at::Tensor later_all = all_full[layer].narrow(0, k, all_full[layer].size(0) - k);
    const at::Tensor later_one = one_full[layer].narrow(0, k, one_full[layer].size(0) - k);
    // The patterns change the later rows from the first S layer on ...
    if (layer >= 1) CHECK((later_all - later_one).abs().max().item<double>() > 1.0);
    // ... never the first k. Only up to rounding (measured: at most 4.2e-6 here): in a full-row
    // forward the matrix products see different other rows, which can change a row's
    // summation order.
    CHECK((all_full[layer].narrow(0, 0, k) - one_full[layer].narrow(0, 0, k)).abs().max().item<double>() <= 1e-4);
    // The head as a sequence of its own: the same rows up to rounding.
    if (layer + 1 < layers) {
      CHECK(at::allclose(head.hidden[layer + 1], all_full[layer].narrow(0, 0, k), 1e-5, 1e-5));
    }
  }
  // The two-part loss (evaluate_pattern) against the one-pass loss of the full-row forward.
  const double two_part = evaluate_pattern(model, {ids}, LayerPattern::all_full(layers), false).nll_sum;
  const double one_pass = model.sequence_nll(all_full.back(), ids);
  INFO("two-part " << two_part << " one-pass " << one_pass);
  CHECK(std::abs(two_part - one_pass) <= 1e-5 * std::abs(one_pass));
}

TEST_CASE("max-loss-increase stops before the loss would exceed the limit", "[search]") {
  // dsv32_yarn's trajectory: +0.24%, +0.06%, +0.25%, +0.66%, +1.68% over the baseline.
  DsaModel model = open_model("dsv32_yarn");
  SearchOptions options;
  options.target_kept = 1;
  options.max_loss_increase = 0.005;
  SearchResult result = search(model, "dsv32_yarn", options);
  CHECK(result.stop_rule == "max-loss-increase");
  REQUIRE(result.trajectory.size() == 3);
  CHECK(result.final_loss <= result.baseline_loss * 1.005);
  REQUIRE(result.stopped_at.has_value());
  CHECK(result.stopped_at->removed == 2);
  CHECK(result.stopped_at->loss > result.baseline_loss * 1.005);
  CHECK(result.final_pattern.text() == "FFFSSS");
}

TEST_CASE("pinned pipeline-stage layers stay F", "[search]") {
  DsaModel model = open_model("dsv32_default");
  SearchOptions options;
  options.target_kept = 2;
  options.pinned_layers = {3};
  SearchResult result = search(model, "dsv32_default", options);
  CHECK(result.final_pattern.text() == "FSSFSS");
  for (const SearchStep& step : result.trajectory) {
    for (const CandidateLoss& candidate : step.candidates) CHECK(candidate.layer != 3);
  }
  options.target_kept = 1;  // below what the pins allow: the search ends with no candidates
  result = search(model, "dsv32_default", options);
  CHECK(result.stop_rule == "no-candidates");
  CHECK(result.final_pattern.text() == "FSSFSS");
}

TEST_CASE("layer patterns: parsing, index_topk_freq and even spacing", "[pattern]") {
  CHECK(LayerPattern::parse("FSFS", 4, "t").kept() == 2);
  CHECK(LayerPattern::parse("FSSF", 4, "t").source_layer(2) == 0);
  CHECK(LayerPattern::parse("FSSF", 4, "t").source_layer(3) == 3);
  CHECK_THROWS_AS(LayerPattern::parse("FSF", 4, "t"), InputError);
  CHECK_THROWS_AS(LayerPattern::parse("FSXF", 4, "t"), InputError);
  CHECK_THROWS_AS(LayerPattern::parse("SFFF", 4, "t"), InputError);
  // index_topk_freq=N: layer i is F iff max(i - 1, 0) % N == 0 (layers 0, 1, then every N-th).
  CHECK(LayerPattern::from_frequency(10, 4).text() == "FFSSSFSSSF");
  CHECK(LayerPattern::from_frequency(6, 1).text() == "FFFFFF");
  CHECK(LayerPattern::evenly_spaced(8, 2).text() == "FSSSFSSS");
  CHECK(LayerPattern::evenly_spaced(61, 15).kept() == 15);
  CHECK(LayerPattern::evenly_spaced(6, 6).text() == "FFFFFF");
}

TEST_CASE("keep fraction and keep-layers resolve to a target count", "[search]") {
  SearchSettings settings;
  settings.keep_fraction = 0.25;
  CHECK(resolve_target_kept(settings, 61) == 15);  // 15.25
  settings.keep_fraction = 0.5;
  CHECK(resolve_target_kept(settings, 61) == 31);  // 30.5 rounds half up
  settings.keep_fraction = 0.01;
  CHECK(resolve_target_kept(settings, 61) == 1);  // max(1, round(0.61))
  settings.keep_fraction = 1.0;
  CHECK(resolve_target_kept(settings, 78) == 78);
  for (double bad : {0.0, -0.1, 1.01}) {
    settings.keep_fraction = bad;
    CHECK_THROWS_AS(resolve_target_kept(settings, 61), InputError);
  }
  settings.keep_fraction.reset();
  settings.keep_layers = 4;
  CHECK(resolve_target_kept(settings, 61) == 4);
  for (int64_t bad : {int64_t{0}, int64_t{62}}) {
    settings.keep_layers = bad;
    CHECK_THROWS_AS(resolve_target_kept(settings, 61), InputError);
  }
  settings.keep_layers = 4;
  settings.keep_fraction = 0.25;
  CHECK_THROWS_AS(resolve_target_kept(settings, 61), InputError);  // both
  settings = SearchSettings{};
  CHECK_THROWS_AS(resolve_target_kept(settings, 61), InputError);  // neither
  settings.keep_layers = 2;
  settings.pp_stages = {0, 20, 40};
  CHECK_THROWS_AS(resolve_target_kept(settings, 61), InputError);  // pins 3 > 2
}

TEST_CASE("pipeline stages parse and check the first layer of each stage", "[plan]") {
  CHECK(parse_pp_stages("0,15,30", 61) == std::vector<int64_t>{0, 15, 30});
  CHECK_THROWS_AS(parse_pp_stages("0,61", 61), InputError);
  CHECK_THROWS_AS(parse_pp_stages("15,0", 61), InputError);
  CHECK_THROWS_AS(parse_pp_stages("0,a", 61), InputError);
  const LayerPattern pattern = LayerPattern::parse("FSSFSS", 6, "test");
  CHECK(check_pp_stages(pattern, {0, 3}).empty());
  CHECK(check_pp_stages(pattern, {0, 2}).find("layer 2") != std::string::npos);
}
