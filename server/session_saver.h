// Keeps --session_dir current while the server runs: every interval, writes
// the sessions whose history changed since their file was written
// (SessionStore::SaveChanged) on a thread of its own. What a crash can lose
// is what changed in the last interval (plus the request in flight).
#ifndef MCSERVE_SERVER_SESSION_SAVER_H_
#define MCSERVE_SERVER_SESSION_SAVER_H_

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/session_store.h"

namespace mcserve {

class SessionSaver {
 public:
  // `store` and `engine` must outlive the saver. `interval` > 0.
  SessionSaver(SessionStore* store, engine::Engine* engine, absl::Duration interval);
  ~SessionSaver();  // Stop()
  // Ends the thread after the round in progress, if any.
  void Stop();

 private:
  void Loop();

  SessionStore* const store_;
  engine::Engine* const engine_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace mcserve

#endif  // MCSERVE_SERVER_SESSION_SAVER_H_
