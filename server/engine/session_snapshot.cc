#include "server/engine/session_snapshot.h"

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

// Reads tensors of fixed shapes off the payload in order.
class PayloadReader {
 public:
  explicit PayloadReader(absl::string_view bytes) : bytes_(bytes) {}
  absl::StatusOr<at::Tensor> Take(at::IntArrayRef shape, at::ScalarType type) {
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
    const size_t n = static_cast<size_t>(t.numel() * t.element_size());
    if (bytes_.size() < n) return Invalid("payload shorter than its header says");
    std::memcpy(t.data_ptr(), bytes_.data(), n);
    bytes_.remove_prefix(n);
    return t;
  }
  size_t left() const { return bytes_.size(); }

 private:
  absl::string_view bytes_;
};

struct OnlineSpec {
  std::string name;
  std::vector<int64_t> shape;
  at::ScalarType dtype;
};

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

absl::StatusOr<SessionSnapshot> DecodeSnapshot(absl::string_view b) {
  if (b.size() < sizeof(kMagic) + 12 || std::memcmp(b.data(), kMagic, sizeof(kMagic)) != 0) {
    return Invalid("wrong magic bytes (expected a file written by ExportSession)");
  }
  const uint32_t version = GetU32(b, 8);
  if (version != 1 && version != kSnapshotVersion) {
    return Invalid(absl::StrCat("format version ", version, " is not supported (this server reads ",
                                kSnapshotVersion, ")"));
  }
  const uint32_t stored = GetU32(b, b.size() - 4);
  const uint32_t actual = Crc32cExtend(0, b.data(), b.size() - 4);
  if (stored != actual) {
    return Invalid(
        absl::StrFormat("checksum mismatch (stored %08x, computed %08x): damaged or "
                        "truncated",
                        stored, actual));
  }
  const uint32_t hlen = GetU32(b, 12);
  if (16 + static_cast<size_t>(hlen) + 4 > b.size()) return Invalid("header length out of range");
  SessionSnapshot s;
  try {
    const nlohmann::json h = nlohmann::json::parse(b.substr(16, hlen));
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
    const int64_t n = h.at("num_checkpoints").get<int64_t>();
    if (s.n_layers < 1 || s.n_heads < 1 || s.head_dim < 1 || s.value_dim < 1 || s.ckpt_rows < 1 ||
        s.ckpt_rows > (1 << 20) || s.value_dim > (1 << 20) || n < 0 || s.position < 0 ||
        n > (1 << 24)) {
      return Invalid("header sizes out of range");
    }
    const int64_t L = s.n_layers, H = s.n_heads, d = s.head_dim;
    absl::StatusOr<std::vector<OnlineSpec>> specs = OnlineSpecs(version, h, L, H, d);
    if (!specs.ok()) return specs.status();
    PayloadReader r(b.substr(16 + hlen, b.size() - 20 - hlen));
    absl::StatusOr<at::Tensor> t;
    for (const OnlineSpec& spec : *specs) {
      t = r.Take(spec.shape, spec.dtype);
      if (!t.ok()) return t.status();
      s.online.push_back({spec.name, *t});
    }
    const at::ScalarType ct = model::CkptScalarType(s.ckpt_dtype);
    for (int64_t i = 0; i < n; ++i) {
      t = r.Take({L, H, s.ckpt_rows, s.value_dim}, ct);
      if (!t.ok()) return t.status();
      s.ckpt_states.push_back(*t);
      t = r.Take({L, H, d}, at::kFloat);
      if (!t.ok()) return t.status();
      s.ckpt_summary.push_back(*t);
      t = r.Take({1}, at::kFloat);
      if (!t.ok()) return t.status();
      s.usefulness.push_back(t->item<float>());
    }
    if (r.left() != 0) return Invalid("payload longer than its header says");
  } catch (const std::exception& e) {
    return Invalid(absl::StrCat("bad header: ", e.what()));
  }
  return s;
}

absl::StatusOr<size_t> SnapshotDeclaredSize(absl::string_view b) {
  constexpr size_t kFixed = sizeof(kMagic) + 8;  // magic, version, header length
  if (b.size() < sizeof(kMagic)) {
    if (std::memcmp(b.data(), kMagic, b.size()) != 0) {
      return Invalid("wrong magic bytes (expected a file written by ExportSession)");
    }
    return 0;
  }
  if (std::memcmp(b.data(), kMagic, sizeof(kMagic)) != 0) {
    return Invalid("wrong magic bytes (expected a file written by ExportSession)");
  }
  if (b.size() < kFixed) return 0;
  const uint32_t version = GetU32(b, 8);
  if (version != 1 && version != kSnapshotVersion) {
    return Invalid(absl::StrCat("format version ", version, " is not supported (this server reads ",
                                kSnapshotVersion, ")"));
  }
  const uint32_t hlen = GetU32(b, 12);
  if (hlen > (1u << 24)) return Invalid("header length out of range");
  if (b.size() < kFixed + hlen) return 0;
  try {
    const nlohmann::json h = nlohmann::json::parse(b.substr(kFixed, hlen));
    const int64_t L = h.at("n_layers").get<int64_t>(), H = h.at("n_heads").get<int64_t>();
    const int64_t d = h.at("head_dim").get<int64_t>();
    const int64_t dv = h.contains("value_dim") ? h.at("value_dim").get<int64_t>() : d;
    const int64_t rows = h.contains("ckpt_rows") ? h.at("ckpt_rows").get<int64_t>() : d;
    const int64_t n = h.at("num_checkpoints").get<int64_t>();
    absl::StatusOr<model::CkptDtype> dt =
        model::ParseCkptDtype(h.at("checkpoint_dtype").get<std::string>());
    if (!dt.ok()) return Invalid(dt.status().message());
    for (int64_t v : {L, H, d, dv, rows}) {
      if (v < 1 || v > (1 << 20)) return Invalid("header sizes out of range");
    }
    if (n < 0 || n > (1 << 24)) return Invalid("header sizes out of range");
    absl::StatusOr<std::vector<OnlineSpec>> specs = OnlineSpecs(version, h, L, H, d);
    if (!specs.ok()) return specs.status();
    double bytes = static_cast<double>(kFixed + hlen + 4);
    for (const OnlineSpec& spec : *specs) {
      double numel = 1;
      for (int64_t x : spec.shape) numel *= static_cast<double>(x);
      bytes += numel * static_cast<double>(c10::elementSize(spec.dtype));
    }
    const double elem = *dt == model::CkptDtype::kBFloat16 ? 2 : 4;
    bytes += static_cast<double>(n) * (static_cast<double>(L * H * rows) * dv * elem +
                                       static_cast<double>(L * H * d) * 4 + 4);
    if (bytes > 1e18) return Invalid("declared size out of range");
    return static_cast<size_t>(bytes);
  } catch (const std::exception& e) {
    return Invalid(absl::StrCat("bad header: ", e.what()));
  }
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
