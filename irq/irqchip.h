// File: irq/irqchip.h
// -----------------------------------------------------------------------------
// The VM's interrupt controllers, as a choice. kInKernel: KVM emulates the PIC, the IOAPIC (24
// pins, GSIs 0-23 routed by kvm::DefaultIrqchipRoutes) and the local APICs, and the i8254 PIT.
// kSplit: KVM emulates the local APICs only; the VMM brings the IOAPIC (irq/ioapic.h, GSIs 0-23
// as its pins) and there is no PIT and no PIC. Interrupt remapping needs it: KVM's IOAPIC cannot
// decode remappable-format entries.
//
//   RETURN_IF_ERROR(SetUpIrqchip(vm, IrqchipMode::kInKernel));   // before any vCPU exists

#ifndef VMMKIT_IRQ_IRQCHIP_H_
#define VMMKIT_IRQ_IRQCHIP_H_

#include "absl/status/status.h"
#include "kvm/vm.h"

namespace vmmkit::irq {

enum class IrqchipMode {
  kInKernel,
  kSplit,
};

inline constexpr uint32_t kIoapicPins = 24;

// Creates the interrupt controllers (in kernel, also the PIT, with port 0x61 handled too).
absl::Status SetUpIrqchip(kvm::Vm& vm, IrqchipMode mode);

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_IRQCHIP_H_
