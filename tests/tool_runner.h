// Runs the real command-line tools from tests: exit status, stdout and stderr captured, so
// tests exercise the same code paths as users (argument parsing, error handling, exit codes).
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "file_system.h"

namespace indexcache::testing {

struct ToolResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
  // Lines of stderr (without the trailing newline).
  int error_lines() const {
    int lines = 0;
    for (char c : err) lines += c == '\n';
    return lines;
  }
};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The shell words that run `tool` (indexcache-calibrate / indexcache-overlap) with `arguments`.
inline std::string tool_command(const std::string& tool, const std::vector<std::string>& arguments) {
  std::string command = shell_quote(std::string(INDEXCACHE_TOOLS_DIR) + "/" + tool);
  for (const std::string& argument : arguments) command += " " + shell_quote(argument);
  return command;
}

// Runs `tool` with `arguments` through /bin/sh, optionally prefixed by `shell_prefix`
// (e.g. "ulimit -f 1;").
inline ToolResult run_tool(const std::string& tool, const std::vector<std::string>& arguments,
                           const std::string& shell_prefix = "") {
  static int counter = 0;
  std::string base = "/tmp/indexcache-tool-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::string command = shell_prefix + " " + tool_command(tool, arguments);
  command += " --quiet >" + base + ".out 2>" + base + ".err";
  int raw = std::system(("(" + command + ")").c_str());
  ToolResult result;
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  result.out = read_text(base + ".out");
  result.err = read_text(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return result;
}

// Starts `tool` in the background, quiet, output discarded, with `environment` ("NAME=value ...")
// set; returns its pid (the shell execs the tool, so the pid is the tool's own), -1 if fork failed.
inline pid_t start_tool(const std::string& tool, const std::vector<std::string>& arguments,
                        const std::string& environment = "") {
  const std::string command = environment + " exec " + tool_command(tool, arguments) + " --quiet >/dev/null 2>&1";
  const pid_t child = ::fork();
  if (child == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return child;
}

}  // namespace indexcache::testing
