// Session snapshots: a session's whole MC state as bytes, for ExportSession
// / ImportSession and for persisting sessions across a restart.
//
// Format, version 2 (integers little-endian):
//   magic     8 bytes  "MCSNAP\r\n"
//   version   u32      2
//   hlen      u32      length of the header
//   header    hlen     JSON: session_id, model_fingerprint (hex), n_layers,
//                      n_heads, head_dim, value_dim (absent: head_dim),
//                      ckpt_rows (absent: head_dim),
//                      segment_length, checkpoint_dtype,
//                      position, pending_token, num_checkpoints, eviction
//                      counts and the lossy mark, and "online": the online
//                      state's tensors as [{name, shape, dtype}] in the
//                      model's StateLayout order (shape with L first)
//   payload            the online tensors in that order, then per
//                      checkpoint, oldest first: its state [L, H, R, dv] in
//                      checkpoint_dtype, summary [L, H, d] f32, usefulness f32
//                      (d = head_dim, dv = value_dim, R = ckpt_rows: d, or a
//                      deep memory's 2*E*d)
//   crc       u32      CRC-32C of every byte before it
// Version 1 (still read) had no "online" list: its online state was S
// [L, H, d, d] f32 ("memory") then the key sum [L, H, d] f32 ("key_sum").
// A reader rejects a wrong magic, an unknown version, a bad checksum, a
// header that does not parse, and a payload whose size does not match the
// header, each with a message saying which.
#ifndef MCSERVE_SERVER_ENGINE_SESSION_SNAPSHOT_H_
#define MCSERVE_SERVER_ENGINE_SESSION_SNAPSHOT_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/model/config.h"
#include "server/pool/eviction.h"

namespace mcserve::engine {

inline constexpr uint32_t kSnapshotVersion = 2;

struct NamedTensor {
  std::string name;
  at::Tensor tensor;  // CPU
};

// One online-state tensor a snapshot's payload starts with.
struct SnapshotOnlineSpec {
  std::string name;
  std::vector<int64_t> shape;
  at::ScalarType dtype;
};

struct SessionSnapshot {
  std::string session_id;
  uint64_t model_fingerprint = 0;
  int32_t n_layers = 0, n_heads = 0, head_dim = 0, segment_length = 0;
  int32_t value_dim = 0;  // per head: states are head_dim x value_dim (0: square)
  int32_t ckpt_rows = 0;  // rows of a checkpoint per head (0: head_dim)
  model::CkptDtype ckpt_dtype = model::CkptDtype::kFloat32;
  int64_t position = 0;
  int32_t pending_token = 0;
  pool::EvictionStats eviction;
  // CPU tensors.
  std::vector<NamedTensor> online;       // the model's StateLayout, [L, ...] each
  std::vector<at::Tensor> ckpt_states;   // [L, H, R, dv] in ckpt_dtype
  std::vector<at::Tensor> ckpt_summary;  // [L, H, d] float32
  std::vector<float> usefulness;
};

std::string EncodeSnapshot(const SessionSnapshot& s);

// Decodes a snapshot from its bytes as they arrive (ImportSession's chunks),
// never holding more than the tensors made so far: each is allocated when
// its first byte comes, and the checksum is computed on the way. A wrong
// magic, version or header is refused by the Feed that shows it; the
// declared size is known once the header is in, so a caller can refuse a
// stream too large for it before the payload.
class SnapshotDecoder {
 public:
  // INVALID_ARGUMENT as soon as the bytes cannot be a snapshot (then for
  // every later call too).
  absl::Status Feed(absl::string_view bytes);
  // Total bytes the snapshot declares, once its header is in; 0 before.
  size_t declared_size() const { return total_; }
  int64_t declared_checkpoints() const { return checkpoints_; }
  // The snapshot, once every byte has been fed: INVALID_ARGUMENT for a
  // short stream or a checksum mismatch. Once only.
  absl::StatusOr<SessionSnapshot> Finish();

 private:
  struct Piece {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
  };
  absl::Status ParseHeader();
  // The i-th tensor of the payload: the online ones, then per checkpoint
  // its state, summary and usefulness.
  Piece PieceAt(size_t i) const;
  void TakePayload(absl::string_view bytes);
  absl::Status Fail(absl::Status s);

  absl::Status error_;
  std::string head_;  // magic, version, length, header
  uint32_t version_ = 0;
  uint32_t hlen_ = 0;
  size_t total_ = 0;  // declared, once the header is parsed
  size_t received_ = 0;
  uint32_t crc_ = 0;
  std::string trailer_;
  int64_t checkpoints_ = 0;
  std::vector<SnapshotOnlineSpec> specs_;
  SessionSnapshot snap_;
  size_t piece_index_ = 0;
  size_t piece_offset_ = 0;
  at::Tensor piece_;  // being filled
};
// INVALID_ARGUMENT for bytes that are not a snapshot or are damaged.
absl::StatusOr<SessionSnapshot> DecodeSnapshot(absl::string_view bytes);

// The total size a snapshot declares, from its first bytes: 0 while `prefix`
// does not yet hold the whole header, INVALID_ARGUMENT as soon as it shows a
// wrong magic, version or header (so an import can refuse at its first
// chunk instead of buffering the whole stream).
absl::StatusOr<size_t> SnapshotDeclaredSize(absl::string_view prefix);

// Identifies a model's function: config and weights. Snapshots only load
// into a server whose model has the same fingerprint.
uint64_t ModelFingerprint(const model::ModelConfig& config, const std::vector<at::Tensor>& weights);

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_SESSION_SNAPSHOT_H_
