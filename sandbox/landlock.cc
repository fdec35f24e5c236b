#include "sandbox/landlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::sandbox {
namespace {

// ABI 1's rights (Linux 5.13); ABI 2 (5.19) adds REFER. Rights of later ABIs are not handled,
// i.e. left allowed: this header (Debian 12's) does not name them.
constexpr uint64_t kAbi1Rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;
constexpr uint64_t kFileRights =
    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE;

}  // namespace

int LandlockRuleset::AbiVersion() {
  const long v =
      ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v < 0 ? 0 : static_cast<int>(v);
}

absl::StatusOr<LandlockRuleset> LandlockRuleset::Create() {
  const int abi = AbiVersion();
  if (abi < 1) {
    return absl::FailedPreconditionError(
        "landlock_create_ruleset: this kernel has no Landlock (not built in or not enabled)");
  }
  landlock_ruleset_attr attr = {};
  attr.handled_access_fs = kAbi1Rights | (abi >= 2 ? LANDLOCK_ACCESS_FS_REFER : 0);
  ScopedFd fd(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0)));
  if (!fd.valid()) return ErrnoStatus(errno, "landlock_create_ruleset");
  return LandlockRuleset(std::move(fd), attr.handled_access_fs);
}

absl::Status LandlockRuleset::AllowPath(const std::string& path, uint64_t access) {
  ScopedFd parent(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!parent.valid()) return ErrnoStatus(errno, "landlock: open(O_PATH) ", path);
  struct stat st = {};
  if (::fstat(parent.get(), &st) != 0) return ErrnoStatus(errno, "landlock: fstat ", path);
  landlock_path_beneath_attr rule = {};
  rule.allowed_access = access & handled_ & (S_ISDIR(st.st_mode) ? ~0ull : kFileRights);
  rule.parent_fd = parent.get();
  if (rule.allowed_access == 0) return absl::OkStatus();
  if (::syscall(SYS_landlock_add_rule, fd_.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
    return ErrnoStatus(errno, "landlock_add_rule ", path, " access=", Hex(rule.allowed_access));
  }
  return absl::OkStatus();
}

absl::Status LandlockRuleset::RestrictSelf() const {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ErrnoStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  }
  if (::syscall(SYS_landlock_restrict_self, fd_.get(), 0) != 0) {
    return ErrnoStatus(errno, "landlock_restrict_self");
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::sandbox
