// The folder a report is written into: checked before any long work (so bad input fails in
// seconds and writes nothing), and written as a whole once the results are ready, so that a
// failure (disk full, a file-size limit, a kill) never leaves a partial report folder.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace indexcache {

// Throws InputError naming `option` and the folder when it could not be written: an existing
// folder must accept new files; a missing one needs its nearest existing parent to be a
// writable folder (it is created later, as with mkdir -p).
void check_output_directory(const std::string& directory, const std::string& option);

// One report folder being written. Files go into a temporary folder, and commit() puts them in
// place:
// - a destination that does not exist yet, or an existing folder that holds nothing but files
//   of this kind of report (an older report): the temporary folder `<destination>.tmp.<pid>.X`
//   is made next to it, and commit() renames the old folder aside, renames the new one in and
//   removes the old one (atomic as far as POSIX allows: the destination is either the old or
//   the new report, and missing only between two renames);
// - an existing folder that also holds other files (`--out-dir .`, say), or whose parent takes
//   no new folder: the temporary folder is made inside it (`.indexcache-report.tmp.<pid>.X`),
//   and commit() renames each finished file over its namesake; the other files stay.
// A symbolic link as the destination is followed: the folder it points to is the one written.
// Until commit() nothing is visible at the destination; without commit() (an exception) the
// temporary folder and any parent folders made for it are removed again, so a failure leaves
// no partial folder and an older report unchanged. Temporaries of processes that no longer
// run (killed mid-write) are removed when the next report is started.
class ReportFolder {
 public:
  // Whether an entry name is one this kind of report writes (e.g. "report.html").
  using IsReportFile = std::function<bool(const std::string& name)>;

  // Creates the temporary folder. `option` names the folder in errors ("--out-dir").
  ReportFolder(std::string destination, std::string option, IsReportFile is_report_file);
  ~ReportFolder();
  ReportFolder(const ReportFolder&) = delete;
  ReportFolder& operator=(const ReportFolder&) = delete;

  // Writes file `name` of the report. Errors (InputError) name the file's final path.
  void write(const std::string& name, const std::string& contents);
  // Puts the written files in place (see above). Throws InputError when a rename fails; an
  // older report is then put back.
  void commit();
  // Where file `name` is once committed, as the user named the folder.
  std::string final_path(const std::string& name) const;

 private:
  void make_temporary_folder();
  void replace_destination();
  void move_files_into_destination();

  std::string destination_;  // as given (messages, final_path)
  std::string target_;       // destination_ with symbolic links followed
  std::string option_;
  IsReportFile is_report_file_;
  std::string temporary_;
  bool inside_ = false;  // the temporary folder is inside the destination (files moved one by one)
  bool committed_ = false;
  std::vector<std::string> names_;    // files written so far
  std::vector<std::string> created_;  // parent folders made for the destination, outermost first
};

}  // namespace indexcache
