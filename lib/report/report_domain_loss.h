// Loss of a chosen pattern against the all-F baseline on each calibration domain, for the
// search report (computed by the app wing: app/domain_loss.h). Measured on the held-out split where the data has one (bundled sets do), since
// the calibration data is what the search optimised; plain files have none, and the report then
// says that the calibration data was used.
#pragma once

#include <string>
#include <vector>


namespace indexcache {

struct DomainLoss {
  std::string domain;  // "all" for every sequence together
  std::string split;   // "heldout" or "calibration"
  int64_t sequences = 0;
  int64_t predictions = 0;
  double baseline_loss = 0.0;  // all F
  double plan_loss = 0.0;
  double relative_change() const { return baseline_loss > 0 ? plan_loss / baseline_loss - 1.0 : 0.0; }
};

struct DomainLossReport {
  DomainLoss all;
  std::vector<DomainLoss> domains;  // in the order the data names them
  std::string evaluated_on;         // "heldout", "calibration" or "mixed"
  std::string note;                 // why the calibration data was used, when it was
};


}  // namespace indexcache
