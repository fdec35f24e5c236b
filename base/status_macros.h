// File: base/status_macros.h
// -----------------------------------------------------------------------------
// Early-return helpers for absl::Status and absl::StatusOr (the Abseil in Debian 12 lacks them):
//
//   absl::StatusOr<Vm> Kvm::CreateVm() {
//     RETURN_IF_ERROR(CheckApiVersion());
//     ASSIGN_OR_RETURN(int fd, Ioctl(...));
//     ...
//   }

#ifndef VMMKIT_BASE_STATUS_MACROS_H_
#define VMMKIT_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) once; returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::absl::Status vmmkit_status_macro_status_ = (expr); \
    if (!vmmkit_status_macro_status_.ok()) {             \
      return vmmkit_status_macro_status_;                \
    }                                                    \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>) once; on error returns its status, otherwise moves the
// value into `lhs`, which may be a declaration (`ASSIGN_OR_RETURN(auto x, F())`) or an lvalue.
#define ASSIGN_OR_RETURN(lhs, rexpr)                                                           \
  VMMKIT_ASSIGN_OR_RETURN_IMPL_(VMMKIT_STATUS_MACROS_CONCAT_(vmmkit_statusor_, __LINE__), lhs, \
                                rexpr)

#define VMMKIT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) {                                     \
    return std::move(statusor).status();                    \
  }                                                         \
  lhs = std::move(statusor).value()

#define VMMKIT_STATUS_MACROS_CONCAT_INNER_(x, y) x##y
#define VMMKIT_STATUS_MACROS_CONCAT_(x, y) VMMKIT_STATUS_MACROS_CONCAT_INNER_(x, y)

#endif  // VMMKIT_BASE_STATUS_MACROS_H_
