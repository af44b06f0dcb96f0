// Output files: every file the tools write goes through this header, and what the path names
// on disk decides how it is written. Nothing is ever half-written, and nothing that is not a
// regular file is ever replaced by one.
//
//   the path names                   write_file_atomically          write_output_file
//   --------------------------------------------------------------------------------------------
//   nothing yet, or a regular file   temporary file next to it, fsync, rename over it, fsync of
//                                    the directory (a reader sees the old or the new file)
//   a symbolic link (or a chain)     written THROUGH to the file the last link names, atomically
//                                    as above with the temporary next to that file; the link
//                                    stays a link (a dangling link creates its target)
//   a character or block device,     refused (exit 2)               opened and written directly:
//   or a FIFO                                                       no temporary, no rename
//                                                                   (`--export-out /dev/stdout`,
//                                                                   a pipe another process reads)
//   "-"                              a file named "-"               standard output
//   a directory, a socket, a         refused (exit 2), never replaced
//   symbolic-link loop
//
// Which outputs take which (docs/ROBUSTNESS.md, "Output paths"):
// - write_file_atomically: the layer plan (--out), its journal and every report file. They are
//   read back (resume, --check, --plan) or sit in a folder next to other files, so they must
//   be regular files; a device as --out would also put the journal and report next to it.
// - write_output_file: the files the tools write once and never read back: --json and
//   --export-out. Streams are what users mean there.
#pragma once

#include <functional>
#include <string>

namespace indexcache {

// Writes `contents` to `path` atomically (temporary file + fsync + rename + directory fsync),
// following symbolic links to their final target. Throws InputError naming `path`: a
// directory, socket, device or FIFO, a link loop, a missing or read-only directory, disk full.
// The temporary file is `<target>.tmp.<pid>.<random>`; temporaries of the same target left by
// a process that no longer runs (killed mid-write) are removed first. An existing target keeps
// its permission bits (a new one gets 0644). `before_rename`, when set, runs once the temporary
// file is complete and flushed, just before the rename: tests use it to be killed mid-write.
void write_file_atomically(const std::string& path, const std::string& contents,
                           const std::function<void()>& before_rename = {});

// Fails early, before long work, when write_file_atomically(path) would be refused or could not
// create its temporary file: the same rules (the target after symbolic links must be a regular
// file or not exist yet) and a probe file in the target's directory.
void check_writable(const std::string& path);

// Writes a file that is written once and not read back (--json, --export-out): "-" is standard
// output, a character or block device or a FIFO is opened and written directly (a FIFO blocks
// until a reader opens it, as a shell redirection does), anything else as write_file_atomically.
void write_output_file(const std::string& path, const std::string& contents);

// check_writable's counterpart for write_output_file: "-" passes; a device or FIFO must be
// writable by this process (it is not opened here: a FIFO would wait for its reader).
void check_output_file(const std::string& path);

// Removes `<path>.tmp.<pid>.*` files and folders whose process no longer runs: what a writer
// killed between creating its temporary and renaming it leaves behind. Those of live processes
// (another run writing the same path right now) are left alone.
void remove_stale_temporaries(const std::string& path);

}  // namespace indexcache
