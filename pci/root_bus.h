// File: pci/root_bus.h
// -----------------------------------------------------------------------------
// PCI configuration space for a single root bus (bus 0): the legacy mechanism #1 ports
// (CONFIG_ADDRESS at 0xcf8, CONFIG_DATA at 0xcfc-0xcff) and PCI Express ECAM (1 MiB of MMIO for
// bus 0), both routed to the PciDevice in each slot. Empty slots read as all-ones, as on real
// hardware, which is how the guest learns they are empty. The host bridge sits at 00:00.0.
//
//   auto root = std::make_shared<PciRootBus>();
//   RETURN_IF_ERROR(pio.Insert(std::make_shared<PciConfigIo>(root), 0xcf8, 8));
//   RETURN_IF_ERROR(mmio.Insert(std::make_shared<PciConfigMmio>(root), kEcamBase, 1 << 20));
//   RETURN_IF_ERROR(root->AddDevice(3, my_passthrough_device));
//
// Thread-safety: all classes are safe to use from any thread.

#ifndef VMMKIT_PCI_ROOT_BUS_H_
#define VMMKIT_PCI_ROOT_BUS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "base/mutex.h"
#include "devices/bus.h"

namespace vmmkit::pci {

// One PCI function's configuration space (256 bytes, or 4 KiB for PCIe).
class PciDevice {
 public:
  virtual ~PciDevice() = default;
  // `reg` is a dword-aligned offset below 4096.
  virtual uint32_t ConfigRead(uint16_t reg) = 0;
  // Writes the bytes of `value` selected by `byte_mask` (bit i = byte i) at dword `reg`.
  virtual void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) = 0;
};

// 00:00.0: a host bridge with a read-only type-0 header.
class PciHostBridge : public PciDevice {
 public:
  static constexpr uint16_t kVendorId = 0x1b36;  // Red Hat, Inc. (QEMU's virtual devices).
  static constexpr uint16_t kDeviceId = 0x0008;  // PCIe host bridge.
  uint32_t ConfigRead(uint16_t reg) override;
  void ConfigWrite(uint16_t, uint32_t, uint8_t) override {}
};

class PciRootBus {
 public:
  static constexpr int kSlots = 32;
  PciRootBus();

  // ALREADY_EXISTS if `slot` is taken; INVALID_ARGUMENT if slot >= 32 or device is null.
  absl::Status AddDevice(uint8_t slot, std::shared_ptr<PciDevice> device);
  absl::Status RemoveDevice(uint8_t slot);
  // The lowest free slot, if any.
  std::optional<uint8_t> FreeSlot() const;
  // Whether `slot` holds a device (slots >= 32 count as occupied: nothing can go there).
  bool Occupied(uint8_t slot) const;

  // Function 0 of each slot only (no multi-function devices yet).
  uint32_t ConfigRead(uint8_t bus, uint8_t slot, uint8_t function, uint16_t reg) const;
  void ConfigWrite(uint8_t bus, uint8_t slot, uint8_t function, uint16_t reg, uint32_t value,
                   uint8_t byte_mask) const;

 private:
  std::shared_ptr<PciDevice> Get(uint8_t bus, uint8_t slot, uint8_t function) const;
  mutable Mutex mu_;
  std::array<std::shared_ptr<PciDevice>, kSlots> slots_ ABSL_GUARDED_BY(mu_);
};

// Configuration mechanism #1: CONFIG_ADDRESS (offset 0, 32-bit) and CONFIG_DATA (offsets 4-7).
class PciConfigIo : public devices::BusDevice {
 public:
  explicit PciConfigIo(std::shared_ptr<PciRootBus> root) : root_(std::move(root)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::shared_ptr<PciRootBus> root_;
  Mutex mu_;
  uint32_t address_ ABSL_GUARDED_BY(mu_) = 0;
};

// ECAM: offset = bus << 20 | device << 15 | function << 12 | register.
class PciConfigMmio : public devices::BusDevice {
 public:
  explicit PciConfigMmio(std::shared_ptr<PciRootBus> root) : root_(std::move(root)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::shared_ptr<PciRootBus> root_;
};

}  // namespace vmmkit::pci

#endif  // VMMKIT_PCI_ROOT_BUS_H_
