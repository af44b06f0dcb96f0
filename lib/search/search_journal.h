// The resume journal of a search: next to the plan (<plan>.journal), rewritten atomically after
// every committed step, so an interrupted run (Ctrl-C, SIGKILL, power loss) can continue with
// --resume and produce the same plan as an uninterrupted one.
//
// The journal starts with the run's identity (model, data, settings); a journal from a
// different run is refused, never mixed in.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "search_step.h"

namespace indexcache {

class SearchJournal {
 public:
  static std::string path_for(const std::string& plan_path) { return plan_path + ".journal"; }

  // A new journal for a run with identity `run` (overwrites any old file when the first step commits).
  SearchJournal(std::string path, nlohmann::json run);

  // Reads `path` and checks that it belongs to a run with identity `run` (InputError naming the
  // first differing field otherwise) and that its steps replay on a model of `layers` layers
  // (each removes an F layer other than layer 0 and records the pattern that gives). Returns
  // the committed steps.
  static std::vector<SearchStep> read(const std::string& path, const nlohmann::json& run, int64_t layers,
                                      double* baseline_loss);

  // Throws InputError when there is no journal at `path` to resume from, saying to start the
  // run again without --resume (no journal exists until the first step commits). Cheap: the
  // tools call it before any model work.
  static void require_journal(const std::string& path);

  void commit(const SearchStep& step, double baseline_loss);
  // After the plan is written the journal has served its purpose.
  void remove() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  nlohmann::json run_;
  std::vector<SearchStep> steps_;
};

}  // namespace indexcache
