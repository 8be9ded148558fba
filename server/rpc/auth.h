// Who is calling, and may they: bearer tokens ("authorization: Bearer T"
// metadata) or, under mutual TLS, the client certificate's name, mapped by a
// principals file to a principal and a role. Works over TLS and over
// plaintext behind a mesh. Tokens are kept only as SHA-256 digests and
// compared in constant time; neither they nor their digests are logged.
//
// Principals file, one entry per line ('#' starts a comment):
//   token <sha-256 of the token, hex> <principal> <role> [quota=N ...]
//   cert  <name in the client certificate (CN or a SAN)> <principal> <role> [quota=N ...]
// Principal names: 1..128 of [A-Za-z0-9._:@-]. Quotas (engine/owner.h)
// override the server's --quota_* defaults for that principal:
// sessions=N, requests=N, checkpoint_bytes=SIZE (e.g. 512MiB); 0: none.
// Roles: reader (GetModelInfo, Tokenize, Detokenize), user (also Generate,
// Abort and the session RPCs), admin (also GetServerStatus). Health and
// reflection are other services and stay open (probes need them).
#ifndef MCSERVE_SERVER_RPC_AUTH_H_
#define MCSERVE_SERVER_RPC_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/owner.h"

namespace mcserve::rpc {

enum class Role { kReader = 0, kUser = 1, kAdmin = 2 };

// Quotas a principals file line sets; unset ones take the server's defaults.
struct QuotaOverrides {
  std::optional<int32_t> sessions;
  std::optional<int32_t> requests;
  std::optional<int64_t> checkpoint_bytes;
};

struct Principal {
  std::string name;
  Role role = Role::kAdmin;
  QuotaOverrides quota;
};

// The RPCs of mcserve.v1.Generation, for authorisation.
enum class Method {
  kGenerate,
  kAbort,
  kCreateSession,
  kGetSession,
  kDeleteSession,
  kListSessions,
  kForkSession,
  kExportSession,
  kImportSession,
  kGetModelInfo,
  kTokenize,
  kDetokenize,
  kGetServerStatus,
};

// The least role that may call `m`.
Role RequiredRole(Method m);
absl::string_view RoleName(Role r);

class Authenticator {
 public:
  // Parses a principals file's text; INVALID_ARGUMENT naming the line.
  static absl::StatusOr<std::shared_ptr<const Authenticator>> Parse(absl::string_view text);
  // Reads and parses `path`.
  static absl::StatusOr<std::shared_ptr<const Authenticator>> Load(const std::string& path);

  // The caller of `ctx`, if it may call `m`: UNAUTHENTICATED without known
  // credentials, PERMISSION_DENIED when its role may not.
  absl::StatusOr<Principal> Check(const grpc::CallbackServerContext& ctx, Method m) const;
  // The same from a bearer token and certificate names (for tests).
  absl::StatusOr<Principal> Check(absl::string_view authorization,
                                  const std::vector<std::string>& cert_names, Method m) const;

  // `principal`'s quotas: its file entries' overrides over `defaults`.
  engine::OwnerLimits LimitsOf(absl::string_view principal,
                               const engine::OwnerLimits& defaults) const;

  size_t size() const { return tokens_.size() + certs_.size(); }

 private:
  struct TokenEntry {
    std::array<unsigned char, 32> digest;
    Principal principal;
  };
  struct CertEntry {
    std::string name;
    Principal principal;
  };
  std::vector<TokenEntry> tokens_;
  std::vector<CertEntry> certs_;
};

// The hex SHA-256 of `token`, as the principals file holds it.
std::string TokenDigestHex(absl::string_view token);

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_AUTH_H_
