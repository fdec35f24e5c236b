// File: irq/irqchip.h
// -----------------------------------------------------------------------------
// The VM's interrupt controllers, as a choice. kInKernel: KVM emulates the PIC, the IOAPIC (24
// pins, GSIs 0-23 routed by kvm::DefaultIrqchipRoutes) and the local APICs, and the i8254 PIT.
// (A split irqchip, with the IOAPIC in userspace, is what interrupt remapping will need: KVM's
// IOAPIC cannot decode remappable-format entries.)
//
//   RETURN_IF_ERROR(SetUpIrqchip(vm, IrqchipMode::kInKernel));   // before any vCPU exists

#ifndef VMMKIT_IRQ_IRQCHIP_H_
#define VMMKIT_IRQ_IRQCHIP_H_

#include "absl/status/status.h"
#include "kvm/vm.h"

namespace vmmkit::irq {

enum class IrqchipMode {
  kInKernel,
};

// Creates the interrupt controllers (and, in kernel, the PIT, with port 0x61 handled too).
absl::Status SetUpIrqchip(kvm::Vm& vm, IrqchipMode mode);

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_IRQCHIP_H_
