#include "report_output_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "atomic_file.h"
#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

// The name of the temporary folder made inside a destination that holds other files.
constexpr const char* kInsideName = ".indexcache-report";

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

// "out" from "out/" (a trailing slash would make "out/.tmp..." of the sibling names).
std::string without_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// mkdtemp of `prefix` + "XXXXXX"; empty with errno set on failure.
std::string make_directory_like(const std::string& prefix) {
  std::string pattern = prefix + "XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

}  // namespace

void check_output_directory(const std::string& directory, const std::string& option) {
  if (directory.empty()) throw InputError(option, "is empty: give a folder for the report");
  const std::string existing = nearest_existing(follow_symlinks(without_trailing_slashes(directory)));
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

ReportFolder::ReportFolder(std::string destination, std::string option, IsReportFile is_report_file)
    : destination_(std::move(destination)), option_(std::move(option)), is_report_file_(std::move(is_report_file)) {
  if (destination_.empty()) throw InputError(option_, "is empty: give a folder for the report");
  target_ = follow_symlinks(without_trailing_slashes(destination_));
  if (path_exists(target_) && !is_directory(target_)) {
    throw InputError(option_, destination_ + " is not a folder");
  }
  make_temporary_folder();
}

ReportFolder::~ReportFolder() {
  if (committed_) return;
  if (!temporary_.empty()) remove_tree(temporary_);
  // Parent folders made for a destination that never came: innermost first, only if empty.
  for (auto folder = created_.rbegin(); folder != created_.rend(); ++folder) ::rmdir(folder->c_str());
}

void ReportFolder::make_temporary_folder() {
  const std::string name = file_name(target_);
  const bool exists = is_directory(target_);
  bool only_report_files = name != "." && name != ".." && !name.empty();
  if (exists) {
    remove_stale_temporaries(join_path(target_, kInsideName));
    for (const std::string& entry : list_directory(target_)) {
      if (!is_regular_file(join_path(target_, entry)) || !is_report_file_(entry)) only_report_files = false;
    }
  } else {
    // mkdir -p of the parents, remembering what was made so that a failure can undo it.
    std::vector<std::string> missing;
    for (std::string parent = parent_directory(target_); !path_exists(parent); parent = parent_directory(parent)) {
      missing.insert(missing.begin(), parent);
      if (parent_directory(parent) == parent) break;
    }
    for (const std::string& folder : missing) {
      if (::mkdir(folder.c_str(), 0755) != 0 && !is_directory(folder)) {
        throw InputError(option_, destination_ + " cannot be created: " + folder + ": " + std::strerror(errno));
      }
      created_.push_back(folder);
    }
  }
  const std::string pid = std::to_string(::getpid());
  if (only_report_files) {
    remove_stale_temporaries(target_);
    temporary_ = make_directory_like(target_ + ".tmp." + pid + ".");
    if (!temporary_.empty()) {
      ::chmod(temporary_.c_str(), 0755);  // mkdtemp's 0700 would become the report folder's mode
      return;
    }
    if (!exists) {
      throw InputError(option_, destination_ + " cannot be created: " + parent_directory(target_) + ": " +
                                    std::strerror(errno));
    }
  }
  // The destination exists and holds other files (or its parent takes no new folder).
  inside_ = true;
  temporary_ = make_directory_like(join_path(target_, std::string(kInsideName) + ".tmp." + pid + "."));
  if (temporary_.empty()) {
    throw InputError(option_, destination_ + " is not writable: " + std::strerror(errno));
  }
}

void ReportFolder::write(const std::string& name, const std::string& contents) {
  try {
    write_file_atomically(join_path(temporary_, name), contents);
  } catch (const InputError& error) {
    // Name the file where the user will look for it, not the temporary folder.
    std::string message = error.what();
    const std::size_t at = message.find(temporary_);
    if (at != std::string::npos) message.replace(at, temporary_.size(), without_trailing_slashes(destination_));
    throw InputError("", message);
  }
  names_.push_back(name);
}

std::string ReportFolder::final_path(const std::string& name) const {
  return join_path(without_trailing_slashes(destination_), name);
}

void ReportFolder::commit() {
  if (inside_) {
    move_files_into_destination();
  } else {
    replace_destination();
  }
  committed_ = true;
}

void ReportFolder::replace_destination() {
  // The older report goes aside under a name that stale-temporary cleanup recognises.
  const std::string aside = temporary_ + ".old";
  const bool had_old = ::rename(target_.c_str(), aside.c_str()) == 0;
  if (!had_old && errno != ENOENT) {
    throw InputError(option_, destination_ + ": cannot move the older report aside: " + std::strerror(errno));
  }
  if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
    const int error = errno;
    if (had_old) ::rename(aside.c_str(), target_.c_str());
    throw InputError(option_, destination_ + ": cannot rename the finished report into place: " + std::strerror(error));
  }
  sync_directory(parent_directory(target_));
  if (had_old) remove_tree(aside);
}

void ReportFolder::move_files_into_destination() {
  for (const std::string& name : names_) {
    if (::rename(join_path(temporary_, name).c_str(), join_path(target_, name).c_str()) != 0) {
      throw InputError(option_, final_path(name) + ": cannot rename into place: " + std::strerror(errno));
    }
  }
  ::rmdir(temporary_.c_str());
  sync_directory(target_);
}

}  // namespace indexcache
