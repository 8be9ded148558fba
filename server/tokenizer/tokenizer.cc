#include "server/tokenizer/tokenizer.h"

#include "absl/strings/str_cat.h"

namespace mcserve::tokenizer {

absl::Status CheckIds(absl::Span<const int32_t> ids, int32_t vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("ids[", i, "] = ", ids[i], " is not below vocab_size ", vocab_size));
    }
  }
  return absl::OkStatus();
}

}  // namespace mcserve::tokenizer
