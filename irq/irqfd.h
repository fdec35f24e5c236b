// File: irq/irqfd.h
// -----------------------------------------------------------------------------
// Irqfd: an eventfd bound to an interrupt controller input (GSI) through IrqLines (a KVM irqfd, or
// the userspace IOAPIC's line) for as long as the object lives, so that a device raises its
// interrupt with one write and no call of its own, from any thread. The resample form is for
// level-triggered inputs: resample() is signalled when the guest EOIs the interrupt, so the device
// can raise it again if it is still asserted (VFIO's INTx works this way).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Irqfd> com1, Irqfd::Create(lines, /*gsi=*/4));
//   (void)com1->Trigger();   // the UART's interrupt
//
// Destruction unbinds it before the eventfds close. `lines` must outlive it. Thread-safety:
// Trigger from any thread.

#ifndef VMMKIT_IRQ_IRQFD_H_
#define VMMKIT_IRQ_IRQFD_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "base/event_fd.h"
#include "irq/irq_lines.h"

namespace vmmkit::irq {

class Irqfd {
 public:
  static absl::StatusOr<std::unique_ptr<Irqfd>> Create(IrqLines& lines, uint32_t gsi);
  static absl::StatusOr<std::unique_ptr<Irqfd>> CreateWithResample(IrqLines& lines, uint32_t gsi);
  ~Irqfd();
  Irqfd(const Irqfd&) = delete;
  Irqfd& operator=(const Irqfd&) = delete;

  // Raises the GSI (an eventfd write).
  absl::Status Trigger() const { return event_.Write(1); }
  const EventFd& event() const { return event_; }
  const EventFd* resample() const { return resample_ ? &*resample_ : nullptr; }
  uint32_t gsi() const { return gsi_; }

 private:
  Irqfd(IrqLines& lines, uint32_t gsi, EventFd event, std::optional<EventFd> resample)
      : lines_(lines), gsi_(gsi), event_(std::move(event)), resample_(std::move(resample)) {}

  IrqLines& lines_;
  const uint32_t gsi_;
  EventFd event_;
  std::optional<EventFd> resample_;
};

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_IRQFD_H_
