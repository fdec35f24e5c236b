// File: vfio/syscalls.h
// -----------------------------------------------------------------------------
// VfioSyscalls is the kernel interface vfio/ uses, behind an interface so that tests can replace
// it: the kernels this project runs on have no sPAPR or iommufd, and error paths (ENOMEM from the
// memlock limit, EBUSY, EEXIST) cannot be provoked on demand. RealVfioSyscalls() is the kernel.
// Calls report errors as -errno so that a fake needs no errno juggling; VfioIoctl turns them into
// a Status that names the ioctl, like base/ioctl.h does for KVM.
//
//   VfioSyscalls& sys = RealVfioSyscalls();
//   ASSIGN_OR_RETURN(int version, VfioIoctl(sys, fd, VFIO_GET_API_VERSION, 0,
//   "VFIO_GET_API_VERSION"));

#ifndef VMMKIT_VFIO_SYSCALLS_H_
#define VMMKIT_VFIO_SYSCALLS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "base/status.h"

namespace vmmkit::vfio {

class VfioSyscalls {
 public:
  virtual ~VfioSyscalls() = default;
  // open(2): a new fd (owned by the caller) or -errno.
  virtual int Open(const char* path, int flags) = 0;
  // ioctl(2) with an integer or pointer argument: the result or -errno.
  virtual int Ioctl(int fd, unsigned long request, uintptr_t arg) = 0;
  // pread(2)/pwrite(2) on a device fd (region access): bytes transferred or -errno.
  virtual int64_t Pread(int fd, void* buf, size_t len, uint64_t offset) = 0;
  virtual int64_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) = 0;
  // mmap(2) of a device region (shared) and munmap(2). Mmap returns MAP_FAILED and sets *err.
  virtual void* Mmap(size_t len, int prot, int fd, uint64_t offset, int* err) = 0;
  virtual void Munmap(void* addr, size_t len) = 0;
};

// The kernel's VFIO interface.
VfioSyscalls& RealVfioSyscalls();

// sys.Ioctl(fd, request, arg); on failure a Status with the errno's code whose message starts with
// `name_and_key` (the ioctl's name and key arguments), formatted only on error.
template <typename... Pieces>
absl::StatusOr<int> VfioIoctl(VfioSyscalls& sys, int fd, unsigned long request, uintptr_t arg,
                              const Pieces&... name_and_key) {
  static_assert(sizeof...(Pieces) > 0, "name the ioctl");
  const int ret = sys.Ioctl(fd, request, arg);
  if (ret < 0) [[unlikely]] {
    return ErrnoStatus(-ret, name_and_key...);
  }
  return ret;
}

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_SYSCALLS_H_
