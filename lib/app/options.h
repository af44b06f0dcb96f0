// The command line every tool shares: one table of the options that open a session (model, data,
// device, precision) plus --json and --quiet, each with one help text, so the tools cannot drift
// apart in spelling, defaults or help. A tool asks for the options of its kind, adds its own, and
// leaves parsing, --help and command-line errors to run_command_line.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "session.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace indexcache {

// Which tools offer an option: a bit set, so an option can belong to several.
enum ToolKind : unsigned {
  kCalibrateTool = 1u << 0,
  kOverlapTool = 1u << 1,
  kEveryTool = kCalibrateTool | kOverlapTool,
};

// What the shared options fill in.
struct CommonArguments {
  SessionOptions session;
  std::string json_path;  // --json: empty writes no JSON file
  bool quiet = false;     // --quiet
  // Distributed search (indexcache-calibrate under torchrun/srun, lib/search/distributed.h): how
  // long a rank waits for the others at one exchange, and the exchange's backend.
  int64_t dist_timeout = 1800;       // --dist-timeout, seconds
  std::string dist_backend = "auto";  // --dist-backend: auto, gloo or nccl
};

// One shared option: how it is spelled and shown, which tools offer it, and how it is added to a
// CLI11 app so that parsing stores its value into CommonArguments.
struct SharedOption {
  std::string name;        // "--seed"
  std::string value_hint;  // "N" in "--seed N"; empty for a flag
  std::string help;        // the one help text both tools show
  unsigned tools = kEveryTool;
  bool shows_default = false;  // help prints the field's initial value ("--seed N=0")
  std::function<CLI::Option*(CLI::App&, const SharedOption&, CommonArguments&)> add;
};

// The whole table, in --help order.
const std::vector<SharedOption>& shared_options();

// Adds to `app` the shared options that `tool` offers, bound to `arguments`.
void add_shared_options(CLI::App& app, ToolKind tool, CommonArguments& arguments);

// Everything a tool's main() passes in besides argc/argv.
struct ToolCommandLine {
  std::string name;         // "indexcache-overlap": names the tool in internal-error messages
  std::string description;  // --help text above the options
  ToolKind kind = kEveryTool;
  CommonArguments* common = nullptr;              // where the shared options go
  std::function<void(CLI::App&)> add_options;     // the tool's own options
  std::function<int(const CLI::App&)> run;        // after a successful parse; returns the exit status
};

// A tool's whole main(): builds the app (shared options first, then the tool's), parses argv and
// runs the tool inside run_tool (tool_main.h). --help prints the help to stdout and exits 0; a
// parse error is InputError("command line", first line of CLI11's message), exit 2.
int run_command_line(const ToolCommandLine& tool, int argc, char** argv);

}  // namespace indexcache
