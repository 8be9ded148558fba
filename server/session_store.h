// Durable sessions (--session_dir): every session is a snapshot file
// (docs/snapshot.md) that is rewritten after its requests end, so a crash
// (SIGKILL, OOM kill, node loss) loses at most the turns that ended in the
// last save interval; a clean shutdown writes every session after the drain.
//
// Layout: each running server owns `<dir>/<replica>/` (replica: host name
// and pid) and holds an exclusive flock on its `lock` file for as long as it
// lives. At start a server adopts every replica directory whose lock it can
// take (its server is gone, cleanly or not) and any `*.mcsnap` left at the
// top level (older servers): it imports the sessions, moves their files into
// its own directory, and removes the emptied one. Replicas sharing one
// volume each adopt a dead replica's sessions exactly once (the lock
// decides), and never touch a live one's. A snapshot that is refused
// (damaged, another model, no room) is kept as `*.mcsnap.rejected` in the
// adopter's directory and logged; the server starts anyway.
//
// A session's file is `<session id>.mcsnap`, an owner's '/' written as "%2F"
// (engine/owner.h). Files are written to a temporary name, fsync'ed and
// renamed, so a reader never sees a partial one; a file stays until a newer
// one replaces it or its session is deleted.
//
// Thread-compatible: the saver thread (session_saver.h) and main's shutdown
// path call it one at a time.
#ifndef MCSERVE_SERVER_SESSION_STORE_H_
#define MCSERVE_SERVER_SESSION_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/engine.h"

namespace mcserve {

struct SaveStats {
  int saved = 0;
  int removed = 0;
  int failed = 0;
  int64_t bytes = 0;
};

class SessionStore {
 public:
  // Creates `dir` and this server's directory in it, and takes its lock.
  static absl::StatusOr<std::unique_ptr<SessionStore>> Open(const std::string& dir);
  ~SessionStore();  // releases the lock (the directory stays, for the next start)
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // Adopts what servers that are gone left behind (see above).
  absl::Status Restore(engine::Engine& engine);
  // Writes every session that changed since it was last written and is not
  // busy, and removes the files of sessions that are gone.
  SaveStats SaveChanged(engine::Engine& engine);
  // The same, where a busy session is an error too (shutdown, after the
  // drain, when none should be). The first error, if any.
  absl::Status SaveAll(engine::Engine& engine);

  const std::string& own_dir() const { return own_; }

 private:
  SessionStore(std::string dir, std::string own, int lock_fd)
      : dir_(std::move(dir)), own_(std::move(own)), lock_fd_(lock_fd) {}
  SaveStats Save(engine::Engine& engine, bool all, absl::Status* first_error);
  // Imports the `*.mcsnap` files of `from` into the engine, moving each into
  // this server's directory.
  void Adopt(engine::Engine& engine, const std::string& from, int& restored, int& rejected);

  const std::string dir_;
  const std::string own_;
  const int lock_fd_;
  std::map<std::string, uint64_t> written_;  // session id -> version on disk
};

}  // namespace mcserve

#endif  // MCSERVE_SERVER_SESSION_STORE_H_
