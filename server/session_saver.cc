#include "server/session_saver.h"

#include <exception>

#include "server/util/log.h"

namespace mcserve {

SessionSaver::SessionSaver(SessionStore* store, engine::Engine* engine, absl::Duration interval)
    : store_(store), engine_(engine), interval_(interval), thread_([this] { Loop(); }) {}

SessionSaver::~SessionSaver() { Stop(); }

void SessionSaver::Stop() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SessionSaver::Loop() {
  auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
  while (true) {
    {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping), interval_);
      if (stop_) return;
    }
    try {
      const SaveStats st = store_->SaveChanged(*engine_);
      if (st.saved + st.removed + st.failed > 0) {
        MCSERVE_LOG(kDebug, "sessions saved")
            .Kv("sessions", st.saved)
            .Kv("removed", st.removed)
            .Kv("failed", st.failed)
            .Kv("bytes", st.bytes);
      }
    } catch (const std::exception& e) {  // never out of the thread
      MCSERVE_LOG(kError, "session saver").Kv("error", e.what());
    }
  }
}

}  // namespace mcserve
