// File: sandbox/privileges.h
// -----------------------------------------------------------------------------
// Capabilities and no_new_privs, per thread. Linux keeps capabilities and no_new_privs per
// thread (capset(2) changes the caller only; a new thread copies its creator's), so a process
// that drops them does so on every thread it has, or on its first thread before it starts any.
//
//   RETURN_IF_ERROR(SetNoNewPrivs());
//   RETURN_IF_ERROR(DropCapabilities({CAP_IPC_LOCK}));   // VFIO pins guest RAM.

#ifndef VMMKIT_SANDBOX_PRIVILEGES_H_
#define VMMKIT_SANDBOX_PRIVILEGES_H_

#include <cstdint>
#include <initializer_list>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmmkit::sandbox {

// prctl(PR_SET_NO_NEW_PRIVS): execve can no longer grant privileges (setuid bits, file
// capabilities) to this thread or what it starts.
absl::Status SetNoNewPrivs();

// Leaves the calling thread with at most the capabilities in `keep` (CAP_* numbers) in its
// effective, permitted and inheritable sets, none in its ambient set, and, when it may
// (CAP_SETPCAP), drops the others from the bounding set too. Capabilities in `keep` that the
// thread does not have are not gained. A thread with no capabilities (an unprivileged user)
// succeeds without change.
absl::Status DropCapabilities(std::initializer_list<int> keep);

// The calling thread's effective capabilities as a bit mask (bit N = CAP number N).
absl::StatusOr<uint64_t> EffectiveCapabilities();

}  // namespace vmmkit::sandbox

#endif  // VMMKIT_SANDBOX_PRIVILEGES_H_
