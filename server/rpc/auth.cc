#include "server/rpc/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/util/byte_size.h"
#include "server/util/text_file.h"

namespace mcserve::rpc {
namespace {

std::array<unsigned char, 32> Digest(absl::string_view token) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

absl::StatusOr<Role> ParseRole(absl::string_view s) {
  if (s == "reader") return Role::kReader;
  if (s == "user") return Role::kUser;
  if (s == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", s, "' (expected reader, user or admin)"));
}

// "key=value" quota fields after the role.
absl::Status ParseQuota(absl::string_view field, QuotaOverrides& q) {
  const size_t eq = field.find('=');
  const absl::string_view key = field.substr(0, eq);
  const absl::string_view value = eq == absl::string_view::npos ? "" : field.substr(eq + 1);
  auto count = [&](std::optional<int32_t>& out) -> absl::Status {
    int32_t v = 0;
    if (!absl::SimpleAtoi(value, &v) || v < 0) {
      return absl::InvalidArgumentError(absl::StrCat(key, " must be a count >= 0"));
    }
    out = v;
    return absl::OkStatus();
  };
  if (key == "sessions") return count(q.sessions);
  if (key == "requests") return count(q.requests);
  if (key == "checkpoint_bytes") {
    absl::StatusOr<int64_t> v = ParseByteSize(value);
    if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", v.status().message()));
    q.checkpoint_bytes = *v;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown field '", field, "' (quotas: sessions=N requests=N checkpoint_bytes=SIZE)"));
}

}  // namespace

Role RequiredRole(Method m) {
  switch (m) {
    case Method::kGetModelInfo:
    case Method::kTokenize:
    case Method::kDetokenize:
      return Role::kReader;
    case Method::kGetServerStatus:
      return Role::kAdmin;
    default:
      return Role::kUser;
  }
}

absl::string_view RoleName(Role r) {
  switch (r) {
    case Role::kReader:
      return "reader";
    case Role::kUser:
      return "user";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

std::string TokenDigestHex(absl::string_view token) {
  const std::array<unsigned char, 32> d = Digest(token);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

absl::StatusOr<std::shared_ptr<const Authenticator>> Authenticator::Parse(absl::string_view text) {
  auto a = std::shared_ptr<Authenticator>(new Authenticator());
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [n](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("principals file line ", n, ": ", why));
    };
    if (f.size() < 4) {
      return bad("expected: token|cert NAME-OR-DIGEST PRINCIPAL ROLE [QUOTA=N ...]");
    }
    absl::StatusOr<Role> role = ParseRole(f[3]);
    if (!role.ok()) return bad(role.status().message());
    if (!engine::IsValidOwner(f[2])) {
      return bad("a principal name is 1 to 128 characters of [A-Za-z0-9._:@-]");
    }
    Principal p{std::string(f[2]), *role, {}};
    for (size_t i = 4; i < f.size(); ++i) {
      if (absl::Status q = ParseQuota(f[i], p.quota); !q.ok()) return bad(q.message());
    }
    if (f[0] == "token") {
      const bool hex = f[1].size() == 64 && std::all_of(f[1].begin(), f[1].end(), [](char ch) {
                         return absl::ascii_isxdigit(static_cast<unsigned char>(ch));
                       });
      const std::string raw = hex ? absl::HexStringToBytes(f[1]) : std::string();
      if (raw.size() != 32) {
        return bad("a token is given as its SHA-256, 64 hex digits (sha256sum)");
      }
      TokenEntry e{{}, p};
      std::copy(raw.begin(), raw.end(), e.digest.begin());
      a->tokens_.push_back(std::move(e));
    } else if (f[0] == "cert") {
      a->certs_.push_back({std::string(f[1]), p});
    } else {
      return bad(absl::StrCat("unknown entry kind '", f[0], "' (token or cert)"));
    }
  }
  if (a->size() == 0) return absl::InvalidArgumentError("principals file has no entries");
  return std::shared_ptr<const Authenticator>(std::move(a));
}

engine::OwnerLimits Authenticator::LimitsOf(absl::string_view principal,
                                            const engine::OwnerLimits& defaults) const {
  engine::OwnerLimits l = defaults;
  auto apply = [&](const Principal& p) {
    if (p.name != principal) return;
    if (p.quota.sessions) l.sessions = *p.quota.sessions;
    if (p.quota.requests) l.requests = *p.quota.requests;
    if (p.quota.checkpoint_bytes) l.checkpoint_bytes = *p.quota.checkpoint_bytes;
  };
  for (const TokenEntry& e : tokens_) apply(e.principal);
  for (const CertEntry& e : certs_) apply(e.principal);
  return l;
}

absl::StatusOr<std::shared_ptr<const Authenticator>> Authenticator::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok()) return absl::FailedPreconditionError(text.status().message());
  absl::StatusOr<std::shared_ptr<const Authenticator>> a = Parse(*text);
  if (!a.ok())
    return absl::Status(a.status().code(), absl::StrCat(path, ": ", a.status().message()));
  return a;
}

absl::StatusOr<Principal> Authenticator::Check(absl::string_view authorization,
                                               const std::vector<std::string>& cert_names,
                                               Method m) const {
  const Principal* who = nullptr;
  if (!authorization.empty()) {
    if (!absl::StartsWith(authorization, "Bearer ")) {
      return absl::UnauthenticatedError("authorization metadata must be 'Bearer <token>'");
    }
    const std::array<unsigned char, 32> d = Digest(authorization.substr(7));
    // Every entry is compared, in constant time each.
    for (const TokenEntry& e : tokens_) {
      if (CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0) who = &e.principal;
    }
    if (who == nullptr) return absl::UnauthenticatedError("unknown bearer token");
  } else {
    for (const CertEntry& e : certs_) {
      for (const std::string& name : cert_names) {
        if (who == nullptr && name == e.name) who = &e.principal;
      }
    }
    if (who == nullptr) {
      return absl::UnauthenticatedError(
          "credentials required: 'authorization: Bearer <token>' metadata or a known client "
          "certificate");
    }
  }
  if (static_cast<int>(who->role) < static_cast<int>(RequiredRole(m))) {
    return absl::PermissionDeniedError(absl::StrCat("principal '", who->name, "' (role ",
                                                    RoleName(who->role), ") may not call this"));
  }
  return *who;
}

absl::StatusOr<Principal> Authenticator::Check(const grpc::CallbackServerContext& ctx,
                                               Method m) const {
  std::string authorization;
  const auto& md = ctx.client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  std::vector<std::string> names;
  if (!certs_.empty()) {
    std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    if (auth != nullptr && auth->IsPeerAuthenticated()) {
      for (const char* prop : {"x509_common_name", "x509_subject_alternative_name"}) {
        for (const grpc::string_ref& v : auth->FindPropertyValues(prop)) {
          names.emplace_back(v.data(), v.size());
        }
      }
    }
  }
  return Check(authorization, names, m);
}

}  // namespace mcserve::rpc
