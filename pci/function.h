// File: pci/function.h
// -----------------------------------------------------------------------------
// PciFunction is what a VMM's device manager needs from any PCI function, emulated or passed
// through, beyond its configuration space: the firmware's placement of its BARs before the guest
// sees it, a line that describes it, and a way to take it off the machine. A new PCI device is a
// PciFunction in a package of its own; a device manager plugs it into a slot of the root bus
// (PciRootBus::AddDevice), which routes the guest's configuration accesses to it.
//
//   class MyDevice : public pci::PciFunction { ... };
//   ASSIGN_OR_RETURN(auto dev, MyDevice::Create(...));
//   RETURN_IF_ERROR(dev->PlaceBars([&](const pci::Bar& bar) { return allocator.Allocate(...); }));
//   RETURN_IF_ERROR(root_bus.AddDevice(slot, dev));
//   ...
//   RETURN_IF_ERROR(root_bus.RemoveDevice(slot));
//   dev->Detach();
//
// Thread-safety: configuration accesses come from any vCPU thread; PlaceBars and Detach from the
// device manager, which serializes them.

#ifndef VMMKIT_PCI_FUNCTION_H_
#define VMMKIT_PCI_FUNCTION_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "pci/root_bus.h"

namespace vmmkit::pci {

// A BAR to place: its index (a 64-bit BAR uses index and index + 1), size (a power of two) and
// kind, which decide the address space and window it goes in.
struct Bar {
  uint32_t index = 0;
  uint64_t size = 0;
  bool io = false;
  bool is64 = false;
  bool prefetchable = false;
};

class PciFunction : public PciDevice {
 public:
  // Gives each BAR an address from `allocate` (naturally aligned, in a window the guest's firmware
  // tables describe) and programs it, with decoding left off until the guest's driver enables it.
  // On failure the BARs placed so far keep their addresses: the caller frees what it allocated.
  virtual absl::Status PlaceBars(
      const std::function<absl::StatusOr<uint64_t>(const Bar&)>& allocate) = 0;
  // One line for listings: "vfio-pci 1234:11e8, interrupts: msi".
  virtual std::string Describe() = 0;
  // Takes the function off the machine now: its interrupts, BAR mappings and traps, and any DMA.
  // Afterwards a vCPU that still holds it reads all-ones and changes nothing. Idempotent.
  virtual void Detach() = 0;
};

}  // namespace vmmkit::pci

#endif  // VMMKIT_PCI_FUNCTION_H_
