// Models named by a Hugging Face hub id (`org/name`, `org/name@revision`), found offline in the
// local Hugging Face cache, the layout huggingface_hub writes:
//
//   <cache>/models--org--name/refs/<revision>      a file holding the commit hash the revision is at
//   <cache>/models--org--name/snapshots/<commit>/  the files of that commit (usually symbolic links
//                                                  into ../../blobs/)
//
// <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (huggingface_hub's own order). Nothing is downloaded: a model that is
// not cached is bad input (exit 2) naming the directories searched and the download command.
// No libtorch here; the checkpoint wing is where model directories are opened.
#pragma once

#include <optional>
#include <string>

namespace indexcache {

struct HubModel {
  std::string id;        // "org/name"
  std::string revision;  // as asked: a branch, tag or commit hash; "main" when none was given
  std::string commit;    // the cached snapshot's commit hash (40 hex digits)
};

// Where a --model value points: the directory holding config.json and the weights, and the hub
// id it was resolved from, if any.
struct ModelLocation {
  std::string directory;
  std::optional<HubModel> hub;
};

// True for text shaped like a hub id: `org/name` or `org/name@revision`, org and name made of
// letters, digits, '.', '_' and '-' (no "..", no "--", not starting with '.' or '-').
bool looks_like_hub_id(const std::string& text);

// The cache directory and, for messages, where it came from ("$HF_HUB_CACHE", "$HF_HOME/hub",
// "$XDG_CACHE_HOME/huggingface/hub" or "~/.cache/huggingface/hub").
struct HubCacheRoot {
  std::string directory;
  std::string source;
};
HubCacheRoot hub_cache_root();

// A --model value: a path that exists locally is used as it is (it wins over a hub id of the same
// spelling); otherwise a hub id is looked up in the cache (locate_hub_model); anything else is
// returned as a directory for the checkpoint reader to report. Throws InputError when a hub id
// is not cached.
ModelLocation locate_model(const std::string& text);

// The cached snapshot of `id` at `revision` (a ref such as "main" or a tag, or a commit hash).
// Throws InputError naming what was searched and how to download it: the repository is not
// cached, the revision is not, or the snapshot has no config.json (an interrupted download).
ModelLocation locate_hub_model(const std::string& id, const std::string& revision);

}  // namespace indexcache
