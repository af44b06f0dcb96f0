// indexcache-overlap: the all-F forward over calibration data and the cross-layer overlap of
// the indexer's top-k selections (docs/ARCHITECTURE.md "Overlap"), per calibration domain and for all data,
// as JSON, CSV, SVG heatmaps and one self-contained HTML report.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "atomic_file.h"
#include "error.h"
#include "file_system.h"
#include "model_config.h"
#include "options.h"
#include "overlap_run.h"
#include "pattern_evaluation.h"
#include "progress.h"
#include "report_output_dir.h"
#include "report_overlap.h"
#include "session.h"

using namespace indexcache;

namespace {

const char* kDescription =
    "indexcache-overlap: how much the per-layer top-k token selections of a DSA model overlap across layers.\n"
    "Runs every calibration sequence through the model with all indexers on and reports, per calibration\n"
    "domain and for all data, the L x L overlap matrix (mean |A_t & B_t| / k over queries t with more than k\n"
    "causal candidates), each layer's overlap with the previous one, the earlier layer it overlaps most with,\n"
    "and blocks of consecutive layers whose pairwise overlap stays at or above --block-threshold.\n\n"
    "Writes into --out-dir: overlap.json, overlap-<domain>.csv, overlap-<domain>.svg (heatmaps; 'all' is all\n"
    "data) and report.html (self-contained: open it in any browser, no network needed).\n\n"
    "Examples:\n"
    "  indexcache-overlap                                  # bundled tiny model + bundled mix -> ./indexcache-overlap/\n"
    "  indexcache-overlap --model ./DeepSeek-V3.2 --data code legal --device cuda --out-dir overlap-v32\n"
    "  indexcache-overlap --model DIR --data long.jsonl --max-queries 512 --layers 0-30 --out-dir out\n"
    "  indexcache-overlap --model DIR --data my.jsonl --json overlap.json   # JSON only\n\n"
    "Exit status: 0 done, 2 bad input (one-line message, nothing written).\n";

// The shared options (model, data, device, --json, --quiet: options.h) and the overlap's own.
struct Arguments : CommonArguments {
  OverlapOptions overlap;
  std::string layers_text;
  std::string out_dir;
  bool max_queries_given = false;
};

void add_options(CLI::App& app, Arguments& a) {
  app.add_option("--query-stride", a.overlap.query_stride, "Measure every N-th query position (N >= 1)")
      ->capture_default_str();
  app.add_option("--max-queries", a.overlap.max_queries,
                 "Measure at most N query positions per sequence, evenly spread (default: all)");
  app.add_option("--layers", a.layers_text, "Only layers FIRST-LAST, e.g. 0-15 (default: all layers)");
  app.add_option("--block-threshold", a.overlap.block_threshold,
                 "Blocks: consecutive layers whose pairwise overlap is all >= this, in [0, 1]")
      ->capture_default_str();
  app.add_option("--out-dir", a.out_dir,
                 "Folder for overlap.json, CSV, SVG and report.html (default: indexcache-overlap; with only --json "
                 "given, no folder is written)");
}

int run(Arguments& a) {
  if (a.max_queries_given && a.overlap.max_queries < 1) {
    throw InputError("--max-queries", "must be at least 1, got " + std::to_string(a.overlap.max_queries));
  }
  check_overlap_options(a.overlap);
  if (a.out_dir.empty() && a.json_path.empty()) a.out_dir = "indexcache-overlap";
  if (!a.out_dir.empty()) check_output_directory(a.out_dir, "--out-dir");
  if (!a.json_path.empty()) check_output_file(a.json_path);  // also "-" (stdout), a FIFO or a device
  if (!a.layers_text.empty()) {
    // Only config.json is read here, so a bad range fails before the weights are loaded.
    std::string model_dir = locate_session_model(a.session.model_dir).directory;  // a directory or a hub id
    apply_layer_range(a.layers_text, load_model_config(model_dir).num_hidden_layers, a.overlap);
  }

  Progress progress(a.quiet);
  Session session = open_session(a.session);
  OverlapReport report = measure_overlap(*session.model, session.data, a.overlap, progress);
  nlohmann::ordered_json json = overlap_json(report, session_json(session), !a.out_dir.empty());
  std::string html;
  if (!a.out_dir.empty()) html = write_overlap_report(a.out_dir, report, json);
  if (!a.json_path.empty()) write_output_file(a.json_path, json.dump(1) + "\n");
  progress.finish();
  // With `--json -` the JSON is stdout, so the summary goes to stderr.
  std::FILE* summary = a.json_path == "-" ? stderr : stdout;
  std::fprintf(summary, "%s", overlap_summary(report).c_str());
  if (!html.empty()) std::fprintf(summary, "report: %s\n", html.c_str());
  if (!a.json_path.empty() && a.json_path != "-") std::fprintf(summary, "json: %s\n", a.json_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments arguments;
  ToolCommandLine tool{"indexcache-overlap", kDescription, kOverlapTool, &arguments,
                       [&](CLI::App& app) { add_options(app, arguments); },
                       [&](const CLI::App& app) {
                         arguments.max_queries_given = app.count("--max-queries") > 0;
                         return run(arguments);
                       }};
  return run_command_line(tool, argc, argv);
}
