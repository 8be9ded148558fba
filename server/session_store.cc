#include "server/session_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/util/await.h"
#include "server/util/log.h"

namespace mcserve {
namespace {

namespace fs = std::filesystem;
constexpr char kSuffix[] = ".mcsnap";
constexpr char kLock[] = "lock";
constexpr char kReplicaPrefix[] = "replica-";

std::string FileName(const std::string& id) {
  return absl::StrCat(absl::StrReplaceAll(id, {{"/", "%2F"}}), kSuffix);
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Writes `bytes` to `path` durably: a temporary file, fsync, rename.
absl::Status WriteAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno("cannot write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = Errno("cannot sync", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename", tmp);
  return absl::OkStatus();
}

// An exclusive flock on `<dir>/lock`, or -1 when another process holds it.
int TryLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / kLock).string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string ReplicaName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "host");
  std::string h = host;
  for (char& c : h) {
    if (c == '/' || c == '.') c = '_';
  }
  return absl::StrCat(kReplicaPrefix, h, "-", ::getpid());
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SessionStore>> SessionStore::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string own = (fs::path(dir) / ReplicaName()).string();
  fs::create_directories(own, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", own, ": ", ec.message()));
  const int fd = TryLock(own);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot lock ", own));
  return std::unique_ptr<SessionStore>(new SessionStore(dir, own, fd));
}

SessionStore::~SessionStore() { ::close(lock_fd_); }

void SessionStore::Adopt(engine::Engine& engine, const std::string& from, int& restored,
                         int& rejected) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(from, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || !name.ends_with(kSuffix)) continue;
    const fs::path target = fs::path(own_) / name;
    // Take the file first (atomic): at the top level, replicas starting
    // together each take a file exactly once.
    const fs::path taken = target.string() + ".adopting";
    fs::rename(e.path(), taken, ec);
    if (ec) continue;
    absl::StatusOr<engine::SessionInfo> info = Await<absl::StatusOr<engine::SessionInfo>>(
        [&](auto cb) { engine.ImportSession("", ReadFile(taken), cb); });
    if (info.ok()) {
      fs::rename(taken, fs::path(own_) / FileName(info->id), ec);
      written_[info->id] = info->version;
      ++restored;
      continue;
    }
    ++rejected;
    MCSERVE_LOG(kError, "session not restored")
        .Kv("file", e.path().string())
        .Kv("error", info.status().ToString());
    fs::rename(taken, target.string() + ".rejected", ec);
  }
}

absl::Status SessionStore::Restore(engine::Engine& engine) {
  int restored = 0, rejected = 0, replicas = 0;
  Adopt(engine, dir_, restored, rejected);  // files of servers before replica directories
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !name.starts_with(kReplicaPrefix) || e.path() == fs::path(own_)) {
      continue;
    }
    const int fd = TryLock(e.path().string());
    if (fd < 0) continue;  // a live server's
    ++replicas;
    Adopt(engine, e.path().string(), restored, rejected);
    // Keep anything left (rejected files, leftovers) beside ours; then the
    // directory goes, its lock last.
    for (const fs::directory_entry& f : fs::directory_iterator(e.path(), ec)) {
      const std::string fname = f.path().filename().string();
      if (fname == kLock || fname.ends_with(".tmp")) continue;
      fs::rename(f.path(), fs::path(own_) / fname, ec);
    }
    fs::remove_all(e.path(), ec);
    ::close(fd);
  }
  MCSERVE_LOG(kInfo, "sessions restored")
      .Kv("dir", dir_)
      .Kv("from_replicas", replicas)
      .Kv("sessions", restored)
      .Kv("rejected", rejected);
  return absl::OkStatus();
}

SaveStats SessionStore::Save(engine::Engine& engine, bool all, absl::Status* first_error) {
  SaveStats st;
  const std::vector<engine::SessionInfo> sessions =
      Await<std::vector<engine::SessionInfo>>([&](auto cb) { engine.DescribeSessions(cb); });
  std::set<std::string> live;
  for (const engine::SessionInfo& s : sessions) {
    live.insert(s.id);
    auto it = written_.find(s.id);
    if (it != written_.end() && it->second == s.version) continue;  // unchanged
    if (s.busy && !all) continue;  // changing: the next round takes it
    absl::StatusOr<std::string> bytes =
        Await<absl::StatusOr<std::string>>([&](auto cb) { engine.ExportSession(s.id, cb); });
    absl::Status w = bytes.ok()
                         ? WriteAtomically((fs::path(own_) / FileName(s.id)).string(), *bytes)
                         : bytes.status();
    if (!w.ok()) {
      // A session that became busy or went meanwhile is not an error.
      if (!all && (w.code() == absl::StatusCode::kFailedPrecondition ||
                   w.code() == absl::StatusCode::kNotFound)) {
        continue;
      }
      ++st.failed;
      MCSERVE_LOG(kError, "session not saved").Kv("session", s.id).Kv("error", w.ToString());
      if (first_error != nullptr && first_error->ok()) *first_error = w;
      continue;
    }
    written_[s.id] = s.version;
    ++st.saved;
    st.bytes += static_cast<int64_t>(bytes->size());
  }
  for (auto it = written_.begin(); it != written_.end();) {
    if (live.count(it->first) != 0) {
      ++it;
      continue;
    }
    std::error_code ec;
    fs::remove(fs::path(own_) / FileName(it->first), ec);
    ++st.removed;
    it = written_.erase(it);
  }
  return st;
}

SaveStats SessionStore::SaveChanged(engine::Engine& engine) { return Save(engine, false, nullptr); }

absl::Status SessionStore::SaveAll(engine::Engine& engine) {
  absl::Status first;
  const SaveStats st = Save(engine, true, &first);
  MCSERVE_LOG(kInfo, "sessions saved")
      .Kv("dir", own_)
      .Kv("sessions", st.saved)
      .Kv("removed", st.removed)
      .Kv("failed", st.failed)
      .Kv("bytes", st.bytes);
  return first;
}

}  // namespace mcserve
