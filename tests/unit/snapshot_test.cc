// The session snapshot format (docs/snapshot.md) on its own: round trip and
// each way a reader refuses bytes.
#include <gtest/gtest.h>

#include <cstring>

#include "server/engine/session_snapshot.h"
#include "server/model/cache_tensors.h"
#include "server/util/crc32c.h"

namespace mcserve::engine {
namespace {

SessionSnapshot Sample(int n_ckpts, model::CkptDtype dtype) {
  SessionSnapshot s;
  s.session_id = "user:42";
  s.model_fingerprint = 0x0123456789abcdefull;
  s.n_layers = 2;
  s.n_heads = 3;
  s.head_dim = 4;
  s.segment_length = 8;
  s.ckpt_dtype = dtype;
  s.position = 8 * n_ckpts + 5;
  s.pending_token = 77;
  s.eviction.offloaded = 3;
  s.eviction.fetched = 2;
  s.online = {{"memory", at::randn({2, 3, 4, 4})}, {"key_sum", at::randn({2, 3, 4})}};
  for (int i = 0; i < n_ckpts; ++i) {
    s.ckpt_states.push_back(at::randn({2, 3, 4, 4}).to(model::CkptScalarType(dtype)));
    s.ckpt_summary.push_back(at::randn({2, 3, 4}));
    s.usefulness.push_back(0.25f * static_cast<float>(i));
  }
  return s;
}

// Re-stamps the trailing checksum after an edit, so a test reaches the
// check behind it.
void Reseal(std::string& b) {
  const uint32_t crc = Crc32cExtend(0, b.data(), b.size() - 4);
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
}

TEST(SnapshotTest, RoundTripIsExact) {
  for (model::CkptDtype dtype : {model::CkptDtype::kFloat32, model::CkptDtype::kBFloat16}) {
    const SessionSnapshot a = Sample(3, dtype);
    absl::StatusOr<SessionSnapshot> b = DecodeSnapshot(EncodeSnapshot(a));
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->session_id, a.session_id);
    EXPECT_EQ(b->model_fingerprint, a.model_fingerprint);
    EXPECT_EQ(b->position, a.position);
    EXPECT_EQ(b->pending_token, a.pending_token);
    EXPECT_EQ(b->ckpt_dtype, dtype);
    EXPECT_EQ(b->eviction.offloaded, 3);
    ASSERT_EQ(b->online.size(), 2u);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(b->online[i].name, a.online[i].name);
      EXPECT_TRUE(at::equal(b->online[i].tensor, a.online[i].tensor));
    }
    ASSERT_EQ(b->ckpt_states.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(at::equal(b->ckpt_states[i], a.ckpt_states[i]));
      EXPECT_TRUE(at::equal(b->ckpt_summary[i], a.ckpt_summary[i]));
      EXPECT_EQ(b->usefulness[i], a.usefulness[i]);
    }
  }
}

// What an import checks at its first chunks: the size the header declares
// (0 until the header is complete), or an error as soon as the bytes are
// not a snapshot.
TEST(SnapshotTest, DeclaredSizeIsKnownOnceTheHeaderIsIn) {
  for (model::CkptDtype dtype : {model::CkptDtype::kFloat32, model::CkptDtype::kBFloat16}) {
    const std::string bytes = EncodeSnapshot(Sample(3, dtype));
    const uint32_t hlen = static_cast<uint8_t>(bytes[12]) | static_cast<uint8_t>(bytes[13]) << 8;
    for (size_t n : {size_t{0}, size_t{5}, size_t{16}, size_t{16} + hlen - 1}) {
      absl::StatusOr<size_t> s = SnapshotDeclaredSize(absl::string_view(bytes).substr(0, n));
      ASSERT_TRUE(s.ok()) << n << " " << s.status();
      EXPECT_EQ(*s, 0u) << n;
    }
    absl::StatusOr<size_t> full =
        SnapshotDeclaredSize(absl::string_view(bytes).substr(0, 16 + hlen));
    ASSERT_TRUE(full.ok()) << full.status();
    EXPECT_EQ(*full, bytes.size());
  }
  const std::string garbage(1 << 16, 'x');
  absl::StatusOr<size_t> g = SnapshotDeclaredSize(absl::string_view(garbage).substr(0, 3));
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("wrong magic"), std::string::npos) << g.status();
  std::string v9 = EncodeSnapshot(Sample(1, model::CkptDtype::kFloat32));
  v9[8] = 9;
  EXPECT_NE(SnapshotDeclaredSize(v9).status().message().find("format version 9"),
            std::string::npos);
}

// A stream decoded chunk by chunk, whatever the cuts, is the whole decode.
TEST(SnapshotTest, DecodingAsBytesArriveEqualsDecodingTheWhole) {
  const SessionSnapshot a = Sample(3, model::CkptDtype::kBFloat16);
  const std::string bytes = EncodeSnapshot(a);
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{16}, size_t{100}, bytes.size()}) {
    SnapshotDecoder d;
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      ASSERT_TRUE(d.Feed(absl::string_view(bytes).substr(at, chunk)).ok()) << chunk << " " << at;
    }
    EXPECT_EQ(d.declared_size(), bytes.size());
    EXPECT_EQ(d.declared_checkpoints(), 3);
    absl::StatusOr<SessionSnapshot> b = d.Finish();
    ASSERT_TRUE(b.ok()) << chunk << " " << b.status();
    EXPECT_EQ(b->session_id, a.session_id);
    EXPECT_EQ(b->position, a.position);
    ASSERT_EQ(b->ckpt_states.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(at::equal(b->ckpt_states[i], a.ckpt_states[i]));
      EXPECT_EQ(b->usefulness[i], a.usefulness[i]);
    }
    EXPECT_TRUE(at::equal(b->online[0].tensor, a.online[0].tensor));
  }
  // Refused at the chunk that shows it: a wrong first byte, a byte past the end.
  SnapshotDecoder bad;
  EXPECT_NE(bad.Feed("X").message().find("wrong magic"), std::string::npos);
  EXPECT_FALSE(bad.Feed("MCSNAP").ok());  // and for good
  SnapshotDecoder longer;
  EXPECT_TRUE(longer.Feed(bytes).ok());
  EXPECT_NE(longer.Feed("!").message().find("longer than its header"), std::string::npos);
  SnapshotDecoder cut;
  EXPECT_TRUE(cut.Feed(absl::string_view(bytes).substr(0, bytes.size() - 9)).ok());
  EXPECT_NE(cut.Finish().status().message().find("shorter than its header"), std::string::npos);
}

TEST(SnapshotTest, EachDamageGetsItsOwnMessage) {
  const std::string good = EncodeSnapshot(Sample(2, model::CkptDtype::kFloat32));
  auto message = [](const std::string& bytes) {
    absl::StatusOr<SessionSnapshot> s = DecodeSnapshot(bytes);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.status().message());
  };
  EXPECT_NE(message("MCSNAP").find("wrong magic"), std::string::npos);

  std::string v3 = good;
  v3[8] = 3;
  Reseal(v3);
  EXPECT_NE(message(v3).find("format version 3 is not supported"), std::string::npos);

  std::string flipped = good;
  flipped[good.size() - 10] ^= 0x20;
  EXPECT_NE(message(flipped).find("checksum mismatch"), std::string::npos);

  std::string short_payload = good;
  short_payload.erase(short_payload.size() - 40, 36);  // drop payload bytes, keep a crc slot
  Reseal(short_payload);
  EXPECT_NE(message(short_payload).find("shorter than its header"), std::string::npos);

  std::string bad_header = good;
  bad_header[16] = '[';  // the JSON header's opening brace
  Reseal(bad_header);
  EXPECT_NE(message(bad_header).find("bad header"), std::string::npos);
}

}  // namespace
}  // namespace mcserve::engine
