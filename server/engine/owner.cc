#include "server/engine/owner.h"

#include "absl/strings/str_cat.h"

namespace mcserve::engine {

namespace {

bool Valid(absl::string_view s, bool at_sign) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-' || (at_sign && c == '@');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsValidName(absl::string_view name) { return Valid(name, false); }
bool IsValidOwner(absl::string_view owner) { return Valid(owner, true); }

bool IsValidId(absl::string_view id) {
  const size_t slash = id.find(kOwnerSeparator);
  if (slash == absl::string_view::npos) return IsValidName(id);
  return IsValidOwner(id.substr(0, slash)) && IsValidName(id.substr(slash + 1));
}

absl::string_view OwnerOf(absl::string_view id) {
  const size_t slash = id.find(kOwnerSeparator);
  return slash == absl::string_view::npos ? absl::string_view() : id.substr(0, slash);
}

absl::string_view NameOf(absl::string_view id) {
  const size_t slash = id.find(kOwnerSeparator);
  return slash == absl::string_view::npos ? id : id.substr(slash + 1);
}

std::string Qualify(absl::string_view owner, absl::string_view name) {
  if (owner.empty()) return std::string(name);
  return absl::StrCat(owner, std::string(1, kOwnerSeparator), name);
}

}  // namespace mcserve::engine
