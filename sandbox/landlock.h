// File: sandbox/landlock.h
// -----------------------------------------------------------------------------
// Landlock (Linux 5.13+): an unprivileged process limits the files it, and threads and children it
// starts afterwards, can open, create or remove to the paths it names. One class per kernel fd:
// a LandlockRuleset owns the ruleset fd; one method per syscall on it.
//
//   ASSIGN_OR_RETURN(LandlockRuleset rules, LandlockRuleset::Create());
//   RETURN_IF_ERROR(rules.AllowPath("/dev/kvm", kLandlockReadWrite));
//   RETURN_IF_ERROR(rules.AllowPath(kernel_path, kLandlockRead));
//   RETURN_IF_ERROR(rules.RestrictSelf());   // This thread; once per thread on Linux 6.1.
//
// Landlock restricts the calling thread only (Linux 6.1 has no all-threads flag): a process
// restricts each thread as it starts, or its first thread before it starts any other. Access
// through fds opened before is not affected.

#ifndef VMMKIT_SANDBOX_LANDLOCK_H_
#define VMMKIT_SANDBOX_LANDLOCK_H_

#include <linux/landlock.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"

namespace vmmkit::sandbox {

// Access rights for AllowPath; on a file only the file rights among them apply.
inline constexpr uint64_t kLandlockRead =
    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
inline constexpr uint64_t kLandlockReadWrite = kLandlockRead | LANDLOCK_ACCESS_FS_WRITE_FILE;

class LandlockRuleset {
 public:
  // The running kernel's Landlock ABI version (1 on Linux 5.13, 2 on 5.19/6.1, ...); 0 when it
  // has none (not built in, or disabled on its command line).
  static int AbiVersion();

  // A ruleset that handles every file-system right this ABI knows: each is denied except where a
  // rule allows it. FAILED_PRECONDITION when the kernel has no Landlock.
  static absl::StatusOr<LandlockRuleset> Create();

  // LANDLOCK_RULE_PATH_BENEATH: `access` to `path` and, for a directory, everything beneath it.
  // Rights that do not apply to a file (directory reads, creation, removal) are dropped for one.
  absl::Status AllowPath(const std::string& path, uint64_t access);

  // landlock_restrict_self on the calling thread, after setting no_new_privs on it (as an
  // unprivileged thread must). Threads it starts afterwards inherit the restriction.
  absl::Status RestrictSelf() const;

  uint64_t handled() const { return handled_; }

 private:
  LandlockRuleset(ScopedFd fd, uint64_t handled) : fd_(std::move(fd)), handled_(handled) {}
  ScopedFd fd_;
  uint64_t handled_;
};

}  // namespace vmmkit::sandbox

#endif  // VMMKIT_SANDBOX_LANDLOCK_H_
