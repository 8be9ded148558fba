// Reading a whole (small) text file, e.g. a config, with a NOT_FOUND status
// naming the path when it cannot be opened.
#ifndef MCSERVE_SERVER_UTIL_TEXT_FILE_H_
#define MCSERVE_SERVER_UTIL_TEXT_FILE_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace mcserve {

inline absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_TEXT_FILE_H_
