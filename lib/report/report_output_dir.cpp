#include "report_output_dir.h"

#include "atomic_file.h"
#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

// The folder itself when it exists, else its nearest existing ancestor.
std::string nearest_existing(const std::string& directory) {
  std::string current = directory.empty() ? "." : directory;
  while (!path_exists(current)) {
    std::string parent = parent_directory(current);
    if (parent == current) break;
    current = parent;
  }
  return current;
}

}  // namespace

void check_output_directory(const std::string& directory, const std::string& option) {
  if (directory.empty()) throw InputError(option, "is empty: give a folder for the report");
  const std::string existing = nearest_existing(directory);
  if (!is_directory(existing)) {
    throw InputError(option, directory + " cannot be created: " + existing + " is not a folder");
  }
  try {
    // A probe file in the folder (or the parent it will be created in) tells for sure; the
    // permission bits do not (root, read-only mounts).
    check_writable(join_path(existing, ".indexcache-report-probe"));
  } catch (const InputError&) {
    throw InputError(option, directory + " is not writable (" + existing + " does not accept new files)");
  }
}

void create_output_directory(const std::string& directory, const std::string& option) {
  if (!make_directories(directory) || !is_directory(directory)) {
    throw InputError(option, directory + " cannot be created");
  }
}

}  // namespace indexcache
