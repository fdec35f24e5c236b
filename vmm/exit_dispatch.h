// File: vmm/exit_dispatch.h
// -----------------------------------------------------------------------------
// DispatchExit is what a vCPU thread does with a decoded exit (kvm::DecodeExit): port I/O and
// MMIO go to the device on the port-I/O or MMIO bus, one access of `size` bytes at a time for a
// string instruction (INS/OUTS, REP); an access no device claims reads as all ones and writes
// nowhere, as on a PC. An IOAPIC EOI goes to the userspace IOAPIC (split irqchip). What remains
// is the VMM's to act on, as an ExitAction.
//
//   ASSIGN_OR_RETURN(kvm::VcpuExit exit, vcpu.Run());
//   switch (DispatchExit(exit, machine.pio(), machine.mmio(), machine.ioapic())) { ... }
//
// Thread-safety: as the buses and the IOAPIC (any vCPU thread, concurrently).

#ifndef VMMKIT_VMM_EXIT_DISPATCH_H_
#define VMMKIT_VMM_EXIT_DISPATCH_H_

#include "devices/bus.h"
#include "irq/ioapic.h"
#include "kvm/vcpu_exit.h"

namespace vmmkit::vmm {

enum class ExitAction {
  kContinue,     // Handled (or nothing to do: HLT with the in-kernel LAPIC, a kick): run again.
  kTripleFault,  // exit::Shutdown.
  kReset,        // A system event asking for a reset.
  kPowerOff,     // A system event asking for a power-off.
  kError,        // Anything else: KVM could not go on (internal error, failed entry, unknown).
};

// `ioapic` is null without a userspace IOAPIC; an EOI exit is then ignored.
ExitAction DispatchExit(const kvm::VcpuExit& exit, devices::Bus& pio, devices::Bus& mmio,
                        irq::Ioapic* ioapic);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_EXIT_DISPATCH_H_
