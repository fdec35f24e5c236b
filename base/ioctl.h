// File: base/ioctl.h
// -----------------------------------------------------------------------------
// The one way vmmkit calls ioctl(2): on failure it returns an absl::Status whose message names
// the ioctl and its key arguments, with the errno's canonical code. The key arguments are only
// formatted on failure, so the success path costs one syscall and one compare.
//
//   ASSIGN_OR_RETURN(int vcpu_fd, Ioctl(vm_fd, KVM_CREATE_VCPU, id, "KVM_CREATE_VCPU id=", id));
//   // on failure: "KVM_CREATE_VCPU id=3: File exists"

#ifndef VMMKIT_BASE_IOCTL_H_
#define VMMKIT_BASE_IOCTL_H_

#include <sys/ioctl.h>

#include <cerrno>

#include "absl/status/statusor.h"
#include "base/status.h"

namespace vmmkit {

// ioctl(fd, request, arg). `name_and_key` are StrCat pieces: the ioctl's name first.
template <typename Arg, typename... Pieces>
absl::StatusOr<int> Ioctl(int fd, unsigned long request, Arg arg, const Pieces&... name_and_key) {
  static_assert(sizeof...(Pieces) > 0, "name the ioctl");
  const int ret = ::ioctl(fd, request, arg);
  if (ret < 0) [[unlikely]] {
    return ErrnoStatus(errno, name_and_key...);
  }
  return ret;
}

}  // namespace vmmkit

#endif  // VMMKIT_BASE_IOCTL_H_
