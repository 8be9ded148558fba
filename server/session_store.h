// Session persistence across restarts: on drain every session is written to
// a directory as a snapshot (docs/snapshot.md), and on start the sessions
// found there are imported. Blocking; called from main's thread.
#ifndef MCSERVE_SERVER_SESSION_STORE_H_
#define MCSERVE_SERVER_SESSION_STORE_H_

#include <string>

#include "absl/status/status.h"
#include "server/engine/engine.h"

namespace mcserve {

// Writes `<dir>/<session id>.mcsnap` for every session (atomically: a
// temporary file, then a rename). Returns the first error; sessions that
// could be saved are saved.
absl::Status SaveSessions(engine::Engine& engine, const std::string& dir);

// Imports every `<dir>/*.mcsnap` and removes it once the session lives in
// the engine. A snapshot that is refused (damaged, another model, no room)
// is renamed to `*.mcsnap.rejected` and logged, so it is kept but not
// retried; the server starts anyway. Creates `dir` if missing.
absl::Status RestoreSessions(engine::Engine& engine, const std::string& dir);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_SESSION_STORE_H_
