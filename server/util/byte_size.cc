#include "server/util/byte_size.h"

#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mcserve {

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  static const std::pair<absl::string_view, int64_t> kUnits[] = {
      {"KiB", int64_t{1} << 10},
      {"MiB", int64_t{1} << 20},
      {"GiB", int64_t{1} << 30},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"B", 1},
  };
  absl::string_view number = absl::StripAsciiWhitespace(text);
  int64_t unit = 1;
  for (const auto& [suffix, scale] : kUnits) {
    if (number.size() > suffix.size() && number.substr(number.size() - suffix.size()) == suffix) {
      number = absl::StripTrailingAsciiWhitespace(number.substr(0, number.size() - suffix.size()));
      unit = scale;
      break;
    }
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(number, &n) || n < 0 || n > std::numeric_limits<int64_t>::max() / unit) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a byte size (examples: 4096, 64KiB, 256MiB, 2GiB)"));
  }
  return n * unit;
}

}  // namespace mcserve
