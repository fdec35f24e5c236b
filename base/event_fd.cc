#include "base/event_fd.h"

#include <unistd.h>

#include <cerrno>

#include "base/status.h"

namespace vmmkit {

absl::StatusOr<EventFd> EventFd::Create(uint32_t initval, int flags) {
  ScopedFd fd(::eventfd(initval, flags | EFD_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "eventfd flags=", Hex(static_cast<uint32_t>(flags)));
  return EventFd(std::move(fd));
}

absl::Status EventFd::Write(uint64_t value) const {
  ssize_t n;
  do {
    n = ::write(fd_.get(), &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "eventfd write fd=", fd_.get(), " value=", value);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EventFd::Read() const {
  uint64_t value = 0;
  ssize_t n;
  do {
    n = ::read(fd_.get(), &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "eventfd read fd=", fd_.get());
  return value;
}

}  // namespace vmmkit
