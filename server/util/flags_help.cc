#include "server/util/flags_help.h"

#include <memory>
#include <utility>

#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace mcserve {
namespace {

// The suffix of `filename` that is one of `flag_files`, or empty.
absl::string_view MatchedFlagFile(absl::string_view filename,
                                  const std::vector<std::string>& flag_files) {
  for (const std::string& f : flag_files) {
    if (filename == f) return filename;
    if (filename.size() > f.size() && absl::EndsWith(filename, f) &&
        filename[filename.size() - f.size() - 1] == '/') {
      return filename.substr(filename.size() - f.size());
    }
  }
  return {};
}

}  // namespace

bool IsFlagFile(absl::string_view filename, const std::vector<std::string>& flag_files) {
  return !MatchedFlagFile(filename, flag_files).empty();
}

void SetFlagsHelp(absl::string_view usage, std::vector<std::string> flag_files) {
  absl::SetProgramUsageMessage(usage);
  auto files = std::make_shared<const std::vector<std::string>>(std::move(flag_files));
  auto listed = [files](absl::string_view filename) { return IsFlagFile(filename, *files); };
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags = listed;
  config.contains_help_flags = listed;
  config.contains_helppackage_flags = listed;
  // Print a listed file by its repository path, not the build's absolute one.
  config.normalize_filename = [files](absl::string_view filename) {
    absl::string_view matched = MatchedFlagFile(filename, *files);
    if (!matched.empty()) return std::string(matched);
    while (absl::ConsumePrefix(&filename, "/")) {
    }
    return std::string(filename);  // absl's default: the path without leading slashes
  };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace mcserve
