// libFuzzer target: session snapshots as ImportSession receives them
// (engine::SnapshotDecoder, fed in two pieces as a stream would be) and as a
// restore reads them (DecodeSnapshot, SnapshotDeclaredSize). Any input must
// give a snapshot or a status: no crash, leak or sanitizer report.
#include <cstddef>
#include <cstdint>

#include "server/engine/session_snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view b(reinterpret_cast<const char*>(data), size);
  mcserve::engine::SnapshotDecoder d;
  const size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  if (d.Feed(b.substr(0, cut)).ok() && d.Feed(b.substr(cut)).ok()) (void)d.Finish();
  (void)mcserve::engine::DecodeSnapshot(b);
  (void)mcserve::engine::SnapshotDeclaredSize(b);
  return 0;
}
