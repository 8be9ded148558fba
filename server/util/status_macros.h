// Early-return helpers for absl::Status and absl::StatusOr.
#ifndef MCSERVE_SERVER_UTIL_STATUS_MACROS_H_
#define MCSERVE_SERVER_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MCSERVE_CONCAT_INNER(a, b) a##b
#define MCSERVE_CONCAT(a, b) MCSERVE_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status mcserve_status_ = (expr);           \
    if (!mcserve_status_.ok()) return mcserve_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F());` declares x from an OK StatusOr, or
// returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  MCSERVE_ASSIGN_OR_RETURN_IMPL(MCSERVE_CONCAT(mcserve_so_, __LINE__), lhs, expr)
#define MCSERVE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

#endif  // MCSERVE_SERVER_UTIL_STATUS_MACROS_H_
