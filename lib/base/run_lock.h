// One run at a time per output: an advisory lock on a small lock file next to the output
// (for a search: <plan>.lock, guarding the plan and its resume journal).
//
// Why flock(2) on a file of its own:
// - The lock is the kernel's, held by an open file description: it goes away when the process
//   ends in any way (exit, crash, SIGKILL), so a killed run never leaves a lock behind. The
//   file itself may stay; the next run simply locks it again.
// - flock, not fcntl(F_SETLK): an fcntl lock belongs to the process and is dropped when the
//   process closes ANY descriptor of the file, so code that merely reads the lock file (or a
//   library opening it) would silently unlock it. A flock lock is released only by closing
//   the descriptor that took it. (On Linux NFS, flock is emulated with fcntl locks, so it also
//   works across hosts there.)
// - A file of its own, not the journal or the plan: both are replaced by rename on every write
//   (write_file_atomically), which would leave the lock on an inode no longer at the path, and
//   neither exists before the first search step.
//
// The holder writes who it is into the file (pid, host, start time, command line), so a run
// that finds the lock taken can name the run that holds it.
#pragma once

#include <string>

namespace indexcache {

// Who holds (or last held) a lock file, as its holder wrote it; fields may be empty when the
// file is empty or was written by something else.
struct RunOwner {
  std::string pid;
  std::string host;
  std::string started;  // UTC, ISO 8601
  std::string command;  // the holder's command line, one line, shortened to about 300 bytes

  // "pid 4242 on host build-3, started 2026-12-04T18:40:03Z (indexcache-calibrate --keep 0.25 ...)"
  std::string describe() const;
};

// Parses the contents a RunLock writes (lines "key: value"); unknown lines are ignored.
RunOwner parse_run_owner(const std::string& text);

class RunLock {
 public:
  // Takes the lock on `lock_path` (creating the file) without waiting, and writes this
  // process's RunOwner into it. `subject` names what the lock guards in messages, e.g.
  // "plan.yaml (and its journal)". Throws InputError (exit 2):
  // - when another live process holds it: "<subject>: in use by another run: pid ... on host
  //   ..., started ... (<its command>); wait for it to end or stop it";
  // - when the lock file cannot be created or locked (folder not writable, a symbolic link,
  //   not a regular file, a file system without locks), naming `lock_path`.
  static RunLock take(const std::string& lock_path, const std::string& subject);

  // The owner recorded in `lock_path`, if that file exists (the previous holder, when no run
  // holds it now); empty fields otherwise.
  static RunOwner recorded_owner(const std::string& lock_path);

  RunLock() = default;
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock() { release(); }

  // Removes the lock file and releases the lock (idempotent). The file is unlinked while still
  // locked; a run that opened the old file meanwhile sees that it is no longer at the path and
  // locks the new one, so two runs never both hold "the" lock.
  void release();
  bool held() const { return descriptor_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  RunLock(int descriptor, std::string path) : descriptor_(descriptor), path_(std::move(path)) {}
  int descriptor_ = -1;
  std::string path_;
};

}  // namespace indexcache
