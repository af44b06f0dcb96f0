// Catching InputError in tests without Catch or libtorch (the wings' own test binaries use it too).
#pragma once

#include <optional>
#include <string>

#include "error.h"

namespace indexcache::test_support {

// The message of the indexcache::InputError that `action` throws, or nullopt when it returns
// normally. Other exceptions pass through. Catch-free, so any test file can wrap it.
template <typename Action>
std::optional<std::string> input_error_message(Action&& action) {
  try {
    action();
  } catch (const InputError& error) {
    return std::string(error.what());
  }
  return std::nullopt;
}

}  // namespace indexcache::test_support
