// A parity case written by the Python reference (mcref.parity_cases,
// mcref.fla_cases): expected.safetensors with the session's tokens, how they
// are split into requests, how each request is fed, and the reference's
// next-token logits after every token.
#ifndef MCSERVE_TESTS_SUPPORT_PARITY_CASE_H_
#define MCSERVE_TESTS_SUPPORT_PARITY_CASE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/mc_model.h"

namespace mcserve::testing {

struct ParityCase {
  std::vector<int32_t> tokens;
  std::vector<int32_t> splits;
  std::vector<int32_t> modes;  // 1: prefilled in parallel, 0: token by token
  at::Tensor logits;           // [T, V]
};

// Reads `dir`/expected.safetensors.
absl::StatusOr<ParityCase> ReadParityCase(const std::string& dir);

// Feeds the case's requests to one session of `m`, each request prefilled in
// parallel or decoded token by token as the case says; returns [T, V].
at::Tensor RunParityCase(model::McModel* m, const ParityCase& c);

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_PARITY_CASE_H_
