#include "atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

std::string directory_of(const std::string& path) {
  std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int error) {
  throw InputError(path, what + ": " + std::strerror(error));
}

void write_all(int fd, const std::string& contents, const std::string& path, const std::string& temporary) {
  const char* data = contents.data();
  std::size_t left = contents.size();
  while (left > 0) {
    ssize_t written = ::write(fd, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      int error = written < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(temporary.c_str());
      fail(path, "cannot write", error);
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

// Removes `<path>.tmp.<pid>.*` files whose process is gone: what a writer killed between
// creating its temporary file and renaming it leaves behind. Files of live processes (another
// run writing the same path right now) are left alone.
void remove_stale_temporaries(const std::string& path) {
  const std::string prefix = file_name(path) + ".tmp.";
  for (const std::string& name : list_directory(directory_of(path))) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || end == nullptr || *end != '.') continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) ::unlink(join_path(directory_of(path), name).c_str());
  }
}

}  // namespace

void check_writable(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    throw InputError(path, "is a directory, expected a file name");
  }
  std::string directory = directory_of(path);
  if (::stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw InputError(path, "cannot be written: directory " + directory + " does not exist");
  }
  // Create (and remove) a probe file: permission bits alone do not tell (root ignores them,
  // read-only mounts do not show in them).
  std::string probe = directory + "/.indexcache-probe-XXXXXX";
  std::vector<char> name(probe.begin(), probe.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0) {
    throw InputError(path, "cannot be written: directory " + directory + " is not writable (" + std::strerror(errno) + ")");
  }
  ::close(fd);
  ::unlink(name.data());
}

void write_file_atomically(const std::string& path, const std::string& contents,
                           const std::function<void()>& before_rename) {
  check_writable(path);
  remove_stale_temporaries(path);
  std::string pattern = path + ".tmp." + std::to_string(::getpid()) + ".XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0) fail(path, "cannot create a temporary file", errno);
  std::string temporary(name.data());
  ::fchmod(fd, 0644);
  write_all(fd, contents, path, temporary);
  if (::fsync(fd) != 0) {
    int error = errno;
    ::close(fd);
    ::unlink(temporary.c_str());
    fail(path, "cannot flush to disk", error);
  }
  ::close(fd);
  if (before_rename) before_rename();
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(temporary.c_str());
    fail(path, "cannot rename the temporary file into place", error);
  }
  // Make the rename itself durable.
  int directory_fd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (directory_fd >= 0) {
    ::fsync(directory_fd);
    ::close(directory_fd);
  }
}

}  // namespace indexcache
