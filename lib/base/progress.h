// Progress of long work on stderr: a live bar with rate and ETA when stderr is a terminal, a
// plain line every few seconds otherwise (logs, CI), nothing when quiet. Machine-readable output
// (JSON, plans, reports) never goes here, and a live line is cleared before the tools print
// their summary on stdout, so the two never share a line.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace indexcache {

// Everything one progress line shows; the formatting functions below are pure so tests can
// check them without a terminal.
struct ProgressState {
  std::string stage;   // "all-F forward", "step 2/5 candidate 3/4 (layer 2) best 3.21"
  int64_t done = 0;
  int64_t total = 0;
  std::string unit;    // "sequences"
  double rate = 0.0;   // units per second in this stage; 0 when not known yet
  double elapsed_seconds = 0.0;  // since the tool started
};

// Seconds left in the stage at `rate`; negative when unknown.
double progress_eta_seconds(const ProgressState& state);

// "stage ▕████▌     ▏ 12/32 sequences  3.4/s  ETA 6.0s  [1m05s]", at most `columns` display
// columns (the stage label is shortened first).
std::string progress_bar_line(const ProgressState& state, int columns);

// "stage: 12/32 sequences (37%), 3.4 sequences/s, ETA 6.0s, elapsed 1m05s" for logs.
std::string progress_plain_line(const ProgressState& state);

class Progress {
 public:
  enum class Mode { Quiet, LiveBar, PlainLines };

  // LiveBar when stderr is a terminal, PlainLines otherwise, Quiet with `quiet`.
  explicit Progress(bool quiet);
  // An explicit mode and stream (tests).
  Progress(Mode mode, std::FILE* stream);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Work `done` of `total` in `stage`; `detail` names the unit ("sequences"). A new stage
  // label starts a new bar, whose rate and ETA are the stage's own.
  void update(const std::string& stage, int64_t done, int64_t total, const std::string& detail = "");
  // Ends the live line (if any) and prints `text` on its own line.
  void message(const std::string& text);
  // Clears the live line; call before printing results on stdout.
  void finish();
  double elapsed_seconds() const;
  Mode mode() const { return mode_; }

 private:
  using Clock = std::chrono::steady_clock;
  void begin_stage(const std::string& stage, int64_t done, Clock::time_point now);
  double stage_rate(int64_t done, Clock::time_point now) const;
  bool due(int64_t done, int64_t total, Clock::time_point now) const;

  Mode mode_;
  std::FILE* stream_;
  bool line_open_ = false;
  std::string stage_;
  bool stage_printed_ = false;
  int64_t stage_first_done_ = 0;
  Clock::time_point start_;
  Clock::time_point stage_start_;       // when the stage's work began (previous activity)
  Clock::time_point stage_first_seen_;  // first update of the stage
  Clock::time_point last_activity_;
  Clock::time_point last_print_;
};

// "1m05s", "3.2s", "2h05m".
std::string format_duration(double seconds);

}  // namespace indexcache
