#include "run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <sstream>
#include <thread>

#include "error.h"

namespace indexcache {
namespace {

constexpr std::size_t kLongestCommand = 300;
constexpr std::size_t kLongestRecord = 4096;  // a lock file is a few lines; more is not ours

std::string system_error(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

// This process's command line from /proc (Linux), arguments joined by spaces; empty elsewhere.
std::string command_line() {
  std::string raw;
  const int descriptor = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) return "";
  char buffer[1024];
  ssize_t count = 0;
  while (raw.size() < 4 * kLongestCommand && (count = ::read(descriptor, buffer, sizeof buffer)) > 0) {
    raw.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(descriptor);
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& character : raw) {
    if (character == '\0') character = ' ';
  }
  raw = one_line(raw);
  if (raw.size() > kLongestCommand) raw = raw.substr(0, kLongestCommand) + "...";
  return raw;
}

std::string owner_text(const RunOwner& owner) {
  return "pid: " + owner.pid + "\nhost: " + owner.host + "\nstarted: " + owner.started + "\ncommand: " + owner.command +
         "\n";
}

// The lock file's contents through `descriptor` (its first kLongestRecord bytes).
std::string read_record(int descriptor) {
  std::string text(kLongestRecord, '\0');
  std::size_t length = 0;
  while (length < text.size()) {
    const ssize_t count = ::pread(descriptor, &text[length], text.size() - length, static_cast<off_t>(length));
    if (count <= 0) break;
    length += static_cast<std::size_t>(count);
  }
  text.resize(length);
  return text;
}

// The holder writes its record right after it takes the lock; a run that lands in between
// waits a moment (at most about 0.5 s) for the record rather than report an unnamed holder.
RunOwner wait_for_owner(int descriptor) {
  RunOwner owner;
  for (int attempt = 0; attempt < 50; ++attempt) {
    owner = parse_run_owner(read_record(descriptor));
    if (!owner.pid.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return owner;
}

bool same_file(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

}  // namespace

std::string RunOwner::describe() const {
  if (pid.empty()) return "a run that has not yet recorded who it is";
  std::string text = "pid " + pid;
  if (!host.empty()) text += " on host " + host;
  if (!started.empty()) text += ", started " + started;
  if (!command.empty()) text += " (" + command + ")";
  return text;
}

RunOwner parse_run_owner(const std::string& text) {
  RunOwner owner;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const std::size_t colon = line.find(": ");
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    const std::string value = one_line(line.substr(colon + 2)).substr(0, kLongestCommand + 3);
    if (key == "pid") owner.pid = value;
    if (key == "host") owner.host = value;
    if (key == "started") owner.started = value;
    if (key == "command") owner.command = value;
  }
  return owner;
}

RunOwner RunLock::recorded_owner(const std::string& lock_path) {
  const int descriptor = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (descriptor < 0) return {};
  struct stat info {};
  RunOwner owner;
  if (::fstat(descriptor, &info) == 0 && S_ISREG(info.st_mode)) owner = parse_run_owner(read_record(descriptor));
  ::close(descriptor);
  return owner;
}

RunLock RunLock::take(const std::string& lock_path, const std::string& subject) {
  // A finishing run unlinks the file while it holds the lock. If we opened that file just
  // before, our lock lands on an inode no longer at the path: let go and open the path again.
  for (int attempt = 0; attempt < 100; ++attempt) {
    // O_NOFOLLOW: a symbolic link planted at the lock's name is refused, not followed.
    // O_NONBLOCK: opening a FIFO of that name does not hang (it is refused below).
    const int descriptor = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (descriptor < 0) throw InputError(lock_path, system_error("cannot create the lock file"));
    struct stat opened {};
    if (::fstat(descriptor, &opened) != 0 || !S_ISREG(opened.st_mode)) {
      ::close(descriptor);
      throw InputError(lock_path, "is not a regular file; it is the lock file of " + subject + ": remove it");
    }
    if (::flock(descriptor, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) {
        const std::string problem = system_error("cannot be locked");
        ::close(descriptor);
        throw InputError(lock_path, problem);
      }
      const RunOwner owner = wait_for_owner(descriptor);
      ::close(descriptor);
      throw InputError(subject, "in use by another run: " + owner.describe() +
                                    "; wait for it to end or stop it (lock file " + lock_path + ")");
    }
    struct stat at_path {};
    if (::stat(lock_path.c_str(), &at_path) != 0 || !same_file(opened, at_path)) {
      ::close(descriptor);  // the file we locked was removed by its last holder
      continue;
    }
    RunOwner self;
    self.pid = std::to_string(::getpid());
    self.host = host_name();
    self.started = now_utc();
    self.command = command_line();
    const std::string text = owner_text(self);
    // The record is informational: a short write leaves a lock that still works and a
    // holder another run describes less well, so its result is not an error.
    const bool recorded = ::ftruncate(descriptor, 0) == 0 &&
                          ::pwrite(descriptor, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
    (void)recorded;
    return RunLock(descriptor, lock_path);
  }
  throw InputError(lock_path, "could not be locked: it was removed and recreated 100 times while trying");
}

RunLock::RunLock(RunLock&& other) noexcept : descriptor_(other.descriptor_), path_(std::move(other.path_)) {
  other.descriptor_ = -1;
}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    descriptor_ = other.descriptor_;
    path_ = std::move(other.path_);
    other.descriptor_ = -1;
  }
  return *this;
}

void RunLock::release() {
  if (descriptor_ < 0) return;
  // Only our own file: one removed by hand and recreated by another run is that run's lock.
  struct stat ours {}, at_path {};
  if (::fstat(descriptor_, &ours) == 0 && ::stat(path_.c_str(), &at_path) == 0 && same_file(ours, at_path)) {
    ::unlink(path_.c_str());  // while still locked: see the header
  }
  ::close(descriptor_);
  descriptor_ = -1;
}

}  // namespace indexcache
