#include "server/util/fault_injector.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace mcserve {

void FaultInjector::MaybeFail(absl::string_view site, absl::string_view tag) {
  {
    absl::MutexLock l(&mu_);
    bool hit = false;
    for (Armed& a : armed_) {
      if (a.left > 0 && a.site == site && (a.tag.empty() || a.tag == tag)) {
        --a.left;
        ++fired_;
        hit = true;
        break;
      }
    }
    if (!hit) return;
  }
  throw std::runtime_error(absl::StrCat("injected fault at ", site, " (", tag, ")"));
}

void FaultInjector::Arm(std::string site, std::string tag, int32_t times) {
  absl::MutexLock l(&mu_);
  armed_.push_back({std::move(site), std::move(tag), times});
}

int64_t FaultInjector::fired() const {
  absl::MutexLock l(&mu_);
  return fired_;
}

}  // namespace mcserve
