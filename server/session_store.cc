#include "server/session_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/util/await.h"
#include "server/util/log.h"

namespace mcserve {
namespace {

namespace fs = std::filesystem;
constexpr char kSuffix[] = ".mcsnap";

absl::Status WriteAtomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::Status SaveSessions(engine::Engine& engine, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::vector<std::string> ids =
      Await<std::vector<std::string>>([&](auto cb) { engine.ListSessions(cb); });
  absl::Status first;
  int saved = 0;
  int64_t bytes_total = 0;
  for (const std::string& id : ids) {
    absl::StatusOr<std::string> bytes =
        Await<absl::StatusOr<std::string>>([&](auto cb) { engine.ExportSession(id, cb); });
    absl::Status st =
        bytes.ok() ? WriteAtomically(fs::path(dir) / (id + kSuffix), *bytes) : bytes.status();
    if (!st.ok()) {
      MCSERVE_LOG(kError, "session not saved").Kv("session", id).Kv("error", st.ToString());
      if (first.ok()) first = st;
      continue;
    }
    ++saved;
    bytes_total += static_cast<int64_t>(bytes->size());
  }
  MCSERVE_LOG(kInfo, "sessions saved")
      .Kv("dir", dir)
      .Kv("sessions", saved)
      .Kv("failed", static_cast<int>(ids.size()) - saved)
      .Kv("bytes", bytes_total);
  return first;
}

absl::Status RestoreSessions(engine::Engine& engine, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  int restored = 0, rejected = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || !name.ends_with(kSuffix)) continue;
    // Claim the file first: replicas sharing one volume each restore a
    // session exactly once (rename is atomic; the loser skips it).
    const fs::path claimed = e.path().string() + ".restoring." + std::to_string(::getpid());
    fs::rename(e.path(), claimed, ec);
    if (ec) continue;
    std::ifstream in(claimed, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    absl::StatusOr<engine::SessionInfo> info = Await<absl::StatusOr<engine::SessionInfo>>(
        [&](auto cb) { engine.ImportSession("", buf.str(), cb); });
    if (info.ok()) {
      fs::remove(claimed, ec);
      ++restored;
      continue;
    }
    ++rejected;
    MCSERVE_LOG(kError, "session not restored")
        .Kv("file", e.path().string())
        .Kv("error", info.status().ToString());
    fs::rename(claimed, e.path().string() + ".rejected", ec);
  }
  MCSERVE_LOG(kInfo, "sessions restored")
      .Kv("dir", dir)
      .Kv("sessions", restored)
      .Kv("rejected", rejected);
  return absl::OkStatus();
}

}  // namespace mcserve
