// File: base/status.h
// -----------------------------------------------------------------------------
// Turns an errno value into an absl::Status whose message names the failed operation and its key
// arguments, keeping the canonical code that absl::ErrnoToStatus assigns (ENOMEM ->
// RESOURCE_EXHAUSTED, EINVAL -> INVALID_ARGUMENT, EBUSY -> FAILED_PRECONDITION, ...):
//
//   if (ioctl(fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
//     return ErrnoStatus(errno, "KVM_SET_USER_MEMORY_REGION slot=", r.slot);
//   // -> INVALID_ARGUMENT: "KVM_SET_USER_MEMORY_REGION slot=3: Invalid argument"

#ifndef VMMKIT_BASE_STATUS_H_
#define VMMKIT_BASE_STATUS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace vmmkit {

// The status for `errnum` with message "<pieces...>: <strerror(errnum)>". Captures nothing else,
// so pass errno immediately after the failing call.
template <typename... Pieces>
absl::Status ErrnoStatus(int errnum, const Pieces&... pieces) {
  return absl::ErrnoToStatus(errnum, absl::StrCat(pieces...));
}

// `s` with "<pieces...>: " before its message and its code kept, for a step's failure as its
// caller reports it; OK stays OK:
//
//   RETURN_IF_ERROR(Prefixed(disk.Flush(), "disk ", id));  // -> "disk vol0: fdatasync: ..."
template <typename... Pieces>
absl::Status Prefixed(const absl::Status& s, const Pieces&... pieces) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(pieces..., ": ", s.message()));
}

// Formats a value as 0x-prefixed hex; for addresses and sizes in messages.
inline std::string Hex(uint64_t v) { return absl::StrCat("0x", absl::Hex(v)); }

}  // namespace vmmkit

#endif  // VMMKIT_BASE_STATUS_H_
