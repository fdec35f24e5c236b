#include "irq/irqfd.h"

#include "base/log.h"
#include "base/status_macros.h"

namespace vmmkit::irq {

absl::StatusOr<std::unique_ptr<Irqfd>> Irqfd::Create(IrqLines& lines, uint32_t gsi) {
  ASSIGN_OR_RETURN(EventFd event, EventFd::Create());
  RETURN_IF_ERROR(lines.Assign(event, gsi));
  return std::unique_ptr<Irqfd>(new Irqfd(lines, gsi, std::move(event), std::nullopt));
}

absl::StatusOr<std::unique_ptr<Irqfd>> Irqfd::CreateWithResample(IrqLines& lines, uint32_t gsi) {
  ASSIGN_OR_RETURN(EventFd event, EventFd::Create());
  ASSIGN_OR_RETURN(EventFd resample, EventFd::Create());
  RETURN_IF_ERROR(lines.AssignWithResample(event, resample, gsi));
  return std::unique_ptr<Irqfd>(new Irqfd(lines, gsi, std::move(event), std::move(resample)));
}

Irqfd::~Irqfd() {
  // Before the eventfds close: KVM would otherwise only notice the close later, on its own.
  if (absl::Status s = lines_.Deassign(event_, gsi_); !s.ok()) {
    LogWarning("irqfd for GSI ", gsi_, ": ", s.message());
  }
}

}  // namespace vmmkit::irq
