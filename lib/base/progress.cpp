#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace indexcache {
namespace {

constexpr int kBarCells = 20;
constexpr double kLiveInterval = 0.1;   // a terminal redraws at most 10 times a second
constexpr double kPlainInterval = 5.0;  // a log gets a line every 5 seconds

// Display columns of UTF-8 text: one per code point (the bar's block characters are narrow).
int display_width(const std::string& text) {
  int width = 0;
  for (unsigned char c : text) width += (c & 0xC0) != 0x80;
  return width;
}

// The first `columns` display columns of `text`, cut on a code point boundary.
std::string cut_to_width(const std::string& text, int columns) {
  int width = 0;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    bool starts_code_point = (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    if (starts_code_point && ++width > columns) break;
  }
  return text.substr(0, i);
}

// Eighth-block characters give the bar a resolution of 1/8 cell.
std::string bar_cells(int64_t done, int64_t total) {
  static const char* partial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  double fraction = total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0) : 0.0;
  int eighths = static_cast<int>(fraction * kBarCells * 8);
  std::string bar;
  int full = eighths / 8;
  for (int i = 0; i < full; ++i) bar += "█";
  int used = full;
  if (full < kBarCells) {
    bar += partial[eighths % 8];
    used += eighths % 8 > 0;
  }
  bar.append(static_cast<std::size_t>(kBarCells - used), ' ');
  return "▕" + bar + "▏";
}

std::string format_rate(double rate) {
  char buffer[32];
  if (rate >= 100) {
    std::snprintf(buffer, sizeof buffer, "%.0f", rate);
  } else if (rate >= 1) {
    std::snprintf(buffer, sizeof buffer, "%.1f", rate);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3f", rate);
  }
  return buffer;
}

int terminal_columns() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col >= 20) return size.ws_col;
  return 100;
}

}  // namespace

std::string format_duration(double seconds) {
  char buffer[32];
  seconds = std::max(0.0, seconds);
  if (seconds < 60) {
    std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buffer, sizeof buffer, "%dm%02ds", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%dh%02dm", static_cast<int>(seconds) / 3600,
                  (static_cast<int>(seconds) % 3600) / 60);
  }
  return buffer;
}

double progress_eta_seconds(const ProgressState& state) {
  if (state.done >= state.total) return 0.0;
  if (state.rate <= 0.0) return -1.0;
  return static_cast<double>(state.total - state.done) / state.rate;
}

std::string progress_bar_line(const ProgressState& state, int columns) {
  std::string counts = std::to_string(state.done) + "/" + std::to_string(state.total);
  if (!state.unit.empty()) counts += " " + state.unit;
  double eta = progress_eta_seconds(state);
  std::string tail = " " + bar_cells(state.done, state.total) + " " + counts + "  " +
                     (state.rate > 0 ? format_rate(state.rate) + "/s" : "-/s") + "  ETA " +
                     (eta < 0 ? std::string("?") : format_duration(eta)) + "  [" +
                     format_duration(state.elapsed_seconds) + "]";
  // The label gives way first: the numbers are what a watcher needs.
  int room = columns - 1 - display_width(tail);
  std::string stage = state.stage;
  if (display_width(stage) > room) stage = room > 3 ? cut_to_width(stage, room - 1) + "…" : "";
  return cut_to_width(stage + tail, columns - 1);
}

std::string progress_plain_line(const ProgressState& state) {
  std::string unit = state.unit.empty() ? "" : " " + state.unit;
  std::string line = state.stage + ": " + std::to_string(state.done) + "/" + std::to_string(state.total) + unit;
  if (state.total > 0) {
    line += " (" + std::to_string(static_cast<int>(100.0 * static_cast<double>(state.done) / state.total)) + "%)";
  }
  if (state.rate > 0) line += ", " + format_rate(state.rate) + (unit.empty() ? " /s" : unit + "/s");
  double eta = progress_eta_seconds(state);
  if (state.done < state.total) line += ", ETA " + (eta < 0 ? std::string("?") : format_duration(eta));
  return line + ", elapsed " + format_duration(state.elapsed_seconds);
}

Progress::Progress(bool quiet)
    : Progress(quiet ? Mode::Quiet : (::isatty(STDERR_FILENO) == 1 ? Mode::LiveBar : Mode::PlainLines), stderr) {}

Progress::Progress(Mode mode, std::FILE* stream) : mode_(mode), stream_(stream), start_(Clock::now()) {
  stage_start_ = stage_first_seen_ = last_activity_ = start_;
  last_print_ = start_;
}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void Progress::begin_stage(const std::string& stage, int64_t done, Clock::time_point now) {
  stage_ = stage;
  stage_printed_ = false;
  // The stage's work began when the previous activity ended: stages run back to back.
  stage_start_ = last_activity_;
  stage_first_seen_ = now;
  stage_first_done_ = done;
}

double Progress::stage_rate(int64_t done, Clock::time_point now) const {
  // Prefer the rate measured between updates of this stage; with a single update, fall back to
  // the time since the stage began (which may include set-up such as loading the model).
  double since_first = std::chrono::duration<double>(now - stage_first_seen_).count();
  if (done > stage_first_done_ && since_first > 0) return static_cast<double>(done - stage_first_done_) / since_first;
  double since_start = std::chrono::duration<double>(now - stage_start_).count();
  return done > 0 && since_start > 0 ? static_cast<double>(done) / since_start : 0.0;
}

bool Progress::due(int64_t done, int64_t total, Clock::time_point now) const {
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  bool stage_end = done >= total;
  if (mode_ == Mode::LiveBar) return stage_end || since_print >= kLiveInterval;
  // Logs: a line every few seconds, plus the closing line of a stage that already had one, so
  // short stages (e.g. each greedy candidate) do not flood the log.
  return since_print >= kPlainInterval || (stage_end && stage_printed_);
}

void Progress::update(const std::string& stage, int64_t done, int64_t total, const std::string& detail) {
  if (mode_ == Mode::Quiet) return;
  const Clock::time_point now = Clock::now();
  if (stage != stage_) begin_stage(stage, done, now);
  const bool print = due(done, total, now);
  const ProgressState state{stage, done, total, detail, stage_rate(done, now), elapsed_seconds()};
  last_activity_ = now;
  if (!print) return;
  last_print_ = now;
  stage_printed_ = true;
  if (mode_ == Mode::LiveBar) {
    std::fprintf(stream_, "\r\033[K%s", progress_bar_line(state, terminal_columns()).c_str());
    line_open_ = true;
  } else {
    std::fprintf(stream_, "%s\n", progress_plain_line(state).c_str());
  }
  std::fflush(stream_);
}

void Progress::message(const std::string& text) {
  if (mode_ == Mode::Quiet) return;
  finish();
  std::fprintf(stream_, "%s\n", text.c_str());
  std::fflush(stream_);
  last_activity_ = Clock::now();
}

void Progress::finish() {
  if (!line_open_) return;
  std::fputs("\r\033[K", stream_);
  std::fflush(stream_);
  line_open_ = false;
}

}  // namespace indexcache
