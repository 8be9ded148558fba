// --help for the project's binaries. absl's --help lists only the flags of
// the binary's "main" file (<program>.cc, <program>-main.cc or
// <program>_main.cc, by the program's name): mcserve's flags live in
// server_options.cc and mcserve-cli's in cli.cc, so --help found none.
// SetFlagsHelp names the files whose flags --help and --helpshort list.
#ifndef MCSERVE_SERVER_UTIL_FLAGS_HELP_H_
#define MCSERVE_SERVER_UTIL_FLAGS_HELP_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mcserve {

// Sets the usage message and makes --help and --helpshort list the flags
// defined in `flag_files`: source paths relative to the repository root
// (e.g. "server/server_options.cc"), which --help also prints them under.
// Call once, before absl::ParseCommandLine.
void SetFlagsHelp(absl::string_view usage, std::vector<std::string> flag_files);

// True when `filename` (as absl reports a flag's file) is one of
// `flag_files` or ends in "/" followed by one of them.
bool IsFlagFile(absl::string_view filename, const std::vector<std::string>& flag_files);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_FLAGS_HELP_H_
