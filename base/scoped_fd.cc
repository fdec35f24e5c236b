#include "base/scoped_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/status.h"

namespace vmmkit {

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

ScopedFd::~ScopedFd() { reset(); }

int ScopedFd::release() noexcept {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void ScopedFd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) {
    // close() must not be retried on EINTR on Linux: the fd is released either way.
    ::close(fd_);
  }
  fd_ = fd < 0 ? -1 : fd;
}

absl::StatusOr<ScopedFd> ScopedFd::Dup() const {
  if (!valid()) return absl::FailedPreconditionError("dup of an empty ScopedFd");
  ScopedFd copy(::fcntl(fd_, F_DUPFD_CLOEXEC, 0));
  if (!copy.valid()) return ErrnoStatus(errno, "fcntl(F_DUPFD_CLOEXEC) fd=", fd_);
  return copy;
}

}  // namespace vmmkit
