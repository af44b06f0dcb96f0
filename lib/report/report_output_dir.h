// The folder a report is written into: checked before any long work (so bad input fails in
// seconds and writes nothing), created only when the results are ready.
#pragma once

#include <string>

namespace indexcache {

// Throws InputError naming `option` and the folder when it could not be written: an existing
// folder must accept new files; a missing one needs its nearest existing parent to be a
// writable folder (it is created later, as with mkdir -p).
void check_output_directory(const std::string& directory, const std::string& option);

// Creates the folder and its missing parents. Throws InputError on failure.
void create_output_directory(const std::string& directory, const std::string& option);

}  // namespace indexcache
