#include "atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int error) {
  throw InputError(path, what + ": " + std::strerror(error));
}

// What an output path names once symbolic links are followed.
struct OutputTarget {
  enum class Kind { missing, regular, stream };
  Kind kind = Kind::missing;
  std::string path;   // the target: `path` itself unless it is a symbolic link
  std::string what;   // for messages about a stream: "a character device", ...
  mode_t mode = 0644;  // permission bits an existing regular file keeps
};

// " (the target of the symbolic link)" when `target` differs from what the user named.
std::string via_link(const std::string& path, const std::string& target) {
  return target == path ? "" : " (" + target + ", where the symbolic link points)";
}

// Classifies `path`; refuses what may never be written: an empty name, a directory, a socket.
OutputTarget resolve_output(const std::string& path) {
  if (path.empty()) throw InputError("", "an output file name is empty");
  OutputTarget target;
  target.path = follow_symlinks(path);
  struct stat info {};
  if (::stat(target.path.c_str(), &info) != 0) {
    if (errno == ENOENT) return target;  // a new file (its directory is checked where it is created)
    fail(path, "cannot be written", errno);
  }
  if (S_ISREG(info.st_mode)) {
    target.kind = OutputTarget::Kind::regular;
    target.mode = info.st_mode & 0777;
    return target;
  }
  if (S_ISDIR(info.st_mode)) throw InputError(path, "is a directory" + via_link(path, target.path) + ", expected a file name");
  if (S_ISSOCK(info.st_mode)) {
    throw InputError(path, "is a socket" + via_link(path, target.path) + ": it cannot be written as a file; give a file name");
  }
  target.kind = OutputTarget::Kind::stream;
  target.what = S_ISCHR(info.st_mode) ? "a character device" : S_ISBLK(info.st_mode) ? "a block device" : "a FIFO";
  return target;
}

[[noreturn]] void refuse_stream(const std::string& path, const OutputTarget& target) {
  throw InputError(path, "is " + target.what + via_link(path, target.path) +
                             ", not a regular file: this output is replaced as a whole through a temporary file, and a "
                             "device or FIFO is never replaced; give a file name");
}

// Writes all of `contents` to `fd`; returns 0 or the errno of the failure (ENOSPC for a write
// that makes no progress).
int write_all(int fd, const std::string& contents) {
  const char* data = contents.data();
  std::size_t left = contents.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return written < 0 ? errno : ENOSPC;
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  return 0;
}

// The directory a new file `target` is created in must exist and accept new files.
void check_directory_accepts(const std::string& path, const std::string& target) {
  const std::string directory = parent_directory(target);
  if (!is_directory(directory)) {
    throw InputError(path, "cannot be written: directory " + directory + " does not exist");
  }
  // Create (and remove) a probe file: permission bits alone do not tell (root ignores them,
  // read-only mounts do not show in them).
  std::string probe = join_path(directory, ".indexcache-probe-XXXXXX");
  std::vector<char> name(probe.begin(), probe.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) {
    throw InputError(path, "cannot be written: directory " + directory + " is not writable (" + std::strerror(errno) + ")");
  }
  ::close(fd);
  ::unlink(name.data());
}

// A device or FIFO: opened (no O_CREAT: it exists) and written in place.
void write_stream(const std::string& path, const OutputTarget& target, const std::string& contents) {
  const int fd = ::open(target.path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot be opened for writing", errno);
  int error = write_all(fd, contents);
  // A block device holds data that should reach the disk; a character device or FIFO cannot
  // be synced (EINVAL), and that is no failure.
  if (error == 0 && target.what == "a block device" && ::fsync(fd) != 0 && errno != EINVAL) error = errno;
  if (::close(fd) != 0 && error == 0 && errno != EINTR) error = errno;
  if (error != 0) fail(path, "cannot write", error);
}

void write_standard_output(const std::string& contents) {
  // What the tool printed before must come first.
  std::fflush(stdout);
  const int error = write_all(STDOUT_FILENO, contents);
  if (error != 0) fail("standard output", "cannot write", error);
}

// The atomic write of a regular (or new) file `target.path`; messages name `path`.
void replace_regular_file(const std::string& path, const OutputTarget& target, const std::string& contents,
                          const std::function<void()>& before_rename) {
  remove_stale_temporaries(target.path);
  std::string pattern = target.path + ".tmp." + std::to_string(::getpid()) + ".XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) fail(path, "cannot create a temporary file", errno);
  const std::string temporary(name.data());
  ::fchmod(fd, target.mode);
  const char* failed = "cannot write";
  int error = write_all(fd, contents);
  if (error == 0 && ::fsync(fd) != 0) {
    error = errno;
    failed = "cannot flush to disk";
  }
  ::close(fd);
  if (error != 0) {
    ::unlink(temporary.c_str());
    fail(path, failed, error);
  }
  if (before_rename) before_rename();
  if (::rename(temporary.c_str(), target.path.c_str()) != 0) {
    error = errno;
    ::unlink(temporary.c_str());
    fail(path, "cannot rename the temporary file into place", error);
  }
  sync_directory(parent_directory(target.path));  // the rename itself, durable
}

}  // namespace

void remove_stale_temporaries(const std::string& path) {
  const std::string directory = parent_directory(path);
  const std::string prefix = file_name(path) + ".tmp.";
  for (const std::string& name : list_directory(directory)) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || end == nullptr || *end != '.') continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) remove_tree(join_path(directory, name));
  }
}

void check_writable(const std::string& path) {
  const OutputTarget target = resolve_output(path);
  if (target.kind == OutputTarget::Kind::stream) refuse_stream(path, target);
  check_directory_accepts(path, target.path);
}

void write_file_atomically(const std::string& path, const std::string& contents,
                           const std::function<void()>& before_rename) {
  const OutputTarget target = resolve_output(path);
  if (target.kind == OutputTarget::Kind::stream) refuse_stream(path, target);
  check_directory_accepts(path, target.path);
  replace_regular_file(path, target, contents, before_rename);
}

void check_output_file(const std::string& path) {
  if (path == "-") return;
  const OutputTarget target = resolve_output(path);
  if (target.kind != OutputTarget::Kind::stream) {
    check_directory_accepts(path, target.path);
  } else if (::access(target.path.c_str(), W_OK) != 0) {
    fail(path, "cannot be written (" + target.what.substr(target.what.find(' ') + 1) + ")", errno);
  }
}

void write_output_file(const std::string& path, const std::string& contents) {
  if (path == "-") return write_standard_output(contents);
  const OutputTarget target = resolve_output(path);
  if (target.kind == OutputTarget::Kind::stream) return write_stream(path, target, contents);
  check_directory_accepts(path, target.path);
  replace_regular_file(path, target, contents, {});
}

}  // namespace indexcache
