#include "file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "error.h"

namespace indexcache {

bool path_exists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) throw InputError(path, "file not found");
    throw InputError(path, std::string("cannot be read: ") + std::strerror(errno));  // ELOOP, EACCES, ...
  }
  if (S_ISDIR(info.st_mode)) throw InputError(path, "is a directory, expected " + what);
  if (!S_ISREG(info.st_mode)) throw InputError(path, "is not a regular file, expected " + what);
}

std::string read_regular_file(const std::string& path, const std::string& what) {
  require_regular_file(path, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, std::string("cannot be read: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path, "cannot be read: read error");
  return text.str();
}

std::string follow_symlinks(const std::string& path) {
  constexpr int kMostLinks = 40;  // as the kernel's own limit (ELOOP)
  std::string current = path;
  for (int links = 0;; ++links) {
    struct stat info {};
    if (::lstat(current.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return current;
    if (links == kMostLinks) throw InputError(path, "cannot be used: too many levels of symbolic links (a loop?)");
    std::vector<char> target(static_cast<std::size_t>(info.st_size > 0 ? info.st_size : 255) + 1);
    const ssize_t length = ::readlink(current.c_str(), target.data(), target.size());
    if (length < 0 || static_cast<std::size_t>(length) >= target.size()) {
      throw InputError(path, std::string("cannot read the symbolic link ") + current + ": " +
                                 (length < 0 ? std::strerror(errno) : "it changed while being read"));
    }
    current = join_path(parent_directory(current), std::string(target.data(), static_cast<std::size_t>(length)));
  }
}

void sync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

int64_t file_size(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return -1;
  return static_cast<int64_t>(info.st_size);
}

std::string join_path(const std::string& directory, const std::string& name) {
  if (!name.empty() && name.front() == '/') return name;
  if (directory.empty()) return name;
  return directory.back() == '/' ? directory + name : directory + "/" + name;
}

std::string parent_directory(const std::string& path) {
  std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string file_name(const std::string& path) {
  std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string file_extension(const std::string& path) {
  std::string name = file_name(path);
  std::size_t dot = name.find_last_of('.');
  if (dot == std::string::npos || dot == 0) return "";
  return name.substr(dot);
}

std::string file_stem(const std::string& path) {
  std::string name = file_name(path);
  return name.substr(0, name.size() - file_extension(name).size());
}

std::vector<std::string> list_directory(const std::string& directory) {
  std::vector<std::string> names;
  DIR* handle = ::opendir(directory.c_str());
  if (handle == nullptr) return names;
  while (const dirent* entry = ::readdir(handle)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

bool make_directories(const std::string& path) {
  if (path.empty() || is_directory(path)) return true;
  if (!make_directories(parent_directory(path))) return false;
  return ::mkdir(path.c_str(), 0755) == 0 || is_directory(path);
}

void remove_tree(const std::string& path) {
  auto remove_entry = [](const char* entry, const struct stat*, int, struct FTW*) -> int {
    ::remove(entry);
    return 0;
  };
  // Depth first, without following symbolic links.
  ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

namespace {

bool copy_file(const std::string& from, const std::string& to, mode_t mode) {
  int in = ::open(from.c_str(), O_RDONLY);
  if (in < 0) return false;
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode & 0777);
  if (out < 0) {
    ::close(in);
    return false;
  }
  char buffer[1 << 16];
  bool ok = true;
  for (;;) {
    ssize_t got = ::read(in, buffer, sizeof buffer);
    if (got == 0) break;
    if (got < 0 || ::write(out, buffer, static_cast<size_t>(got)) != got) {
      ok = false;
      break;
    }
  }
  ::close(in);
  return ::close(out) == 0 && ok;
}

}  // namespace

bool copy_tree(const std::string& from, const std::string& to) {
  struct stat info {};
  if (::stat(from.c_str(), &info) != 0) return false;
  if (!S_ISDIR(info.st_mode)) return copy_file(from, to, info.st_mode);
  if (!make_directories(to)) return false;
  for (const std::string& name : list_directory(from)) {
    if (!copy_tree(join_path(from, name), join_path(to, name))) return false;
  }
  return true;
}

std::string make_temporary_directory(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = join_path(base != nullptr && *base != '\0' ? base : "/tmp", prefix + "XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory " + pattern);
  return pattern;
}

}  // namespace indexcache
