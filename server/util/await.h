// Blocking on an asynchronous call that answers through a callback (the
// engine's API), for callers that may block: main's thread, tests, tools.
#ifndef MCSERVE_SERVER_UTIL_AWAIT_H_
#define MCSERVE_SERVER_UTIL_AWAIT_H_

#include <optional>
#include <utility>

#include "absl/synchronization/notification.h"

namespace mcserve {

// Runs `call(callback)` and waits until the callback has run; returns the
// value it was given. Never call it on the thread that runs the callbacks.
template <typename T, typename Call>
T Await(Call call) {
  absl::Notification done;
  std::optional<T> out;
  call([&](T v) {
    out = std::move(v);
    done.Notify();
  });
  done.WaitForNotification();
  return *std::move(out);
}

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_AWAIT_H_
