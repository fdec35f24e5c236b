// File: passthrough/vfio_pci_config.h
// -----------------------------------------------------------------------------
// VfioPciConfig is the guest's view of a passed-through PCI function's configuration space: the
// part of a vfio-pci device a VMM must virtualize rather than pass through (groundwork for the
// vfio-pci passthrough device of issue 7).
//
//   - BARs are emulated: the guest sizes and places them (all-ones sizing, 64-bit pairs); the host
//     BAR addresses never show. The expansion ROM is hidden.
//   - The command register keeps I/O, memory, bus-master and INTx-disable (forwarded to the
//   device);
//     when decoding or a BAR address changes, `bar_moved` says where each BAR now appears (or that
//     it no longer does), so the VMM can move its KVM memory slot or MMIO trap.
//   - The capability list is filtered to what the VMM supports: MSI and MSI-X (emulated), power
//     management and PCI Express (read-only). Other capabilities and the extended space read as
//     absent. MSI address/data/enable and MSI-X enable/function-mask live here and are reported
//     through `msi_changed` / `msix_changed`; the VMM programs the real device with
//     VFIO_DEVICE_SET_IRQS and KVM routes, never through config writes.
//   - Everything else reads from a snapshot taken at creation (the status register is read live)
//     and guest writes to it are dropped: a guest cannot reprogram the device behind the VMM.
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
#include <vector>

#include "absl/status/statusor.h"
#include "base/log.h"
#include "base/mutex.h"
#include "pci/function.h"
#include "pci/root_bus.h"
#include "vfio/device.h"

namespace vmmkit::passthrough {

struct VirtualBar : pci::Bar {
  uint64_t address = 0;  // As the guest programmed it.
  uint32_t flags = 0;    // The read-only low bits (space, type, prefetchable).
};

struct MsiState {
  bool enabled = false;
  uint32_t vectors = 1;  // 2^MME.
  uint64_t address = 0;
  uint16_t data = 0;
  uint32_t mask = 0;  // Per-vector mask bits, if the capability has them.
  friend bool operator==(const MsiState&, const MsiState&) = default;
};

struct MsixInfo {
  uint16_t table_size = 0;  // Vectors.
  uint8_t table_bar = 0;
  uint32_t table_offset = 0;
  uint8_t pba_bar = 0;
  uint32_t pba_offset = 0;
};

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

  // Reads the device's config space and BAR regions. FAILED_PRECONDITION for a non-PCI device.
  static absl::StatusOr<std::shared_ptr<VfioPciConfig>> Create(const vfio::VfioDevice& device,
                                                               Callbacks callbacks);

  uint32_t ConfigRead(uint16_t reg) override;
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override;

  std::vector<VirtualBar> bars() const;
  std::optional<MsixInfo> msix() const { return msix_; }
  // The MSI capability's pending-bits register (its config offset), if the device's MSI vectors
  // are maskable. What it holds is the interrupt state, which the device owner reads live (see
  // VfioPciDevice::ConfigRead); ConfigRead here returns zeros for it, and writes are ignored.
  std::optional<uint16_t> msi_pending_register() const;
  // Offsets of the capabilities the guest sees, in list order (id, offset).
  std::vector<std::pair<uint8_t, uint8_t>> visible_capabilities() const { return visible_; }

 private:
  VfioPciConfig(const vfio::VfioDevice& device, Callbacks callbacks)
      : device_(device), callbacks_(std::move(callbacks)) {}
  absl::Status Init();
  uint8_t Get8(uint16_t off) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shadow_[off]; }
  void WriteByte(uint16_t off, uint8_t value, std::vector<std::function<void()>>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<uint64_t> Decoded(const VirtualBar& bar) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  MsiState MsiStateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const vfio::VfioDevice& device_;
  const Callbacks callbacks_;
  std::vector<std::pair<uint8_t, uint8_t>> visible_;
  std::optional<uint8_t> msi_cap_, msix_cap_;
  std::optional<MsixInfo> msix_;
  uint16_t msi_control_ro_ = 0;  // The device's MSI capability bits (64-bit, masking, MMC).

  RateLimitedLog guest_log_;  // Failures the guest's writes run into: it can write in a loop.

  mutable Mutex mu_;
  std::array<uint8_t, 256> shadow_ ABSL_GUARDED_BY(mu_) = {};
  // Index of the low dword.
  std::array<std::optional<VirtualBar>, 6> bars_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vmmkit::passthrough

#endif  // VMMKIT_PASSTHROUGH_VFIO_PCI_CONFIG_H_
