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

// Runs `tool` (indexcache-calibrate / indexcache-overlap) with `arguments` through /bin/sh,
// optionally prefixed by `shell_prefix` (e.g. "ulimit -f 1;").
inline ToolResult run_tool(const std::string& tool, const std::vector<std::string>& arguments,
                           const std::string& shell_prefix = "") {
  static int counter = 0;
  std::string base = "/tmp/indexcache-tool-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::string command = shell_prefix + " " + shell_quote(std::string(INDEXCACHE_TOOLS_DIR) + "/" + tool);
  for (const std::string& argument : arguments) command += " " + shell_quote(argument);
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

}  // namespace indexcache::testing
