// Errors that the tools report to the user as one line with exit status 2.
#pragma once

#include <stdexcept>
#include <string>

namespace indexcache {

// `text` with control characters turned into spaces. Messages are one line, and names and
// parser messages quoted in them come from files (a JSON "\n" escape in a tensor name, say).
inline std::string one_line(std::string text) {
  for (char& character : text) {
    if (static_cast<unsigned char>(character) < 0x20 || character == 0x7f) character = ' ';
  }
  return text;
}

// A JSON parser's message (nlohmann::json) without its "[json.exception...]" tag, in printable
// ASCII (its "last read" excerpt may hold any bytes of the file) and at most about 200 bytes.
inline std::string json_error_text(const std::exception& error) {
  std::string text = error.what();
  const std::size_t tag_end = text.find("] ");
  if (text.rfind("[json.exception.", 0) == 0 && tag_end != std::string::npos) text.erase(0, tag_end + 2);
  for (char& character : text) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte < 0x20 || byte >= 0x7f) character = '?';
  }
  constexpr std::size_t kLongest = 200;
  if (text.size() > kLongest) text = text.substr(0, kLongest) + "...";
  return text;
}

// Bad input: a file, a field in it, or a command-line value. `where` names the file (and the
// field, when there is one); the message says what is wrong. Tools print "error: <what()>"
// and exit with status 2 without writing partial output.
// The message is always one line: control characters (which file contents quoted in a
// message, or a parser's own message, may hold) become spaces.
class InputError : public std::runtime_error {
 public:
  InputError(const std::string& where, const std::string& message)
      : std::runtime_error(one_line(where.empty() ? message : where + ": " + message)) {}
};

// The exit status for bad input, shared by every tool.
constexpr int kExitBadInput = 2;

}  // namespace indexcache
