// File: base/scoped_fd.h
// -----------------------------------------------------------------------------
// ScopedFd owns one file descriptor and closes it when destroyed. It is move-only, so exactly one
// owner exists for every kernel fd vmmkit holds (KVM, VM, vCPU, VFIO, eventfd, memfd, ...).
// Wrap a raw fd the moment the syscall returns it, before anything else can fail and leak it:
//
//   ScopedFd fd(open(path, O_RDWR | O_CLOEXEC));
//   if (!fd.valid()) return ErrnoStatus(errno, "open ", path);

#ifndef VMMKIT_BASE_SCOPED_FD_H_
#define VMMKIT_BASE_SCOPED_FD_H_

#include "absl/status/statusor.h"

namespace vmmkit {

class ScopedFd {
 public:
  ScopedFd() = default;
  // Takes ownership of `fd`; a negative value means "no fd".
  explicit ScopedFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives up ownership without closing; returns the fd (or -1).
  [[nodiscard]] int release() noexcept;
  // Closes the current fd (if any) and takes ownership of `fd`.
  void reset(int fd = -1) noexcept;

  // A new owner of a duplicate (F_DUPFD_CLOEXEC) of this fd.
  absl::StatusOr<ScopedFd> Dup() const;

 private:
  int fd_ = -1;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_SCOPED_FD_H_
