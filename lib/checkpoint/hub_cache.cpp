#include "hub_cache.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

constexpr std::size_t kLongestRepoId = 96;  // the hub's own limit on repository ids
constexpr std::size_t kCommitLength = 40;
constexpr std::size_t kLongestRefFile = 256;  // a ref file holds one hash and a newline

bool is_id_character(unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '-'; }

// One part of org/name, by the hub's rules for repository ids.
bool is_id_part(const std::string& part) {
  if (part.empty() || part.front() == '.' || part.front() == '-') return false;
  if (part.find("..") != std::string::npos || part.find("--") != std::string::npos) return false;
  return std::all_of(part.begin(), part.end(), is_id_character);
}

// A branch or tag name ("main", "v1.0", "refs/pr/1") or a commit hash. It becomes a path below
// refs/, so no part of it may climb out ("..") or be empty.
bool is_revision(const std::string& revision) {
  if (revision.empty() || revision.front() == '/' || revision.back() == '/') return false;
  if (revision.find("..") != std::string::npos || revision.find("//") != std::string::npos) return false;
  return std::all_of(revision.begin(), revision.end(),
                     [](unsigned char c) { return is_id_character(c) || c == '/'; });
}

bool is_commit_hash(const std::string& text) {
  return text.size() == kCommitLength &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) || (c >= 'a' && c <= 'f'); });
}

const char* environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

std::string download_advice(const std::string& id, const std::string& revision) {
  const std::string revision_flag = revision == "main" ? "" : " --revision " + revision;
  return "download it with `huggingface-cli download " + id + revision_flag + "` (or `hf download " + id +
         revision_flag + "`), or give the model's directory";
}

std::string repository_directory(const HubCacheRoot& root, const std::string& id) {
  const std::size_t slash = id.find('/');
  return join_path(root.directory, "models--" + id.substr(0, slash) + "--" + id.substr(slash + 1));
}

// The names under refs/ (one level; enough to tell the user what is cached).
std::string cached_refs(const std::string& repository) {
  std::string names;
  for (const std::string& name : list_directory(join_path(repository, "refs"))) {
    names += (names.empty() ? "" : ", ") + name;
  }
  return names.empty() ? "none" : names;
}

// The commit hash a ref file holds, or "" when it holds anything else.
std::string read_ref(const std::string& path) {
  if (file_size(path) > static_cast<int64_t>(kLongestRefFile)) return "";
  std::string text = read_regular_file(path, "a Hugging Face cache ref");
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return is_commit_hash(text) ? text : "";
}

// locate_hub_model's work; `local_path` is the local path that was looked for first ("" if none).
ModelLocation find_in_cache(const std::string& id, const std::string& revision, const std::string& local_path);

}  // namespace

bool looks_like_hub_id(const std::string& text) {
  const std::size_t at = text.find('@');
  const std::string id = text.substr(0, at);
  if (id.size() > kLongestRepoId) return false;
  const std::size_t slash = id.find('/');
  if (slash == std::string::npos || id.find('/', slash + 1) != std::string::npos) return false;
  if (!is_id_part(id.substr(0, slash)) || !is_id_part(id.substr(slash + 1))) return false;
  return at == std::string::npos || is_revision(text.substr(at + 1));
}

HubCacheRoot hub_cache_root() {
  if (const char* cache = environment("HF_HUB_CACHE")) return {cache, "$HF_HUB_CACHE"};
  if (const char* home = environment("HF_HOME")) return {join_path(home, "hub"), "$HF_HOME/hub"};
  if (const char* xdg = environment("XDG_CACHE_HOME")) {
    return {join_path(xdg, "huggingface/hub"), "$XDG_CACHE_HOME/huggingface/hub"};
  }
  const char* home = environment("HOME");
  return {join_path(home != nullptr ? home : "", ".cache/huggingface/hub"), "~/.cache/huggingface/hub"};
}

namespace {

ModelLocation find_in_cache(const std::string& id, const std::string& revision, const std::string& local_path) {
  const std::string named = revision == "main" ? id : id + "@" + revision;
  if (!looks_like_hub_id(named)) throw InputError(named, "is not a Hugging Face hub id (org/name or org/name@revision)");
  const HubCacheRoot root = hub_cache_root();
  const std::string repository = repository_directory(root, id);
  if (!is_directory(repository)) {
    throw InputError(named, std::string(local_path.empty() ? "" : "is not a local path, and ") + "is not in the Hugging Face cache (searched " +
                                (local_path.empty() ? "" : "./" + local_path + " and ") + repository +
                                ", the cache from " + root.source + "); " + download_advice(id, revision));
  }
  const std::string ref = join_path(join_path(repository, "refs"), revision);
  std::string commit;
  if (is_regular_file(ref)) {
    commit = read_ref(ref);
    if (commit.empty()) throw InputError(ref, "does not hold a commit hash (40 hex digits); " + download_advice(id, revision));
  } else if (is_commit_hash(revision)) {
    commit = revision;
  } else {
    throw InputError(named, "revision \"" + revision + "\" is not in the Hugging Face cache (searched " + ref +
                                "; cached refs: " + cached_refs(repository) + "); " + download_advice(id, revision));
  }
  const std::string snapshot = join_path(join_path(repository, "snapshots"), commit);
  if (!is_directory(snapshot)) {
    throw InputError(named, "commit " + commit + " is not in the Hugging Face cache (searched " + snapshot + "); " +
                                download_advice(id, revision));
  }
  if (!is_regular_file(join_path(snapshot, "config.json"))) {
    throw InputError(snapshot, "has no config.json (an interrupted download?); " + download_advice(id, revision));
  }
  return {snapshot, HubModel{id, revision, commit}};
}

}  // namespace

ModelLocation locate_hub_model(const std::string& id, const std::string& revision) {
  return find_in_cache(id, revision, "");
}

ModelLocation locate_model(const std::string& text) {
  if (path_exists(text) || !looks_like_hub_id(text)) return {text, std::nullopt};
  const std::size_t at = text.find('@');
  if (at == std::string::npos) return find_in_cache(text, "main", text);
  return find_in_cache(text.substr(0, at), text.substr(at + 1), text);
}

}  // namespace indexcache
