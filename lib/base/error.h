// Errors that the tools report to the user as one line with exit status 2.
#pragma once

#include <stdexcept>
#include <string>

namespace indexcache {

// Bad input: a file, a field in it, or a command-line value. `where` names the file (and the
// field, when there is one); the message says what is wrong. Tools print "error: <what()>"
// and exit with status 2 without writing partial output.
// The message is always one line: control characters (which file contents quoted in a
// message, or a parser's own message, may hold) become spaces.
class InputError : public std::runtime_error {
 public:
  InputError(const std::string& where, const std::string& message)
      : std::runtime_error(one_line(where.empty() ? message : where + ": " + message)) {}

 private:
  static std::string one_line(std::string text) {
    for (char& character : text) {
      if (static_cast<unsigned char>(character) < 0x20 || character == 0x7f) character = ' ';
    }
    return text;
  }
};

// The exit status for bad input, shared by every tool.
constexpr int kExitBadInput = 2;

}  // namespace indexcache
