// Issue 16, items 1 and 7: output paths that are not regular files, and reports written as a
// whole. A symbolic link is written through (the link stays a link); a FIFO, a device and "-"
// are written directly where a tool writes a file once (--json, --export-out); a socket or a
// directory is refused with exit 2 naming the path; the plan, journal and reports are never
// written to a device. A report that cannot be written leaves no partial folder, keeps an older
// report, and the search says that the plan was written (exit 3).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "atomic_file.h"
#include "catch_shim.h"
#include "error.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// The small golden model (6 layers) and its data: a search takes about a second.
std::vector<std::string> small_search(const std::string& out) {
  const std::string model = golden_dir("dsv32_default");
  return {"--model", model, "--data", model + "/data.jsonl", "--keep-layers", "2", "--out", out};
}

// A plan made by a real search, for the export tests.
std::string make_plan(const TempDir& temp) {
  const std::string plan = temp.file("made.yaml");
  std::vector<std::string> arguments = small_search(plan);
  arguments.push_back("--no-report");
  const ToolResult search = run_tool("indexcache-calibrate", arguments);
  INFO(search.err);
  REQUIRE(search.status == 0);
  return plan;
}

mode_t file_type(const std::string& path) {
  struct stat info {};
  REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & S_IFMT;
}

// Entries of `directory` whose name holds ".tmp." (temporaries left behind).
std::vector<std::string> temporaries_in(const std::string& directory) {
  std::vector<std::string> found;
  for (const std::string& name : list_directory(directory)) {
    if (name.find(".tmp.") != std::string::npos) found.push_back(name);
  }
  return found;
}

// Reads a FIFO on a thread until its writer closes it.
class FifoReader {
 public:
  explicit FifoReader(std::string path)
      : path_(std::move(path)), thread_([this] {
          const int fd = ::open(path_.c_str(), O_RDONLY);  // waits for the writer
          char buffer[4096];
          for (ssize_t got; (got = ::read(fd, buffer, sizeof buffer)) > 0;) text_.append(buffer, static_cast<std::size_t>(got));
          ::close(fd);
        }) {}
  // Joins the thread; a writer that never came is stood in for (an open and close), so a
  // failing tool cannot hang the test.
  std::string finish() {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
    thread_.join();
    return text_;
  }

 private:
  std::string path_;
  std::string text_;
  std::thread thread_;
};

// A UNIX socket bound at `path` (the descriptor stays open while the test runs).
int bind_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address {};
  address.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof address.sun_path);
  std::copy(path.begin(), path.end(), address.sun_path);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

}  // namespace

TEST_CASE("a symbolic link as --out is written through to its target and stays a link", "[tools][output-files]") {
  TempDir temp;
  make_directories(temp.file("plans"));
  const std::string target = temp.file("plans/real.yaml");
  write_text(target, "old plan\n");
  const std::string link = temp.file("plan.yaml");
  REQUIRE(::symlink("plans/real.yaml", link.c_str()) == 0);  // relative: resolved from the link's folder
  std::vector<std::string> arguments = small_search(link);
  arguments.push_back("--no-report");
  const ToolResult search = run_tool("indexcache-calibrate", arguments);
  INFO(search.err);
  REQUIRE(search.status == 0);
  CHECK(file_type(link) == S_IFLNK);
  const std::string written = read_text(target);
  CHECK(written.find("format: ") != std::string::npos);
  CHECK(written.find("old plan") == std::string::npos);
  CHECK(temporaries_in(temp.file("plans")).empty());
  CHECK(temporaries_in(temp.path()).empty());
  CHECK_FALSE(path_exists(link + ".journal"));

  SECTION("a dangling link creates its target; a chain of links is followed to the end") {
    const std::string export_link = temp.file("export.json");
    REQUIRE(::symlink("second-link.json", export_link.c_str()) == 0);
    REQUIRE(::symlink("plans/exported.json", temp.file("second-link.json").c_str()) == 0);
    const ToolResult exported = run_tool("indexcache-calibrate", {"--plan", link, "--export", "vllm", "--export-out", export_link});
    INFO(exported.err);
    REQUIRE(exported.status == 0);
    CHECK(file_type(export_link) == S_IFLNK);
    CHECK(file_type(temp.file("second-link.json")) == S_IFLNK);
    CHECK(read_text(temp.file("plans/exported.json")).find("index_topk_pattern") != std::string::npos);
  }
  SECTION("a link loop is refused with exit 2 naming the path") {
    const std::string loop = temp.file("loop.json");
    REQUIRE(::symlink("loop.json", loop.c_str()) == 0);
    const ToolResult exported = run_tool("indexcache-calibrate", {"--plan", link, "--export", "vllm", "--export-out", loop});
    CHECK(exported.status == 2);
    CHECK(exported.error_lines() == 1);
    CHECK(exported.err.find(loop + ": cannot be used: too many levels of symbolic links") != std::string::npos);
    CHECK(file_type(loop) == S_IFLNK);
  }
}

TEST_CASE("a FIFO as --export-out is written to directly and read by another thread", "[tools][output-files]") {
  TempDir temp;
  const std::string plan = make_plan(temp);
  const std::string fifo = temp.file("export.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  FifoReader reader(fifo);
  const ToolResult exported = run_tool("indexcache-calibrate", {"--plan", plan, "--export", "vllm", "--export-out", fifo});
  const std::string received = reader.finish();
  INFO(exported.err);
  CHECK(exported.status == 0);
  const nlohmann::json overrides = nlohmann::json::parse(received);
  CHECK(overrides.at("use_index_cache") == true);
  CHECK(overrides.at("index_topk_pattern").get<std::string>().size() == 6);
  CHECK(file_type(fifo) == S_IFIFO);
  CHECK(temporaries_in(temp.path()).empty());

  SECTION("--json to a FIFO too (an evaluation)") {
    FifoReader json_reader(fifo);
    const std::string model = golden_dir("dsv32_default");
    const ToolResult eval = run_tool("indexcache-calibrate",
                                     {"--model", model, "--data", model + "/data.jsonl", "--eval", "FSFSFS", "--json", fifo});
    const std::string json = json_reader.finish();
    INFO(eval.err);
    CHECK(eval.status == 0);
    CHECK(nlohmann::json::parse(json).at("evaluations").size() == 1);
    CHECK(file_type(fifo) == S_IFIFO);
  }
  SECTION("a FIFO as --out is refused at once (exit 2), without waiting for a reader") {
    std::vector<std::string> arguments = small_search(fifo);
    const ToolResult search = run_tool("indexcache-calibrate", arguments);
    CHECK(search.status == 2);
    CHECK(search.error_lines() == 1);
    CHECK(search.err.find(fifo + ": is a FIFO, not a regular file") != std::string::npos);
    CHECK(file_type(fifo) == S_IFIFO);
    CHECK_FALSE(path_exists(fifo + ".journal"));
  }
}

TEST_CASE("'-' means standard output for --export-out and --json", "[tools][output-files]") {
  TempDir temp;
  const std::string plan = make_plan(temp);
  const bool dash_existed = path_exists("-");
  const ToolResult exported = run_tool("indexcache-calibrate", {"--plan", plan, "--export", "sglang", "--export-out", "-"});
  INFO(exported.err);
  CHECK(exported.status == 0);
  CHECK(nlohmann::json::parse(exported.out).at("index_topk_pattern").get<std::string>().size() == 6);

  // --json -: stdout is the JSON alone; the table a person reads goes to stderr.
  const std::string model = golden_dir("dsv32_default");
  const ToolResult eval = run_tool("indexcache-calibrate",
                                   {"--model", model, "--data", model + "/data.jsonl", "--eval", "FSFSFS", "--json", "-"});
  INFO(eval.err);
  CHECK(eval.status == 0);
  const nlohmann::json json = nlohmann::json::parse(eval.out);
  CHECK(json.at("evaluations").size() == 1);
  CHECK(json.at("evaluations")[0].at("pattern") == "FSFSFS");
  CHECK(json.contains("baseline_loss"));
  CHECK(eval.err.find("FSFSFS") != std::string::npos);
  CHECK(path_exists("-") == dash_existed);  // no file named "-" was made

  // The plan needs a real file: its journal and report are written next to it.
  const ToolResult search = run_tool("indexcache-calibrate", small_search("-"));
  CHECK(search.status == 2);
  CHECK(search.err.find("--out: '-' (standard output) cannot hold a layer plan") != std::string::npos);
  CHECK(path_exists("-") == dash_existed);
  CHECK_FALSE(path_exists("-.journal"));
}

TEST_CASE("a socket or a directory as an output is refused with exit 2 naming it", "[tools][output-files][bad-input]") {
  TempDir temp;
  const std::string plan = make_plan(temp);
  const std::string socket_path = temp.file("s.sock");
  const int socket_fd = bind_socket(socket_path);
  make_directories(temp.file("folder"));
  const std::string folder_link = temp.file("folder-link.yaml");
  REQUIRE(::symlink("folder", folder_link.c_str()) == 0);
  struct Case {
    std::vector<std::string> arguments;
    std::string expected;
  };
  const std::string model = golden_dir("dsv32_default");
  const std::vector<Case> cases = {
      {{"--plan", plan, "--export", "vllm", "--export-out", socket_path}, socket_path + ": is a socket"},
      {small_search(socket_path), socket_path + ": is a socket"},
      {{"--model", model, "--data", model + "/data.jsonl", "--eval", "FSFSFS", "--json", socket_path},
       socket_path + ": is a socket"},
      {{"--plan", plan, "--export", "vllm", "--export-out", temp.file("folder")}, temp.file("folder") + ": is a directory"},
      {small_search(folder_link), folder_link + ": is a directory (" + temp.path() + "/folder, where the symbolic link points)"},
  };
  for (const Case& c : cases) {
    const ToolResult result = run_tool("indexcache-calibrate", c.arguments);
    INFO(c.arguments.back() << ": " << result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.find(c.expected) != std::string::npos);
  }
  const ToolResult overlap = run_tool("indexcache-overlap", {"--model", model, "--data", model + "/data.jsonl",
                                                             "--json", socket_path});
  CHECK(overlap.status == 2);
  CHECK(overlap.err.find(socket_path + ": is a socket") != std::string::npos);
  // Nothing was replaced, and nothing was left next to them.
  CHECK(file_type(socket_path) == S_IFSOCK);
  CHECK(file_type(temp.file("folder")) == S_IFDIR);
  CHECK(list_directory(temp.file("folder")).empty());
  CHECK(file_type(folder_link) == S_IFLNK);
  CHECK(temporaries_in(temp.path()).empty());
  CHECK_FALSE(path_exists(socket_path + ".journal"));
  ::close(socket_fd);
}

TEST_CASE("device nodes: /dev/null takes an export, /dev/full fails cleanly, neither is replaced", "[tools][output-files]") {
  if (::geteuid() != 0) {
    WARN("skipped: not root, so no device nodes can be made (mknod); the FIFO, symlink and socket tests cover the rest");
    return;
  }
  // Private nodes with the numbers of /dev/null (1, 3) and /dev/full (1, 7) in a scratch folder:
  // the same devices, but a tool that replaced them (as before this fix) harms no system file.
  TempDir temp;
  const std::string null_device = temp.file("null"), full_device = temp.file("full");
  if (::mknod(null_device.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0 ||
      ::mknod(full_device.c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) {
    WARN("skipped: mknod is not permitted here (" << std::strerror(errno) << ")");
    return;
  }
  const std::string plan = make_plan(temp);
  const ToolResult to_null = run_tool("indexcache-calibrate", {"--plan", plan, "--export", "vllm", "--export-out", null_device});
  INFO(to_null.err);
  CHECK(to_null.status == 0);

  const ToolResult to_full = run_tool("indexcache-calibrate", {"--plan", plan, "--export", "vllm", "--export-out", full_device});
  CHECK(to_full.status == 2);
  CHECK(to_full.error_lines() == 1);
  CHECK(to_full.err.find(full_device + ": cannot write: No space left on device") != std::string::npos);

  // The plan must be a regular file: refused before any model work, whether null or full.
  for (const std::string& device : {null_device, full_device}) {
    const ToolResult search = run_tool("indexcache-calibrate", small_search(device));
    INFO(search.err);
    CHECK(search.status == 2);
    CHECK(search.err.find(device + ": is a character device, not a regular file") != std::string::npos);
    CHECK_FALSE(path_exists(device + ".journal"));
  }
  for (const std::string& device : {null_device, full_device}) {
    CHECK(file_type(device) == S_IFCHR);
    struct stat info {};
    REQUIRE(::stat(device.c_str(), &info) == 0);
    CHECK(major(info.st_rdev) == 1);
  }
  CHECK(temporaries_in(temp.path()).empty());
}

TEST_CASE("check_writable and write_file_atomically apply the same rules", "[output-files]") {
  TempDir temp;
  const std::string fifo = temp.file("f");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_AS(check_writable(fifo), InputError);
  CHECK_THROWS_AS(write_file_atomically(fifo, "x"), InputError);
  CHECK_NOTHROW(check_output_file(fifo));  // a stream is fine where a file is written once
  CHECK_THROWS_AS(check_writable(temp.path()), InputError);
  CHECK_THROWS_AS(check_output_file(temp.path()), InputError);
  CHECK_NOTHROW(check_output_file("-"));
  CHECK_THROWS_AS(check_writable(temp.file("missing/x.yaml")), InputError);
  // A regular target keeps its permission bits when it is replaced.
  const std::string kept = temp.file("kept.txt");
  write_text(kept, "a");
  REQUIRE(::chmod(kept.c_str(), 0600) == 0);
  write_file_atomically(kept, "b");
  struct stat info {};
  REQUIRE(::stat(kept.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  CHECK(read_text(kept) == "b");
}

TEST_CASE("a report that cannot be written leaves no partial folder, keeps the older one, and says the plan was written",
          "[tools][output-files][crash]") {
  TempDir temp;
  const std::string plan = temp.file("plan.yaml");
  const std::string report = temp.file("plan-report");
  const ToolResult first = run_tool("indexcache-calibrate", small_search(plan));
  INFO(first.err);
  REQUIRE(first.status == 0);
  const std::string old_html = read_text(report + "/report.html");
  const int64_t plan_bytes = file_size(plan);
  const int64_t html_bytes = file_size(report + "/report.html");
  int64_t other_bytes = 0;  // the largest report file besides report.html (written before it)
  for (const std::string& name : list_directory(report)) {
    if (name != "report.html") other_bytes = std::max(other_bytes, file_size(join_path(report, name)));
  }
  // A file-size limit the plan, the journal and the SVGs/JSON fit under, but report.html not:
  // the report fails at its last file, after the others were written (RLIMIT_FSIZE, EFBIG).
  const int64_t limit = std::max(plan_bytes, other_bytes) + 1024;
  INFO("plan " << plan_bytes << " B, largest other report file " << other_bytes << " B, report.html " << html_bytes << " B");
  REQUIRE(html_bytes > limit);
  const std::string prefix = "prlimit --fsize=" + std::to_string(limit) + ":" + std::to_string(limit);

  SECTION("an older report stays as it was") {
    write_text(plan, "older plan\n");
    const ToolResult failed = run_tool("indexcache-calibrate", small_search(plan), prefix);
    INFO(failed.err);
    CHECK(failed.status == 3);
    CHECK(failed.error_lines() == 1);
    CHECK(failed.err.find("error: " + plan + " WAS written; the report was NOT: " + report +
                          "/report.html: cannot write: File too large") != std::string::npos);
    CHECK(failed.err.find("no partial report folder is left") != std::string::npos);
    CHECK(read_text(plan).find("format: ") != std::string::npos);  // the new plan
    CHECK(read_text(report + "/report.html") == old_html);
    CHECK(list_directory(report).size() == 5);
    CHECK(temporaries_in(temp.path()).empty());
  }
  SECTION("no report folder appears when there was none") {
    remove_tree(report);
    const ToolResult failed = run_tool("indexcache-calibrate", small_search(plan), prefix);
    INFO(failed.err);
    CHECK(failed.status == 3);
    CHECK(failed.err.find("the report was NOT") != std::string::npos);
    CHECK_FALSE(path_exists(report));
    CHECK(temporaries_in(temp.path()).empty());
    CHECK(path_exists(plan));
  }
  SECTION("a report that can be written replaces the older one as a whole") {
    write_text(report + "/pattern.svg", "stale");
    const ToolResult again = run_tool("indexcache-calibrate", small_search(plan));
    INFO(again.err);
    CHECK(again.status == 0);
    CHECK(read_text(report + "/pattern.svg").find("<svg") != std::string::npos);
    CHECK(list_directory(report).size() == 5);
    CHECK(temporaries_in(temp.path()).empty());
  }
  SECTION("a folder that holds other files keeps them; the report's files are put in one by one") {
    const std::string own = temp.file("mine");
    make_directories(own);
    write_text(own + "/notes.txt", "keep me");
    std::vector<std::string> arguments = small_search(plan);
    arguments.insert(arguments.end(), {"--report-dir", own});
    const ToolResult into = run_tool("indexcache-calibrate", arguments);
    INFO(into.err);
    CHECK(into.status == 0);
    CHECK(read_text(own + "/notes.txt") == "keep me");
    CHECK(path_exists(own + "/report.html"));
    CHECK(list_directory(own).size() == 6);
    // ...and when it fails, none of them is.
    remove_tree(own + "/report.html");
    const ToolResult failed = run_tool("indexcache-calibrate", arguments, prefix);
    CHECK(failed.status == 3);
    CHECK_FALSE(path_exists(own + "/report.html"));
    CHECK(list_directory(own).size() == 5);  // notes.txt and the four files of the first run
  }
}

TEST_CASE("an overlap report that cannot be written leaves nothing (exit 2)", "[tools][output-files][crash]") {
  TempDir temp;
  const std::string model = golden_dir("dsv32_default");
  const std::string out = temp.file("overlap");
  const std::vector<std::string> arguments = {"--model", model, "--data", model + "/data.jsonl", "--out-dir", out};
  const ToolResult first = run_tool("indexcache-overlap", arguments);
  INFO(first.err);
  REQUIRE(first.status == 0);
  int64_t other_bytes = 0;
  for (const std::string& name : list_directory(out)) {
    if (name != "report.html") other_bytes = std::max(other_bytes, file_size(join_path(out, name)));
  }
  const int64_t limit = other_bytes + 1024;
  REQUIRE(file_size(out + "/report.html") > limit);
  remove_tree(out);
  const ToolResult failed =
      run_tool("indexcache-overlap", arguments, "prlimit --fsize=" + std::to_string(limit) + ":" + std::to_string(limit));
  INFO(failed.err);
  CHECK(failed.status == 2);
  CHECK(failed.error_lines() == 1);
  CHECK(failed.err.find(out + "/report.html: cannot write: File too large") != std::string::npos);
  CHECK_FALSE(path_exists(out));
  CHECK(temporaries_in(temp.path()).empty());
}
