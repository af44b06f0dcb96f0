// indexcache-calibrate: finds which layers of a DSA model keep their lightning indexer (greedy
// search on calibration data) and writes the layer plan; also evaluates given patterns
// (--eval), checks a committed plan (--check), validates (--validate) and exports (--export).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <sys/stat.h>

#include "atomic_file.h"
#include "calibrate_run.h"
#include "device.h"
#include "distributed.h"
#include "error.h"
#include "options.h"
#include "pattern_evaluation.h"
#include "progress.h"
#include "search_report.h"
#include "report_output_dir.h"
#include "search_journal.h"
#include "session.h"
#include "tool_main.h"

using namespace indexcache;

namespace {

const char* kDescription =
    "indexcache-calibrate: choose which layers of a DeepSeek-Sparse-Attention model (DeepSeek-V3.2, GLM-5)\n"
    "keep their lightning indexer. Runs the IndexCache greedy search on calibration data and writes a\n"
    "layer plan (YAML) with the F/S pattern and the exact flags for vLLM, SGLang and transformers.\n\n"
    "Examples:\n"
    "  indexcache-calibrate --keep 0.25 --out plan.yaml                       # bundled tiny model + data\n"
    "  indexcache-calibrate --model ./DeepSeek-V3.2 --data code legal --keep 0.25 --device cuda --out plan.yaml\n"
    "  indexcache-calibrate --model DIR --data my.jsonl --eval FSFSFS... --json losses.json\n"
    "  indexcache-calibrate --check plan.yaml          # CI: regenerate and fail (exit 1) if the pattern drifted\n"
    "  indexcache-calibrate --validate plan.yaml --model DIR --pp-stages 0,31\n"
    "  indexcache-calibrate --plan plan.yaml --export vllm\n\n"
    "A search also writes a report next to the plan (<plan stem>-report/report.html, self-contained, plus SVGs and\n"
    "report.json): loss along the search, the pattern, per-domain loss on held-out data, projected indexer cost.\n"
    "With no --model/--data the bundled tiny DSA model and the bundled mixed calibration set are used.\n"
    "Exit status: 0 done, 1 --check found drift or --validate found a model config.json whose own pattern fields\n"
    "would make an engine run another pattern, 2 bad input (one-line message, nothing written), 3 the search's plan\n"
    "was written but a later output (--json, --export-out, the report) was not (disk full, say; message says which).\n"
    "Output files: --json and --export-out also take '-' (stdout), a FIFO or a device; --out must be a regular file (or a link to one).\n";

// The shared options (model, data, device, --json, --quiet: options.h) and the calibration's own.
struct Arguments : CommonArguments {
  SearchSettings search;
  std::vector<std::string> eval_patterns;
  std::string out_path = "indexcache-plan.yaml";
  std::string pp_stages_text;
  std::string check_path, validate_path, plan_path;
  std::string export_format, export_out;
  bool resume = false;
  bool no_prefix_reuse = false;
  std::string report_dir;
  bool no_report = false;
};

void add_options(CLI::App& app, Arguments& a) {
  app.add_option("--prefix-cache-gb", a.search.prefix_cache_gib,
                 "Device memory for the search's cached hidden states, in GiB; the rest goes to pinned host memory "
                 "(default: 30% of the GPU's free memory; unlimited on the CPU)");
  app.add_option("--keep", a.search.keep_fraction, "Fraction of indexers to keep: N = max(1, round(FRACTION x the model's indexer layers))");
  app.add_option("--keep-layers", a.search.keep_layers, "Number of indexers (F layers) to keep");
  app.add_option("--max-loss-increase", a.search.max_loss_increase,
                 "Also stop before the loss would exceed baseline x (1 + R), e.g. 0.01");
  app.add_option("--pp-stages", a.pp_stages_text,
                 "First layer of each pipeline stage, e.g. 0,31: kept F by the search, checked by --validate");
  app.add_option("--out", a.out_path, "Layer plan to write (default: indexcache-plan.yaml); journal: <out>.journal; while a search runs it "
                 "holds <out>.lock, and another search on the same --out exits 2");
  app.add_flag("--resume", a.resume, "Continue an interrupted search from <out>.journal");
  app.add_option("--eval", a.eval_patterns, "Evaluate these F/S patterns (and the all-F baseline) instead of searching");
  app.add_option("--check", a.check_path,
                 "Regenerate PLAN with its recorded settings (--model/--data replace the plan's; data files are matched by "
                 "SHA-256, not path); exit 1 with a diff if the pattern, the data, config.json or the indexer weights "
                 "changed, or baseline/final loss moved by more than 1e-4 relative (fp32 plan) or 1e-3 (bf16) (docs/PLAN.md)");
  app.add_option("--validate", a.validate_path,
                 "Check a plan file, every derived field against its pattern (with --model: against config.json and the "
                 "indexer weights)");
  app.add_option("--plan", a.plan_path, "An existing plan, for --export");
  app.add_option("--export", a.export_format, "Print the plan as vllm | sglang override JSON, or hf-config (the model's config.json with the pattern as "
                 "indexer_types and index_topk_pattern; index_topk_freq/offset removed when they say otherwise)");
  app.add_option("--export-out", a.export_out,
                 "Write the --export output to this file instead of stdout ('-': stdout; a FIFO or device is written to directly)");
  app.add_flag("--no-prefix-reuse", a.no_prefix_reuse, "Evaluate every candidate from layer 0 (for comparison)");
  app.add_option("--report-dir", a.report_dir,
                 "Folder for the search report: report.html, SVGs, report.json (default: <plan stem>-report next to "
                 "the plan)");
  app.add_flag("--no-report", a.no_report, "Write no search report (it costs two forwards over the held-out data)");
}

void write_output(const std::string& path, const std::string& contents) {
  if (path.empty()) {
    std::fputs(contents.c_str(), stdout);
  } else {
    write_output_file(path, contents);  // "-", a device or a FIFO are written directly
  }
}

// Where the human-readable summary goes: stderr when `--json -` puts the JSON on stdout.
std::FILE* summary_stream(const Arguments& a) { return a.json_path == "-" ? stderr : stdout; }

// Exit status of a search whose plan was written but whose later outputs (--json, export,
// report) were not: neither success nor bad input (docs/ROBUSTNESS.md, "Crash safety").
constexpr int kExitPlanWrittenOutputNot = 3;

// The export, then what it changed besides the pattern or where it has no effect (stderr).
void write_export(const std::string& path, const ConfigExport& exported) {
  write_output(path, exported.text);
  for (const std::string& note : exported.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
}

int run_eval(Arguments& a) {
  if (!a.json_path.empty()) check_output_file(a.json_path);
  Progress progress(a.quiet);
  Session session = open_session(a.session);
  std::vector<LayerPattern> patterns;
  for (const std::string& text : a.eval_patterns) {
    // In the model family's form; F where the model has no indexer is refused (model_family.h).
    patterns.push_back(session.model->family().parse_pattern(text, "--eval"));
  }
  EvaluationReport report = evaluate_patterns(session, patterns, progress);
  if (!a.json_path.empty()) write_output_file(a.json_path, evaluation_json(report, session).dump(1) + "\n");
  std::fprintf(summary_stream(a), "%s", evaluation_table(report).c_str());
  return 0;
}

// What a search writes after its plan, in this order: --json, the export, the report (whose
// extra evaluation is the slow part). `output` names the one being written, for the message
// when it fails. Returns report.html's path ("" with --no-report).
std::string write_after_plan(const Arguments& a, Session& session, const LayerPlan& plan, const nlohmann::json& details,
                             const std::string& report_dir, Progress& progress, std::string& output) {
  output = "the --json file";
  if (!a.json_path.empty()) {
    nlohmann::ordered_json result = session_json(session);
    result["plan"] = a.out_path;
    result["pattern"] = plan.pattern.text();
    result["baseline_loss"] = plan.baseline_loss;
    result["final_loss"] = plan.final_loss;
    result["search"] = details;
    write_output_file(a.json_path, result.dump(1) + "\n");
  }
  output = "the export";
  if (!a.export_format.empty()) write_export(a.export_out, export_plan(plan, a.export_format, session.model_dir));
  output = "the report";
  if (report_dir.empty()) return "";
  return write_search_report(report_dir, build_search_report(session, a.session, plan, a.out_path, progress));
}

// Under torchrun or srun (WORLD_SIZE > 1): a bare --device cuda becomes this host's GPU LOCAL_RANK
// (modulo the GPUs this process sees), then the rank joins the others (distributed.h).
std::unique_ptr<RankGroup> join_ranks(Arguments& a, const RankEnvironment& ranks) {
  if (!ranks.distributed()) return nullptr;
  if (a.session.devices.empty()) a.session.device = rank_device(a.session.device, ranks.local_rank, visible_gpus());
  const std::string first =
      a.session.devices.empty() ? a.session.device : a.session.devices.substr(0, a.session.devices.find(','));
  return RankGroup::join(ranks, {std::chrono::seconds(a.dist_timeout), a.dist_backend}, parse_device(first));
}

int run_search_command(Arguments& a) {
  // Several ranks: rank 0 checks, locks and writes every output; the others compute and write nothing.
  const RankEnvironment ranks = read_rank_environment();
  const bool writer = ranks.rank == 0;
  // Checked before any model work: an empty name would fail only at the very end.
  if (a.out_path.empty()) throw InputError("--out", "is empty: give the layer plan's file name");
  if (a.out_path == "-") {
    throw InputError("--out", "'-' (standard output) cannot hold a layer plan: its journal and report are written "
                              "next to it; give a file name (--export prints the serving settings)");
  }
  const std::string report_dir = a.no_report ? "" : search_report_dir(a.out_path, a.report_dir);
  if (writer) {
    check_writable(a.out_path);  // a regular file, a new name or a link to one; never a device (atomic_file.h)
    check_writable(SearchJournal::path_for(a.out_path));
    if (!a.json_path.empty()) check_output_file(a.json_path);
    if (!a.export_out.empty()) check_output_file(a.export_out);
    if (!report_dir.empty()) check_output_directory(report_dir, "--report-dir");
  }
  // One run at a time per plan and journal, decided before the model loads.
  const RunLock lock = writer ? lock_search_output(a.out_path, a.resume) : RunLock();
  Progress progress(a.quiet || !writer);
  const std::unique_ptr<RankGroup> group = join_ranks(a, ranks);
  a.search.ranks = group.get();
  Session session = open_session(a.session);
  if (!a.pp_stages_text.empty()) a.search.pp_stages = parse_pp_stages(a.pp_stages_text, session.config.num_hidden_layers);
  // Reject bad --keep / --pp-stages before any work (counts are of the model's indexers).
  resolve_target_kept(a.search, session.model->family().indexer_count());
  session.model->family().stage_start_positions(a.search.pp_stages);
  nlohmann::json details;
  const std::string journal = SearchJournal::path_for(a.out_path);
  LayerPlan plan = run_search(session, a.session, a.search, journal, a.resume, progress, &details);
  if (!writer) return 0;
  record_paths_relative_to(plan, a.out_path);  // a portable plan: paths below its folder made relative
  write_file_atomically(a.out_path, plan_to_yaml(plan));
  SearchJournal(journal, {}).remove();
  std::string output, report_path;
  try {
    report_path = write_after_plan(a, session, plan, details, report_dir, progress, output);
  } catch (const std::exception& error) {
    // The plan is on disk: say so, and exit 3 rather than 2 (which promises nothing was written).
    progress.finish();
    std::fprintf(stderr, "error: %s WAS written; %s was NOT: %s%s\n", a.out_path.c_str(), output.c_str(),
                 first_line(error.what()).c_str(),
                 output == "the report" ? " (no partial report folder is left; an older report is unchanged)" : "");
    return kExitPlanWrittenOutputNot;
  }
  progress.finish();
  std::fprintf(summary_stream(a), "%splan      %s\n", plan_summary(plan).c_str(), a.out_path.c_str());
  if (!report_path.empty()) std::fprintf(summary_stream(a), "report    %s\n", report_path.c_str());
  return 0;
}

int run_check(Arguments& a) {
  Progress progress(a.quiet);
  // --model and --data, when given, replace what the plan recorded (data is matched by SHA-256).
  const PlanCheck check = check_plan({a.check_path, a.session.model_dir, a.session.data_specs, a.session.device}, progress);
  progress.finish();
  for (const std::string& note : check.notes) std::printf("note: %s\n", note.c_str());
  const LayerPlan& recorded = check.recorded;
  const LayerPlan& regenerated = check.regenerated;
  if (check.up_to_date()) {
    std::printf("up to date: %s (%s, loss %.6f now, %.6f in the plan)\n", a.check_path.c_str(), recorded.pattern.text().c_str(),
                regenerated.final_loss, recorded.final_loss);
    return 0;
  }
  std::printf("drift: %s no longer matches a fresh search with its settings\n", a.check_path.c_str());
  if (check.pattern_drifted()) std::printf("%s", pattern_diff(recorded.pattern, regenerated.pattern).c_str());
  for (const std::string& line : check.drift) std::printf("  %s\n", line.c_str());
  std::printf("  loss: plan %.6f, regenerated %.6f; regenerate with the plan's settings to update it\n",
              recorded.final_loss, regenerated.final_loss);
  return 1;
}

int run_validate(Arguments& a) {
  std::vector<int64_t> stages;
  if (!a.pp_stages_text.empty()) {
    LayerPlan plan = read_plan(a.validate_path);
    stages = parse_pp_stages(a.pp_stages_text, plan.num_hidden_layers);
  }
  Validation validation = validate_plan(a.validate_path, a.session.model_dir, stages);
  std::printf("%s\n", validation.summary.c_str());
  for (const std::string& note : validation.notes) std::printf("note: %s\n", note.c_str());
  for (const std::string& line : validation.warnings) std::printf("%s%s\n", line.rfind("  ", 0) == 0 ? "" : "warning: ", line.c_str());
  return validation.warnings.empty() ? 0 : 1;
}

int run_export(Arguments& a) {
  if (!a.export_out.empty()) check_output_file(a.export_out);
  LayerPlan plan = read_plan(a.plan_path);
  // hf-config reads the model's config.json: --model (a directory or hub id), else the plan's model.
  std::string model_dir;
  if (!a.session.model_dir.empty()) {
    model_dir = locate_session_model(a.session.model_dir).directory;
  } else if (a.export_format == "hf-config") {
    model_dir = plan.model_hub ? locate_hub_model(plan.model_hub->id, plan.model_hub->revision).directory
                               : path_from_plan(plan.model_path, a.plan_path);
  }
  write_export(a.export_out, export_plan(plan, a.export_format, model_dir));
  return 0;
}

// Exactly one mode per invocation; mixing them is a command-line error.
int dispatch(Arguments& a) {
  int modes = !a.eval_patterns.empty() + !a.check_path.empty() + !a.validate_path.empty() + !a.plan_path.empty();
  if (modes > 1) throw InputError("command line", "--eval, --check, --validate and --plan are separate modes; give one");
  if (!a.plan_path.empty() && a.export_format.empty()) throw InputError("--plan", "is only used with --export");
  if (!a.export_out.empty() && a.export_format.empty()) throw InputError("--export-out", "needs --export FORMAT");
  if (modes == 1 && (a.search.keep_fraction || a.search.keep_layers) && a.plan_path.empty()) {
    throw InputError("--keep/--keep-layers", "belong to the search, not to --eval/--check/--validate");
  }
  if (modes == 1 && (!a.report_dir.empty() || a.no_report)) {
    throw InputError("--report-dir/--no-report", "belong to the search, not to --eval/--check/--validate/--plan");
  }
  if (a.no_report && !a.report_dir.empty()) throw InputError("--no-report", "contradicts --report-dir; give one");
  if (a.json_path == "-" && !a.export_format.empty() && (a.export_out.empty() || a.export_out == "-")) {
    throw InputError("--json", "'-' and the export would both go to standard output; give one of them a file");
  }
  if (!a.eval_patterns.empty()) return run_eval(a);
  if (!a.check_path.empty()) return run_check(a);
  if (!a.validate_path.empty()) return run_validate(a);
  if (!a.plan_path.empty()) return run_export(a);
  if (!a.export_format.empty() && !a.search.keep_fraction && !a.search.keep_layers) {
    throw InputError("--export", "needs a plan: give --plan PLAN.yaml, or run a search (--keep) in the same call");
  }
  return run_search_command(a);
}

}  // namespace

int main(int argc, char** argv) {
  Arguments arguments;
  ToolCommandLine tool{"indexcache-calibrate", kDescription, kCalibrateTool, &arguments,
                       [&](CLI::App& app) { add_options(app, arguments); },
                       [&](const CLI::App&) {
                         arguments.search.prefix_reuse = !arguments.no_prefix_reuse;
                         return dispatch(arguments);
                       }};
  return run_command_line(tool, argc, argv);
}
