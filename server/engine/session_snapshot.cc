#include "server/engine/session_snapshot.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/model/cache_tensors.h"
#include "server/util/crc32c.h"

namespace mcserve::engine {
namespace {

constexpr char kMagic[8] = {'M', 'C', 'S', 'N', 'A', 'P', '\r', '\n'};

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t GetU32(absl::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(b[at + i])} << (8 * i);
  return v;
}

void PutTensor(std::string& out, const at::Tensor& t) {
  const at::Tensor c = t.cpu().contiguous();
  out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("not a valid session snapshot: ", what));
}

using OnlineSpec = SnapshotOnlineSpec;

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name) {
  for (at::ScalarType t : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
    if (name == c10::toString(t)) return t;
  }
  return Invalid(absl::StrCat("unknown online-state dtype '", name, "'"));
}

// The online tensors a snapshot's payload starts with.
absl::StatusOr<std::vector<OnlineSpec>> OnlineSpecs(uint32_t version, const nlohmann::json& h,
                                                    int64_t L, int64_t H, int64_t d) {
  if (version == 1) {
    return std::vector<OnlineSpec>{{"memory", {L, H, d, d}, at::kFloat},
                                   {"key_sum", {L, H, d}, at::kFloat}};
  }
  std::vector<OnlineSpec> specs;
  for (const nlohmann::json& o : h.at("online")) {
    OnlineSpec spec;
    spec.name = o.at("name").get<std::string>();
    spec.shape = o.at("shape").get<std::vector<int64_t>>();
    absl::StatusOr<at::ScalarType> dt = ParseDtype(o.at("dtype").get<std::string>());
    if (!dt.ok()) return dt.status();
    spec.dtype = *dt;
    int64_t numel = 1;
    for (int64_t n : spec.shape) {
      if (n < 1 || n > (1 << 24)) return Invalid("online-state shape out of range");
      numel *= n;
      if (numel > (int64_t{1} << 34)) return Invalid("online-state shape out of range");
    }
    specs.push_back(std::move(spec));
  }
  if (specs.size() > 64) return Invalid("too many online-state tensors");
  return specs;
}

}  // namespace

std::string EncodeSnapshot(const SessionSnapshot& s) {
  nlohmann::json h;
  h["session_id"] = s.session_id;
  h["model_fingerprint"] = absl::StrFormat("%016x", s.model_fingerprint);
  h["n_layers"] = s.n_layers;
  h["n_heads"] = s.n_heads;
  h["head_dim"] = s.head_dim;
  h["value_dim"] = s.value_dim > 0 ? s.value_dim : s.head_dim;
  h["ckpt_rows"] = s.ckpt_rows > 0 ? s.ckpt_rows : s.head_dim;
  h["segment_length"] = s.segment_length;
  h["checkpoint_dtype"] = std::string(model::CkptDtypeName(s.ckpt_dtype));
  h["position"] = s.position;
  h["pending_token"] = s.pending_token;
  h["num_checkpoints"] = s.ckpt_states.size();
  h["lossy"] = s.eviction.lossy;
  h["offloaded"] = s.eviction.offloaded;
  h["fetched"] = s.eviction.fetched;
  h["dropped"] = s.eviction.dropped;
  h["merged"] = s.eviction.merged;
  nlohmann::json online = nlohmann::json::array();
  for (const NamedTensor& t : s.online) {
    online.push_back({{"name", t.name},
                      {"shape", t.tensor.sizes().vec()},
                      {"dtype", std::string(c10::toString(t.tensor.scalar_type()))}});
  }
  h["online"] = online;
  const std::string header = h.dump();

  std::string out(kMagic, sizeof(kMagic));
  PutU32(out, kSnapshotVersion);
  PutU32(out, static_cast<uint32_t>(header.size()));
  out += header;
  for (const NamedTensor& t : s.online) PutTensor(out, t.tensor);
  for (size_t i = 0; i < s.ckpt_states.size(); ++i) {
    PutTensor(out, s.ckpt_states[i]);
    PutTensor(out, s.ckpt_summary[i]);
    const float u = s.usefulness[i];
    out.append(reinterpret_cast<const char*>(&u), sizeof(u));
  }
  PutU32(out, Crc32cExtend(0, out.data(), out.size()));
  return out;
}

absl::Status SnapshotDecoder::Fail(absl::Status s) {
  error_ = s;
  return s;
}

absl::Status SnapshotDecoder::ParseHeader() {
  try {
    const nlohmann::json h = nlohmann::json::parse(absl::string_view(head_).substr(16));
    SessionSnapshot& s = snap_;
    s.session_id = h.at("session_id").get<std::string>();
    s.model_fingerprint =
        std::stoull(h.at("model_fingerprint").get<std::string>(), nullptr, /*base=*/16);
    s.n_layers = h.at("n_layers").get<int32_t>();
    s.n_heads = h.at("n_heads").get<int32_t>();
    s.head_dim = h.at("head_dim").get<int32_t>();
    // Written since fla models (dk != dv); square heads before.
    s.value_dim = h.contains("value_dim") ? h.at("value_dim").get<int32_t>() : s.head_dim;
    // Written since deep memories (2*E*d rows); head_dim rows before.
    s.ckpt_rows = h.contains("ckpt_rows") ? h.at("ckpt_rows").get<int32_t>() : s.head_dim;
    s.segment_length = h.at("segment_length").get<int32_t>();
    absl::StatusOr<model::CkptDtype> dt =
        model::ParseCkptDtype(h.at("checkpoint_dtype").get<std::string>());
    if (!dt.ok()) return Invalid(dt.status().message());
    s.ckpt_dtype = *dt;
    s.position = h.at("position").get<int64_t>();
    s.pending_token = h.at("pending_token").get<int32_t>();
    s.eviction.lossy = h.at("lossy").get<bool>();
    s.eviction.offloaded = h.at("offloaded").get<int64_t>();
    s.eviction.fetched = h.at("fetched").get<int64_t>();
    s.eviction.dropped = h.at("dropped").get<int64_t>();
    s.eviction.merged = h.at("merged").get<int64_t>();
    checkpoints_ = h.at("num_checkpoints").get<int64_t>();
    for (int64_t v : {int64_t{s.n_layers}, int64_t{s.n_heads}, int64_t{s.head_dim},
                      int64_t{s.value_dim}, int64_t{s.ckpt_rows}}) {
      if (v < 1 || v > (1 << 20)) return Invalid("header sizes out of range");
    }
    if (checkpoints_ < 0 || checkpoints_ > (1 << 24) || s.position < 0) {
      return Invalid("header sizes out of range");
    }
    absl::StatusOr<std::vector<OnlineSpec>> specs =
        OnlineSpecs(version_, h, s.n_layers, s.n_heads, s.head_dim);
    if (!specs.ok()) return specs.status();
    specs_ = *std::move(specs);
  } catch (const std::exception& e) {
    return Invalid(absl::StrCat("bad header: ", e.what()));
  }
  auto size_of = [](const Piece& p) {
    double n = static_cast<double>(c10::elementSize(p.dtype));
    for (int64_t x : p.shape) n *= static_cast<double>(x);
    return n;
  };
  double bytes = static_cast<double>(head_.size() + 4);
  for (size_t i = 0; i < specs_.size(); ++i) bytes += size_of(PieceAt(i));
  double per_checkpoint = 0;
  for (size_t i = 0; i < 3; ++i) per_checkpoint += size_of(PieceAt(specs_.size() + i));
  bytes += per_checkpoint * static_cast<double>(checkpoints_);
  if (bytes > 1e18) return Invalid("declared size out of range");
  total_ = static_cast<size_t>(bytes);
  return absl::OkStatus();
}

SnapshotDecoder::Piece SnapshotDecoder::PieceAt(size_t i) const {
  if (i < specs_.size()) return {specs_[i].shape, specs_[i].dtype};
  const SessionSnapshot& s = snap_;
  const int64_t L = s.n_layers, H = s.n_heads;
  switch ((i - specs_.size()) % 3) {
    case 0:
      return {{L, H, s.ckpt_rows, s.value_dim}, model::CkptScalarType(s.ckpt_dtype)};
    case 1:
      return {{L, H, s.head_dim}, at::kFloat};
    default:
      return {{1}, at::kFloat};
  }
}

void SnapshotDecoder::TakePayload(absl::string_view b) {
  while (!b.empty()) {
    if (!piece_.defined()) {
      // Allocated as its first byte arrives: memory follows the bytes received.
      const Piece p = PieceAt(piece_index_);
      piece_ = at::empty(p.shape, at::TensorOptions().dtype(p.dtype));
      piece_offset_ = 0;
    }
    const size_t size = static_cast<size_t>(piece_.numel() * piece_.element_size());
    const size_t n = std::min(b.size(), size - piece_offset_);
    std::memcpy(static_cast<char*>(piece_.data_ptr()) + piece_offset_, b.data(), n);
    piece_offset_ += n;
    b.remove_prefix(n);
    if (piece_offset_ < size) continue;
    if (piece_index_ < specs_.size()) {
      snap_.online.push_back({specs_[piece_index_].name, piece_});
    } else {
      switch ((piece_index_ - specs_.size()) % 3) {
        case 0:
          snap_.ckpt_states.push_back(piece_);
          break;
        case 1:
          snap_.ckpt_summary.push_back(piece_);
          break;
        default:
          snap_.usefulness.push_back(piece_.item<float>());
      }
    }
    piece_ = at::Tensor();
    ++piece_index_;
  }
}

absl::Status SnapshotDecoder::Feed(absl::string_view b) {
  if (!error_.ok()) return error_;
  while (!b.empty()) {
    if (total_ == 0) {  // still in the fixed part or the header
      const size_t want = head_.size() < 16 ? 16 : 16 + hlen_;
      const size_t n = std::min(b.size(), want - head_.size());
      head_.append(b.data(), n);
      b.remove_prefix(n);
      if (std::memcmp(head_.data(), kMagic, std::min(head_.size(), sizeof(kMagic))) != 0) {
        return Fail(Invalid("wrong magic bytes (expected a file written by ExportSession)"));
      }
      if (head_.size() < 16) continue;
      if (head_.size() == 16) {
        version_ = GetU32(head_, 8);
        if (version_ != 1 && version_ != kSnapshotVersion) {
          return Fail(Invalid(absl::StrCat("format version ", version_,
                                           " is not supported (this server reads ",
                                           kSnapshotVersion, ")")));
        }
        hlen_ = GetU32(head_, 12);
        if (hlen_ == 0 || hlen_ > (1u << 24)) return Fail(Invalid("header length out of range"));
        continue;
      }
      if (head_.size() < 16 + hlen_) continue;
      if (absl::Status st = ParseHeader(); !st.ok()) return Fail(st);
      crc_ = Crc32cExtend(0, head_.data(), head_.size());
      received_ = head_.size();
      continue;
    }
    const size_t payload_end = total_ - 4;
    if (received_ < payload_end) {
      const size_t n = std::min(b.size(), payload_end - received_);
      crc_ = Crc32cExtend(crc_, b.data(), n);
      TakePayload(b.substr(0, n));
      received_ += n;
      b.remove_prefix(n);
      continue;
    }
    const size_t n = std::min(b.size(), total_ - received_);
    if (n == 0) return Fail(Invalid("payload longer than its header says"));
    trailer_.append(b.data(), n);
    received_ += n;
    b.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionSnapshot> SnapshotDecoder::Finish() {
  if (!error_.ok()) return error_;
  if (head_.size() < sizeof(kMagic)) {
    return Invalid("wrong magic bytes (expected a file written by ExportSession)");
  }
  if (total_ == 0) return Invalid("truncated inside the header");
  if (received_ < total_) {
    return Invalid(absl::StrCat("payload shorter than its header says (", received_, " of ", total_,
                                " bytes: truncated?)"));
  }
  const uint32_t stored = GetU32(trailer_, 0);
  if (stored != crc_) {
    return Invalid(absl::StrFormat(
        "checksum mismatch (stored %08x, computed %08x): damaged or truncated", stored, crc_));
  }
  error_ = absl::FailedPreconditionError("snapshot already taken");
  return std::move(snap_);
}

absl::StatusOr<SessionSnapshot> DecodeSnapshot(absl::string_view b) {
  SnapshotDecoder d;
  if (absl::Status s = d.Feed(b); !s.ok()) return s;
  return d.Finish();
}

absl::StatusOr<size_t> SnapshotDeclaredSize(absl::string_view prefix) {
  SnapshotDecoder d;
  // Only the header is needed: feed no further than its end.
  const size_t hlen = prefix.size() >= 16 ? GetU32(prefix, 12) : 0;
  const size_t head = prefix.size() >= 16 ? std::min(prefix.size(), 16 + hlen) : prefix.size();
  if (absl::Status s = d.Feed(prefix.substr(0, head)); !s.ok()) return s;
  return d.declared_size();
}

uint64_t ModelFingerprint(const model::ModelConfig& config,
                          const std::vector<at::Tensor>& weights) {
  const std::string json = config.ToJson();
  const uint32_t hi = Crc32cExtend(0, json.data(), json.size());
  uint32_t lo = 0;
  for (const at::Tensor& w : weights) {
    const at::Tensor c = w.cpu().contiguous();
    lo = Crc32cExtend(lo, c.data_ptr(), static_cast<size_t>(c.numel() * c.element_size()));
  }
  return uint64_t{hi} << 32 | lo;
}

}  // namespace mcserve::engine
