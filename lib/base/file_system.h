// Small POSIX file-system helpers. indexcache does not use std::filesystem: libtorch builds
// from the Python package export std::filesystem symbols compiled against another libstdc++ ABI,
// and calls bound to them crash (seen on the GPU machine: remove_all segfaulted).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace indexcache {

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
int64_t file_size(const std::string& path);  // -1 when it cannot be read

// Throws InputError unless `path` is a regular file: "PATH: file not found", "PATH: cannot be
// read: <reason>", "PATH: is a directory, expected <what>" or "PATH: is not a regular file,
// expected <what>" (a FIFO or device would block the reader or never end). `what` names the
// file the caller expects, e.g. "a layer plan file".
void require_regular_file(const std::string& path, const std::string& what);
// The whole contents of a regular file (require_regular_file's errors, then read errors).
std::string read_regular_file(const std::string& path, const std::string& what);

// `path` with the symbolic links of its last component followed (a chain; a relative target
// is taken from the link's own folder) to a name that is not a link, whether or not anything
// exists there yet; `path` itself when it is no link. Throws InputError naming `path` for a
// loop (over 40 links) or a link that cannot be read.
std::string follow_symlinks(const std::string& path);

// fsync of a directory, so that renames in it survive a power loss; best effort.
void sync_directory(const std::string& directory);

// "a/b" from ("a", "b"); keeps an absolute second part as is.
std::string join_path(const std::string& directory, const std::string& name);
std::string parent_directory(const std::string& path);  // "." for a bare name
std::string file_name(const std::string& path);         // last component
std::string file_extension(const std::string& path);    // ".jsonl", or "" (of the last component)
std::string file_stem(const std::string& path);         // last component without its extension

// Entry names of a directory (no "." or ".."), sorted; empty when it cannot be read.
std::vector<std::string> list_directory(const std::string& directory);

// mkdir -p; returns false on failure.
bool make_directories(const std::string& path);
// rm -rf; symbolic links are removed, never followed.
void remove_tree(const std::string& path);
// cp -r of regular files and directories; returns false on failure.
bool copy_tree(const std::string& from, const std::string& to);
// A new directory under $TMPDIR or /tmp named <prefix>XXXXXX.
std::string make_temporary_directory(const std::string& prefix);

}  // namespace indexcache
