// Where one part of the calibration set came from (data wing), as plans and reports record it.
#pragma once

#include <cstdint>
#include <string>

namespace indexcache {

struct DataSource {
  std::string spec;       // as given: a path, a bundled set name, or a YAML mix entry
  std::string path;       // the file actually read
  std::string domain;     // domain name (bundled set name, mix entry name, or file stem)
  double weight = 1.0;    // mix weight (1 when not a mix)
  std::string sha256;     // of the file's bytes, lowercase hex
  int64_t documents = 0;  // records/documents read
  int64_t tokens = 0;     // tokens contributed to the sequences used
  int64_t sequences = 0;  // sequences contributed
};

}  // namespace indexcache
