// File: vmm/machine.h
// -----------------------------------------------------------------------------
// Machine is the hardware a vmm guest runs on, before any device: the KVM VM with its irqchip (in
// kernel with the PIT, or split with the IOAPIC here), guest RAM in a guest-physical AddressSpace
// that KVM's memory slots follow, the port-I/O and MMIO buses, the PCI root bus (its config
// mechanisms on 0xcf8 and ECAM), the address allocators that BARs are placed from, and the VM's KVM
// GSI routing table for MSIs, which lives as long as the VM. Devices plug into it (vmm's platform
// devices, the DeviceManager's PCI functions); the layout is vmm/layout.h's.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Machine> m, Machine::Create({.memory_bytes = 512 << 20}));
//   RETURN_IF_ERROR(m->pio().Insert(uart, kPortCom1, 8));
//
// The machine lock: the address space, the buses' device lists and the MSI routes change at run
// time from vCPU threads (a guest moving a BAR or programming an MSI) as well as from the event
// loop (a device attached) and an ejecting vCPU (a device detached); every such change, and every
// read of them outside a vCPU's bus dispatch, is made under lock(). It is the innermost lock: see
// docs/architecture.md for the order.

#ifndef VMMKIT_VMM_MACHINE_H_
#define VMMKIT_VMM_MACHINE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "devices/bus.h"
#include "iommu/vtd/unit.h"
#include "irq/ioapic.h"
#include "irq/irq_lines.h"
#include "irq/irqchip.h"
#include "irq/msi_routes.h"
#include "kvm/kvm.h"
#include "kvm/memory_slots.h"
#include "kvm/vm.h"
#include "memory/address_allocator.h"
#include "memory/address_space.h"
#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "memory/guest_region.h"
#include "pci/root_bus.h"

namespace vmmkit::vmm {

struct MachineConfig {
  uint64_t memory_bytes = 64 << 20;
  GuestRegionBacking backing = GuestRegionBacking::kAnonymous;
  bool prefault = false;
  // A guest-visible Intel VT-d unit (caching mode) at kVtdBase in front of every PCI function;
  // with a split irqchip it remaps interrupts too (MSIs and the IOAPIC's).
  bool iommu = false;
  // The unit's caching mode (iommu::vtd::UnitOptions::caching_mode): off, passthrough devices
  // cannot follow the guest's mappings, and the guest batches its invalidations.
  bool iommu_caching_mode = true;
  // kSplit: the IOAPIC is the machine's (irq::Ioapic at kIoapicAddress), with no PIT and no PIC.
  irq::IrqchipMode irqchip = irq::IrqchipMode::kInKernel;
  uint8_t ioapic_id = 0;  // The split irqchip's IOAPIC ID (the MADT's).
};

class Machine {
 public:
  // Opens KVM and builds the machine: RAM (layout.h's regions) in the address space and KVM's
  // slots, irqchip, PIT, buses, PCI root bus with its config mechanisms, BAR allocators and the
  // MSI route table.
  static absl::StatusOr<std::unique_ptr<Machine>> Create(const MachineConfig& config);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  kvm::Kvm& kvm() { return *kvm_; }
  kvm::Vm& vm() { return *vm_; }
  GuestMemory& memory() { return *memory_; }
  AddressSpace& address_space() { return address_space_; }  // Change under lock().
  // How the machine's own code reads and writes guest memory at guest-physical addresses.
  const DmaSpace& dma() const { return *dma_; }
  // How the PCI function with `requester_id` (bus << 8 | devfn) reaches memory for DMA: through
  // the guest's VT-d tables when the machine has the unit, guest-physical otherwise.
  std::unique_ptr<DmaSpace> DmaFor(uint16_t requester_id);
  // The guest-visible VT-d unit, or null. Its notifier registrations are made under lock(), as
  // are the guest's accesses to its registers (their invalidations reach the host IOMMU).
  iommu::vtd::RemappingUnit* iommu() { return iommu_.get(); }
  devices::Bus& pio() { return pio_; }
  devices::Bus& mmio() { return mmio_; }
  pci::PciRootBus& pci() { return *pci_; }
  // BAR placement (the PCI MMIO windows below and above 4 GiB, and I/O ports above kPciIoStart).
  // The device manager's.
  AddressAllocator& mmio_space() { return *mmio_space_; }
  AddressAllocator& io_space() { return *io_space_; }
  AddressAllocator& mmio64_space() { return *mmio64_space_; }  // 64-bit BARs, above 4 GiB.
  irq::MsiRoutes& msi_routes() { return *msi_routes_; }        // Change under lock().
  // What devices raise the irqchip's inputs (GSIs 0-23) through: KVM irqfds, or the userspace
  // IOAPIC's lines with a split irqchip. Any thread.
  irq::IrqLines& irq_lines() { return *irq_lines_; }
  // The userspace IOAPIC (split irqchip), or null. vCPUs pass it their KVM_EXIT_IOAPIC_EOI.
  irq::Ioapic* ioapic() { return ioapic_.get(); }
  Mutex& lock() { return lock_; }

  // Delivers one MSI the PCI function with `source_id` wrote, as its platform would: through the
  // VT-d unit's interrupt remapping when the guest turned that on (a message the unit rejects is
  // dropped and lands in its fault log), then KVM_SIGNAL_MSI. For emulated devices, whose
  // interrupts vmm raises itself; any thread, no lock held but the device's own.
  void SignalMsi(const irq::MsiMessage& msg, uint16_t source_id);

  // Counts for the control plane's resource report, read under lock().
  size_t msi_route_count();
  size_t memory_listener_count();

 private:
  Machine() = default;

  std::unique_ptr<kvm::Kvm> kvm_;
  std::unique_ptr<kvm::Vm> vm_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<DmaSpace> dma_;
  AddressSpace address_space_{"system"};
  std::unique_ptr<kvm::KvmMemorySlots> slots_;
  devices::Bus pio_{"pio"};
  devices::Bus mmio_{"mmio"};
  std::shared_ptr<pci::PciRootBus> pci_;
  std::unique_ptr<AddressAllocator> mmio_space_, io_space_, mmio64_space_;
  std::unique_ptr<irq::MsiRoutes> msi_routes_;
  std::shared_ptr<iommu::vtd::RemappingUnit> iommu_;
  std::unique_ptr<irq::IoapicKvmSink> ioapic_sink_;
  std::shared_ptr<irq::Ioapic> ioapic_;
  // Declared after the IOAPIC: destroyed first, its thread stopped before the IOAPIC goes.
  std::unique_ptr<irq::IrqLines> irq_lines_;
  Mutex lock_;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_MACHINE_H_
