#include "options.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <type_traits>

#include "error.h"
#include "tool_main.h"

namespace indexcache {
namespace {

using AddOption = std::function<CLI::Option*(CLI::App&, const SharedOption&, CommonArguments&)>;

// Wide enough for the longest shared "--name HINT=default" (CLI11 2.4 prints "--name HINT [default]"),
// and the same in every tool, so a shared option's help line is the same text in each.
constexpr std::size_t kHelpColumnWidth = 36;

// Adds the option stored in the field that `field_of` picks: a flag for a bool, otherwise an
// option taking a value, which CLI11 converts and checks by the field's type.
template <typename FieldOf>
AddOption stores_into(FieldOf field_of) {
  return [field_of](CLI::App& app, const SharedOption& option, CommonArguments& arguments) -> CLI::Option* {
    auto& field = field_of(arguments);
    if constexpr (std::is_same_v<std::decay_t<decltype(field)>, bool>) {
      return app.add_flag(option.name, field, option.help);
    } else {
      return app.add_option(option.name, field, option.help);
    }
  };
}

template <typename Field>
AddOption session_field(Field SessionOptions::*member) {
  return stores_into([member](CommonArguments& arguments) -> Field& { return arguments.session.*member; });
}

template <typename Field>
AddOption common_field(Field CommonArguments::*member) {
  return stores_into([member](CommonArguments& arguments) -> Field& { return arguments.*member; });
}

// `add` for a count that must be at least 1: 0 and negative values are command-line errors
// (exit 2), never a silent "use the default".
AddOption positive(AddOption add) {
  return [add](CLI::App& app, const SharedOption& option, CommonArguments& arguments) -> CLI::Option* {
    return add(app, option, arguments)->check([](const std::string& text) -> std::string {
      long long value = 0;
      try {
        value = std::stoll(text);
      } catch (const std::exception&) {
        return "";  // not a number: the option's own conversion reports it
      }
      if (value < 0) return text + " is negative; give a count of at least 1";
      if (value == 0) return "0 is not a count; give at least 1 (leave the option out for the default)";
      return "";
    });
  };
}

// Defaults that are a plain value come from the field itself (shows_default), so the help cannot
// state another value than the code uses; defaults that depend on something else are in the text.
std::vector<SharedOption> build_table() {
  return {
      {"--model", "DIR",
       "Checkpoint directory, or a Hugging Face hub id org/name[@revision] found offline in the local cache "
       "($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; a local path of that name wins) "
       "(default: the bundled tiny DSA model)",
       kEveryTool, false,
       session_field(&SessionOptions::model_dir)},
      {"--data", "SPEC",
       "Calibration data: .jsonl ({\"text\"} or {\"input_ids\"} records) or .txt files, bundled set names, or one "
       "YAML mix (default: the bundled mix configs/mix-default.yaml); each file or set is a domain",
       kEveryTool, false, session_field(&SessionOptions::data_specs)},
      {"--seq-len", "N", "Tokens per packed sequence for text data (default: the mix's seq_len, else 1024)", kEveryTool,
       false, positive(session_field(&SessionOptions::seq_len))},
      {"--num-samples", "N",
       "Number of calibration sequences (default: the mix's num_samples, else all the data gives)", kEveryTool, false,
       positive(session_field(&SessionOptions::num_samples))},
      {"--seed", "N", "Sampling seed; 0 takes the mix's seed when the mix gives one", kEveryTool, true,
       session_field(&SessionOptions::seed)},
      {"--split", "NAME", "Split of the bundled data sets: calibration or heldout", kEveryTool, true,
       session_field(&SessionOptions::split)},
      {"--device", "DEVICE", "cpu, cuda or cuda:N (--devices, when given, replaces it)", kEveryTool, true,
       session_field(&SessionOptions::device)},
      {"--devices", "LIST",
       "Place contiguous layer ranges on several GPUs of this host, e.g. cuda:0,cuda:1 (balanced by weight bytes)",
       kEveryTool, false, session_field(&SessionOptions::devices)},
      {"--offload", "",
       "Stream layer weights from host memory (the next layer loads on a side stream while the current one runs) "
       "instead of keeping them on the device. indexcache-calibrate then runs each layer for many forwards at once "
       "(up to 25% of the GPU's free memory of activations), so a layer is loaded once per search step; "
       "indexcache-overlap runs one sequence at a time, so a layer is loaded once per sequence",
       kEveryTool, false, session_field(&SessionOptions::offload)},
      {"--attention", "PATH",
       "Attention path: auto (sparse when tokens > 4 x index_topk, else fused for bf16 on a GPU, else eager), eager "
       "(transformers' computation), sparse (gathers only the selected keys) or fused (eager's masked attention in "
       "PyTorch's fused kernel; libtorch >= 2.0)",
       kEveryTool, true, session_field(&SessionOptions::attention)},
      {"--dtype", "TYPE", "Compute dtype: fp32 or bf16 (default: fp32 on cpu, bf16 on cuda)", kEveryTool, false,
       session_field(&SessionOptions::dtype)},
      {"--indexer-precision", "NAME",
       "Indexer q/k precision: model (as transformers: the compute dtype), fp32, bf16, or fp8 (e4m3 with per-token "
       "scales, as serving engines use)",
       kEveryTool, true, session_field(&SessionOptions::indexer_precision)},
      {"--json", "FILE",
       "Also write machine-readable results (JSON) to this file (for indexcache-overlap: overlap.json's contents); "
       "'-' is stdout (the summary then goes to stderr), a FIFO or device is written directly",
       kEveryTool, false, common_field(&CommonArguments::json_path)},
      {"--quiet", "", "No progress on stderr", kEveryTool, false, common_field(&CommonArguments::quiet)},
      {"--dist-timeout", "SECONDS",
       "Distributed search (started by torchrun or srun, docs/SCALING.md): how long a rank waits for the others at "
       "one step's exchange before it names the missing ranks and exits 2",
       kCalibrateTool, true, positive(common_field(&CommonArguments::dist_timeout))},
      {"--dist-backend", "NAME",
       "Distributed search: backend of the candidate exchange: auto (nccl when the search runs on a GPU, else gloo), "
       "gloo or nccl",
       kCalibrateTool, true, common_field(&CommonArguments::dist_backend)},
  };
}

void add_shared_option(CLI::App& app, const SharedOption& option, CommonArguments& arguments) {
  CLI::Option* added = option.add(app, option, arguments);
  if (!option.value_hint.empty()) added->type_name(option.value_hint);
  if (option.shows_default) added->capture_default_str();
}

// Returns false when --help was asked for: the help is printed to stdout and the tool is done.
bool parse_arguments(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {  // a ParseError too, so it is caught first
    std::printf("%s", app.help().c_str());
    return false;
  } catch (const CLI::ParseError& error) {
    throw InputError("command line", first_line(error.what()));
  }
  return true;
}

}  // namespace

const std::vector<SharedOption>& shared_options() {
  static const std::vector<SharedOption> table = build_table();
  return table;
}

void add_shared_options(CLI::App& app, ToolKind tool, CommonArguments& arguments) {
  for (const SharedOption& option : shared_options()) {
    if (option.tools & tool) add_shared_option(app, option, arguments);
  }
}

int run_command_line(const ToolCommandLine& tool, int argc, char** argv) {
  return run_tool(tool.name, [&]() -> int {
    CLI::App app{tool.description};
    app.get_formatter()->column_width(kHelpColumnWidth);
    add_shared_options(app, tool.kind, *tool.common);
    tool.add_options(app);
    if (!parse_arguments(app, argc, argv)) return 0;
    return tool.run(app);
  });
}

}  // namespace indexcache
