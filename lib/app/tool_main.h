// The shared outer layer of the command-line tools: turns exceptions into one-line messages and
// exit statuses (2 for bad input, 1 for internal errors), and sets up signal handling so that
// a write past a file-size limit fails with an error instead of killing the process.
#pragma once

#include <functional>
#include <string>

namespace indexcache {

// Runs `body` and returns the process exit status.
int run_tool(const std::string& tool_name, const std::function<int()>& body);

// The first line of an exception message (libtorch appends multi-line backtraces).
std::string first_line(const std::string& text);

}  // namespace indexcache
