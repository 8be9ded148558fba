// Test hook for failure paths: components that call LibTorch consult a
// FaultInjector at named sites and, when a fault is armed there, fail as
// LibTorch does (by throwing), so the tests exercise the real catch paths.
// Production code passes none.
//
// Sites: "state.allocate" (tag: the sequence's owner), "model.prefill"
// (tag: PrefillSeq::tag), "model.decode" (tag: "").
// Thread-safe.
#ifndef MCSERVE_SERVER_UTIL_FAULT_INJECTOR_H_
#define MCSERVE_SERVER_UTIL_FAULT_INJECTOR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace mcserve {

class FaultInjector {
 public:
  // Throws std::runtime_error when a fault armed for (`site`, `tag`) has
  // calls left; otherwise returns.
  void MaybeFail(absl::string_view site, absl::string_view tag);

  // The next `times` calls at `site` whose tag is `tag` ("": any tag) fail.
  void Arm(std::string site, std::string tag, int32_t times = 1);
  // Faults thrown so far.
  int64_t fired() const;

 private:
  struct Armed {
    std::string site, tag;
    int32_t left = 0;
  };
  mutable absl::Mutex mu_;
  std::vector<Armed> armed_ ABSL_GUARDED_BY(mu_);
  int64_t fired_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_FAULT_INJECTOR_H_
