// UTF-8 validity (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
#ifndef MCSERVE_SERVER_UTIL_UTF8_H_
#define MCSERVE_SERVER_UTIL_UTF8_H_

#include "absl/strings/string_view.h"

namespace mcserve {

bool IsValidUtf8(absl::string_view s);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_UTF8_H_
