// File: passthrough/vfio_pci_config.h
// -----------------------------------------------------------------------------
// VfioPciConfig is the guest's view of a passed-through PCI function's configuration space: the
// part of a vfio-pci device a VMM must virtualize rather than pass through. It is a
// pci::ConfigSpace built from the device's own:
//
//   - The header's IDs, class and interrupt pin are the device's; BARs are emulated (the guest
//     sizes and places them; the host BAR addresses never show); the expansion ROM is hidden.
//   - The command register's I/O, memory, bus-master and INTx-disable bits are forwarded to the
//     device (bus mastering gates its DMA). The status register reads live from the device
//     (interrupt and error bits) and its write-1-to-clear writes go to the device.
//   - The capability list is filtered to what the VMM supports, at the device's offsets and in
//     its order: MSI and MSI-X (emulated: the VMM programs the device with VFIO_DEVICE_SET_IRQS
//     and KVM routes, never through config writes), power management and PCI Express
//     (read-only). Other capabilities and the extended space read as absent.
//   - Everything else is read-only: a guest cannot reprogram the device behind the VMM.
//
// Changes a guest write makes are reported after the access through the callbacks: where each
// BAR now decodes (`bar_moved`, so the VMM can move its KVM memory slot or MMIO trap), the MSI
// state, MSI-X enable and function mask.
//
//   ASSIGN_OR_RETURN(auto config, VfioPciConfig::Create(*device, callbacks));
//   RETURN_IF_ERROR(pci_root->AddDevice(slot, config));
//
// Thread-safety: config accesses may come from any vCPU thread; state is behind a mutex and the
// callbacks run after it is released, in the order the accesses happened.

#ifndef VMMKIT_PASSTHROUGH_VFIO_PCI_CONFIG_H_
#define VMMKIT_PASSTHROUGH_VFIO_PCI_CONFIG_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/log.h"
#include "base/mutex.h"
#include "pci/config_space.h"
#include "pci/function.h"
#include "pci/root_bus.h"
#include "vfio/device.h"

namespace vmmkit::passthrough {

struct VirtualBar : pci::Bar {
  uint64_t address = 0;  // As the guest programmed it.
};

using MsiState = pci::MsiConfig;

class VfioPciConfig : public pci::PciDevice {
 public:
  struct Callbacks {
    // A BAR appeared at, moved to, or disappeared from (nullopt) a guest address.
    std::function<void(const VirtualBar& bar, std::optional<uint64_t> old_address,
                       std::optional<uint64_t> new_address)>
        bar_moved;
    std::function<void(const MsiState& msi)> msi_changed;
    std::function<void(bool enabled, bool function_mask)> msix_changed;
  };

  // Reads the device's config space and BAR regions. FAILED_PRECONDITION for a non-PCI device or
  // a bridge; INTERNAL for a BAR or capability that cannot be emulated.
  static absl::StatusOr<std::shared_ptr<VfioPciConfig>> Create(const vfio::VfioDevice& device,
                                                               Callbacks callbacks);

  uint32_t ConfigRead(uint16_t reg) override;
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override;

  std::vector<VirtualBar> bars() const;
  std::optional<pci::MsixCapability> msix() const { return msix_; }
  // The MSI capability's pending-bits register, if the device's MSI vectors are maskable. What
  // it holds is the interrupt state, which the device owner reads live (see
  // VfioPciDevice::ConfigRead); ConfigRead here returns zeros for it, and writes are ignored.
  std::optional<uint16_t> msi_pending_register() const { return msi_pending_; }
  // The capabilities the guest sees, in list order (id, offset).
  std::vector<std::pair<uint8_t, uint8_t>> visible_capabilities() const { return visible_; }

 private:
  VfioPciConfig(const vfio::VfioDevice& device, Callbacks callbacks, pci::ConfigSpace space)
      : device_(device), callbacks_(std::move(callbacks)), space_(std::move(space)) {}
  static absl::StatusOr<pci::ConfigSpace> Build(const vfio::VfioDevice& device);
  std::array<std::optional<uint64_t>, 6> DecodedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForwardCommandLocked(std::vector<std::function<void()>>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const vfio::VfioDevice& device_;
  const Callbacks callbacks_;
  // Fixed at creation.
  std::vector<std::pair<uint8_t, uint8_t>> visible_;
  std::optional<pci::MsixCapability> msix_;
  std::optional<uint16_t> msi_pending_;
  std::vector<pci::Bar> bar_list_;

  RateLimitedLog guest_log_;  // Failures the guest's writes run into: it can write in a loop.

  mutable Mutex mu_;
  pci::ConfigSpace space_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vmmkit::passthrough

#endif  // VMMKIT_PASSTHROUGH_VFIO_PCI_CONFIG_H_
