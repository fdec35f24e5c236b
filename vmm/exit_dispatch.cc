#include "vmm/exit_dispatch.h"

#include <linux/kvm.h>

#include <algorithm>
#include <cstddef>
#include <variant>

namespace vmmkit::vmm {

ExitAction DispatchExit(const kvm::VcpuExit& exit, devices::Bus& pio, devices::Bus& mmio,
                        irq::Ioapic* ioapic) {
  if (const auto* in = std::get_if<kvm::exit::IoIn>(&exit)) {
    for (uint32_t i = 0; i < in->count; ++i) {
      absl::Span<uint8_t> one = in->data.subspan(size_t{i} * in->size, in->size);
      if (!pio.Read(in->port, one)) std::fill(one.begin(), one.end(), 0xff);
    }
  } else if (const auto* out = std::get_if<kvm::exit::IoOut>(&exit)) {
    for (uint32_t i = 0; i < out->count; ++i) {
      pio.Write(out->port, out->data.subspan(size_t{i} * out->size, out->size));
    }
  } else if (const auto* rd = std::get_if<kvm::exit::MmioRead>(&exit)) {
    if (!mmio.Read(rd->address, rd->data)) std::fill(rd->data.begin(), rd->data.end(), 0xff);
  } else if (const auto* wr = std::get_if<kvm::exit::MmioWrite>(&exit)) {
    mmio.Write(wr->address, wr->data);
  } else if (const auto* eoi = std::get_if<kvm::exit::IoapicEoi>(&exit)) {
    if (ioapic != nullptr) ioapic->Eoi(eoi->vector);
  } else if (std::holds_alternative<kvm::exit::Hlt>(exit) ||
             std::holds_alternative<kvm::exit::Interrupted>(exit)) {
    // HLT is the in-kernel LAPIC's; an interrupted run (a kick) returns to the vCPU loop.
  } else if (std::holds_alternative<kvm::exit::Shutdown>(exit)) {
    return ExitAction::kTripleFault;
  } else if (const auto* ev = std::get_if<kvm::exit::SystemEvent>(&exit)) {
    if (ev->type == KVM_SYSTEM_EVENT_RESET) return ExitAction::kReset;
    if (ev->type == KVM_SYSTEM_EVENT_SHUTDOWN) return ExitAction::kPowerOff;
    return ExitAction::kError;
  } else {
    return ExitAction::kError;
  }
  return ExitAction::kContinue;
}

}  // namespace vmmkit::vmm
