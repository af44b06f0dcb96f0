#include "search_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "atomic_file.h"
#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

constexpr const char* kJournalFormat = "indexcache-journal/1";

nlohmann::json step_json(const SearchStep& step) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const CandidateLoss& c : step.candidates) candidates.push_back({c.layer, c.loss});
  return {{"removed", step.removed}, {"loss", step.loss}, {"pattern", step.pattern.text()}, {"candidates", candidates}};
}

bool is_finite_number(const nlohmann::json& value) { return value.is_number() && std::isfinite(value.get<double>()); }

// One step's fields, each of its JSON type (anything else: "steps[i] is malformed"). The pattern
// stays text (`pattern_text`) until check_replay has checked the layer the step removes.
SearchStep step_from_json(const nlohmann::json& value, const std::string& path, std::size_t index,
                          std::string& pattern_text) {
  const std::string where = "steps[" + std::to_string(index) + "]";
  auto malformed = [&](const std::string& what) { return InputError(path, where + " is malformed: " + what); };
  if (!value.is_object()) throw malformed("not an object");
  const auto removed = value.find("removed");
  const auto loss = value.find("loss");
  const auto pattern = value.find("pattern");
  const auto candidates = value.find("candidates");
  if (removed == value.end() || !removed->is_number_integer()) throw malformed("removed must be an integer");
  if (loss == value.end() || !is_finite_number(*loss)) throw malformed("loss must be a finite number");
  if (pattern == value.end() || !pattern->is_string()) throw malformed("pattern must be a string");
  if (candidates == value.end() || !candidates->is_array()) throw malformed("candidates must be a list");
  SearchStep step;
  step.removed = removed->get<int64_t>();
  step.loss = loss->get<double>();
  pattern_text = pattern->get<std::string>();
  for (const nlohmann::json& candidate : *candidates) {
    if (!candidate.is_array() || candidate.size() != 2 || !candidate[0].is_number_integer() ||
        !is_finite_number(candidate[1])) {
      throw malformed("candidates must be [layer, loss] pairs");
    }
    step.candidates.push_back({candidate[0].get<int64_t>(), candidate[1].get<double>()});
  }
  return step;
}

// The steps must replay: each turns one F layer (not layer 0) of the previous pattern into S,
// on a model of `layers` layers, and no more of them than a search down to target_kept takes.
// A journal that was edited or damaged in a way JSON still accepts is refused here, before
// the search trusts its layer numbers.
// Sets each step's pattern from its text once it replays.
void check_replay(std::vector<SearchStep>& steps, const std::vector<std::string>& pattern_texts, int64_t layers,
                  int64_t target_kept, const std::string& path) {
  // The search starts from every indexer F; a model family's fixed-S layers (GLM-5.2's declared
  // shared ones, model_family.h) are S from the start. Those are the layers S in the first
  // recorded pattern besides the one its step removed; the search checks the start against the
  // model's own when it replays (greedy_search).
  LayerPattern pattern = LayerPattern::all_full(layers);
  if (!steps.empty() && static_cast<int64_t>(pattern_texts[0].size()) == layers && steps[0].removed >= 0 &&
      steps[0].removed < layers) {
    std::string start = pattern_texts[0];
    start[static_cast<std::size_t>(steps[0].removed)] = 'F';
    if (start.front() == 'F' && start.find_first_not_of("FS") == std::string::npos) {
      pattern = LayerPattern::parse(start, layers, path + ": steps[0].pattern");
    }
  }
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SearchStep& step = steps[i];
    const std::string where = "steps[" + std::to_string(i) + "]";
    if (step.removed < 1 || step.removed >= layers || !pattern.is_full(step.removed)) {
      throw InputError(path, where + " removes layer " + std::to_string(step.removed) +
                                 ", which is not an F layer other than layer 0 of the " + std::to_string(layers) +
                                 "-layer model");
    }
    pattern = pattern.with_shared(step.removed);
    if (pattern_texts[i] != pattern.text()) {
      throw InputError(path, where + " records pattern \"" + pattern_texts[i].substr(0, 200) +
                                 "\", but removing layer " + std::to_string(step.removed) + " gives \"" +
                                 pattern.text() + "\"");
    }
    step.pattern = pattern;
  }
  if (target_kept > 0 && layers - static_cast<int64_t>(steps.size()) < target_kept) {
    throw InputError(path, "has " + std::to_string(steps.size()) + " steps, more than a search from " +
                               std::to_string(layers) + " down to " + std::to_string(target_kept) + " layers takes");
  }
}

// The journal's text (require_journal's message when there is none).
std::string read_journal_text(const std::string& path) {
  SearchJournal::require_journal(path);
  return read_regular_file(path, "a search journal");
}

// Test-only fault injection: with INDEXCACHE_TEST_JOURNAL_DELAY_MS=N set, each journal write
// waits N ms after its temporary file is complete and before the rename, so a test can kill
// the process while a journal write is in flight (tests/test_plan.cpp). Never set it otherwise.
int journal_delay_ms() {
  const char* value = std::getenv("INDEXCACHE_TEST_JOURNAL_DELAY_MS");
  return value != nullptr ? std::atoi(value) : 0;
}

}  // namespace

SearchJournal::SearchJournal(std::string path, nlohmann::json run) : path_(std::move(path)), run_(std::move(run)) {}

void SearchJournal::commit(const SearchStep& step, double baseline_loss) {
  steps_.push_back(step);
  nlohmann::json steps = nlohmann::json::array();
  for (const SearchStep& s : steps_) steps.push_back(step_json(s));
  nlohmann::json journal = {{"format", kJournalFormat}, {"run", run_}, {"baseline_loss", baseline_loss}, {"steps", steps}};
  const int delay = journal_delay_ms();
  std::function<void()> before_rename;
  if (delay > 0) before_rename = [delay] { std::this_thread::sleep_for(std::chrono::milliseconds(delay)); };
  write_file_atomically(path_, journal.dump() + "\n", before_rename);
}

void SearchJournal::require_journal(const std::string& path) {
  // The first journal write is the first committed step: a run stopped before it (killed while
  // loading or during the first step) has nothing to resume from and must start again.
  if (!path_exists(path)) {
    throw InputError(path, "nothing to resume: no search step was committed with this --out (a run stopped before "
                           "its first step leaves no journal); start it again without --resume");
  }
}

void SearchJournal::remove() const { ::unlink(path_.c_str()); }

std::vector<SearchStep> SearchJournal::read(const std::string& path, const nlohmann::json& run, int64_t layers,
                                            double* baseline_loss) {
  const nlohmann::json journal = nlohmann::json::parse(read_journal_text(path), nullptr, false);
  if (journal.is_discarded() || !journal.is_object()) throw InputError(path, "is not an indexcache search journal (not a JSON object)");
  const auto format = journal.find("format");
  if (format == journal.end() || !format->is_string() || format->get<std::string>() != kJournalFormat) {
    throw InputError(path, std::string("is not an indexcache search journal (format is not \"") + kJournalFormat + "\")");
  }
  const auto recorded = journal.find("run");
  if (recorded == journal.end() || !recorded->is_object()) throw InputError(path, "has no run identity");
  for (auto it = run.begin(); it != run.end(); ++it) {
    const auto field = recorded->find(it.key());
    if (field == recorded->end() || *field != it.value()) {
      std::string was = field == recorded->end() ? "absent" : field->dump();
      if (was.size() > 200) was = was.substr(0, 200) + "...";
      throw InputError(path, "belongs to a different run: " + it.key() + " was " + was + ", now " + it.value().dump() +
                                 " (start afresh without --resume, or restore the settings)");
    }
  }
  const auto steps = journal.find("steps");
  const auto baseline = journal.find("baseline_loss");
  if (baseline == journal.end()) throw InputError(path, "has no baseline_loss");
  if (!is_finite_number(*baseline)) {
    throw InputError(path, std::string("baseline_loss must be a finite number, got ") +
                               (baseline->is_number() ? "a non-finite number" : baseline->type_name()));
  }
  if (steps == journal.end()) throw InputError(path, "has no steps");
  if (!steps->is_array()) throw InputError(path, std::string("steps must be a list, got ") + steps->type_name());
  *baseline_loss = baseline->get<double>();
  std::vector<SearchStep> result;
  std::vector<std::string> pattern_texts(steps->size());
  for (std::size_t i = 0; i < steps->size(); ++i) result.push_back(step_from_json((*steps)[i], path, i, pattern_texts[i]));
  const auto target = run.find("target_kept");
  const int64_t target_kept = target != run.end() && target->is_number_integer() ? target->get<int64_t>() : 0;
  check_replay(result, pattern_texts, layers, target_kept, path);
  return result;
}

}  // namespace indexcache
