#include "sandbox/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::sandbox {
namespace {

struct Caps {
  uint64_t effective = 0;
  uint64_t permitted = 0;
  uint64_t inheritable = 0;
};

absl::StatusOr<Caps> GetCaps() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return ErrnoStatus(errno, "capget");
  auto join = [](uint32_t lo, uint32_t hi) { return (uint64_t{hi} << 32) | lo; };
  return Caps{join(data[0].effective, data[1].effective),
              join(data[0].permitted, data[1].permitted),
              join(data[0].inheritable, data[1].inheritable)};
}

}  // namespace

absl::Status SetNoNewPrivs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ErrnoStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  }
  return absl::OkStatus();
}

absl::Status DropCapabilities(std::initializer_list<int> keep) {
  uint64_t keep_mask = 0;
  for (int cap : keep) keep_mask |= uint64_t{1} << cap;
  ASSIGN_OR_RETURN(Caps caps, GetCaps());
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return ErrnoStatus(errno, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
  }
  // The bounding set needs CAP_SETPCAP to shrink; without it this thread cannot regain anything
  // through execve anyway (no_new_privs).
  if ((caps.effective >> CAP_SETPCAP) & 1) {
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
      if ((keep_mask >> cap) & 1) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
        return ErrnoStatus(errno, "prctl(PR_CAPBSET_DROP) cap=", cap);
      }
    }
  }
  if (((caps.effective | caps.permitted | caps.inheritable) & ~keep_mask) == 0) {
    return absl::OkStatus();
  }
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  const uint64_t effective = caps.effective & keep_mask;
  const uint64_t permitted = caps.permitted & keep_mask;
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(permitted >> (32 * i));
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return ErrnoStatus(errno, "capset");
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EffectiveCapabilities() {
  ASSIGN_OR_RETURN(Caps caps, GetCaps());
  return caps.effective;
}

}  // namespace vmmkit::sandbox
