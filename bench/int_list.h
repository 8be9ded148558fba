// Parses a benchmark flag like "1,8,64,256" (entries that are not integers
// are skipped).
#ifndef MCSERVE_BENCH_INT_LIST_H_
#define MCSERVE_BENCH_INT_LIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace mcserve::bench {

inline std::vector<int64_t> IntList(const std::string& csv) {
  std::vector<int64_t> out;
  for (absl::string_view p : absl::StrSplit(csv, ',')) {
    int64_t v = 0;
    if (absl::SimpleAtoi(p, &v)) out.push_back(v);
  }
  return out;
}

}  // namespace mcserve::bench

#endif  // MCSERVE_BENCH_INT_LIST_H_
