// File: base/event_fd.h
// -----------------------------------------------------------------------------
// EventFd wraps eventfd(2): the 8-byte counter the kernel uses to signal between threads and to
// and from KVM (irqfd, ioeventfd) and VFIO (interrupt triggers).
//
//   ASSIGN_OR_RETURN(EventFd irq, EventFd::Create());
//   RETURN_IF_ERROR(vm.AssignIrqfd(irq, /*gsi=*/5));
//   RETURN_IF_ERROR(irq.Write(1));  // injects GSI 5

#ifndef VMMKIT_BASE_EVENT_FD_H_
#define VMMKIT_BASE_EVENT_FD_H_

#include <sys/eventfd.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"

namespace vmmkit {

class EventFd {
 public:
  // eventfd(initval, flags). EFD_CLOEXEC is always added; pass EFD_NONBLOCK for a non-blocking Read
  // and EFD_SEMAPHORE for one-at-a-time semantics.
  static absl::StatusOr<EventFd> Create(uint32_t initval = 0, int flags = EFD_NONBLOCK);

  EventFd(EventFd&&) = default;
  EventFd& operator=(EventFd&&) = default;

  int fd() const { return fd_.get(); }

  // Adds `value` to the counter. Fails with UNAVAILABLE if that would overflow a non-blocking fd.
  absl::Status Write(uint64_t value = 1) const;
  // Reads and resets the counter (or decrements it by one, with EFD_SEMAPHORE). On a non-blocking
  // fd with a zero counter, returns UNAVAILABLE ("Resource temporarily unavailable").
  absl::StatusOr<uint64_t> Read() const;

 private:
  explicit EventFd(ScopedFd fd) : fd_(std::move(fd)) {}
  ScopedFd fd_;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_EVENT_FD_H_
