// Output files are never left half-written: contents go to a temporary file in the same
// directory, are flushed to disk, and are renamed over the destination.
#pragma once

#include <functional>
#include <string>

namespace indexcache {

// Writes `contents` to `path` atomically (temporary file + fsync + rename + directory fsync).
// Throws InputError naming the path (directory missing or not writable, disk full, ...).
// The temporary file is `<path>.tmp.<pid>.<random>`; temporaries of the same path left by a
// process that no longer runs (killed mid-write) are removed first. `before_rename`, when set,
// runs once the temporary file is complete and flushed, just before the rename: tests use it to
// be killed mid-write.
void write_file_atomically(const std::string& path, const std::string& contents,
                           const std::function<void()>& before_rename = {});

// Fails early, before long work, when `path` could not be written: its directory must exist
// and be writable, and `path` itself must not be a directory.
void check_writable(const std::string& path);

}  // namespace indexcache
