#include "pci/root_bus.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vmmkit::pci {
namespace {

constexpr uint32_t kConfigEnable = 1u << 31;

// Where one configuration access goes: function, dword register, and the access's position in
// that dword. Accesses that cross a dword boundary (or are wider than 4 bytes) go nowhere.
struct ConfigTarget {
  uint8_t bus, slot, function;
  uint16_t reg;
  int shift;     // Bit offset of the access in the dword.
  uint8_t mask;  // Bytes of the dword the access covers.
};

std::optional<ConfigTarget> Target(uint32_t bdf_bits, uint64_t reg_offset, size_t size) {
  if (size == 0 || size > 4 || (reg_offset & 3) + size > 4) return std::nullopt;
  return ConfigTarget{.bus = static_cast<uint8_t>(bdf_bits >> 16),
                      .slot = static_cast<uint8_t>((bdf_bits >> 11) & 0x1f),
                      .function = static_cast<uint8_t>((bdf_bits >> 8) & 0x7),
                      .reg = static_cast<uint16_t>(reg_offset & ~uint64_t{3}),
                      .shift = static_cast<int>(reg_offset & 3) * 8,
                      .mask = static_cast<uint8_t>(((1u << size) - 1) << (reg_offset & 3))};
}

// CONFIG_ADDRESS: enable bit 31, bus 23:16, device 15:11, function 10:8, register 7:2.
std::optional<ConfigTarget> FromConfigAddress(uint32_t address, uint64_t data_offset, size_t size) {
  if (!(address & kConfigEnable)) return std::nullopt;
  return Target(address & 0x00ffff00, (address & 0xfc) | data_offset, size);
}

// ECAM: bus 27:20, device 19:15, function 14:12, register 11:0. Re-packed into the CONFIG_ADDRESS
// layout for Target().
std::optional<ConfigTarget> FromEcamOffset(uint64_t offset, size_t size) {
  const uint32_t bdf = static_cast<uint32_t>(
      ((offset >> 20) & 0xff) << 16 | ((offset >> 15) & 0x1f) << 11 | ((offset >> 12) & 0x7) << 8);
  return Target(bdf, offset & 0xfff, size);
}

uint32_t Load(absl::Span<const uint8_t> data) {
  uint32_t v = 0;
  for (size_t i = 0; i < data.size() && i < 4; ++i) v |= uint32_t{data[i]} << (8 * i);
  return v;
}

void Store(absl::Span<uint8_t> data, uint32_t v) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(v >> (8 * (i % 4)));
}

void ReadTarget(const PciRootBus& root, const std::optional<ConfigTarget>& t,
                absl::Span<uint8_t> data) {
  if (!t) return;  // The caller filled `data` with all-ones.
  Store(data, root.ConfigRead(t->bus, t->slot, t->function, t->reg) >> t->shift);
}

void WriteTarget(const PciRootBus& root, const std::optional<ConfigTarget>& t,
                 absl::Span<const uint8_t> data) {
  if (t) root.ConfigWrite(t->bus, t->slot, t->function, t->reg, Load(data) << t->shift, t->mask);
}

}  // namespace

uint32_t PciHostBridge::ConfigRead(uint16_t reg) {
  switch (reg) {
    case 0x00:
      return (uint32_t{kDeviceId} << 16) | kVendorId;
    case 0x04:
      return 0x00000000;  // Command / status.
    case 0x08:
      return 0x06000000;  // Class: bridge, host bridge; revision 0.
    case 0x0c:
      return 0x00000000;  // Header type 0, single function.
    case 0x2c:
      return (uint32_t{kDeviceId} << 16) | kVendorId;  // Subsystem IDs.
    default:
      return 0;
  }
}

PciRootBus::PciRootBus() { slots_[0] = std::make_shared<PciHostBridge>(); }

absl::Status PciRootBus::AddDevice(uint8_t slot, std::shared_ptr<PciDevice> device) {
  if (slot >= kSlots || device == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("PCI root bus: bad slot ", slot, " or null device"));
  }
  MutexLock lock(mu_);
  if (slots_[slot] != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("PCI root bus: slot ", slot, " is occupied"));
  }
  slots_[slot] = std::move(device);
  return absl::OkStatus();
}

absl::Status PciRootBus::RemoveDevice(uint8_t slot) {
  MutexLock lock(mu_);
  if (slot == 0 || slot >= kSlots || slots_[slot] == nullptr) {
    return absl::NotFoundError(absl::StrCat("PCI root bus: no removable device in slot ", slot));
  }
  slots_[slot] = nullptr;
  return absl::OkStatus();
}

std::optional<uint8_t> PciRootBus::FreeSlot() const {
  MutexLock lock(mu_);
  for (uint8_t s = 1; s < kSlots; ++s) {
    if (slots_[s] == nullptr) return s;
  }
  return std::nullopt;
}

bool PciRootBus::Occupied(uint8_t slot) const {
  if (slot >= kSlots) return true;
  MutexLock lock(mu_);
  return slots_[slot] != nullptr;
}

std::shared_ptr<PciDevice> PciRootBus::Get(uint8_t bus, uint8_t slot, uint8_t function) const {
  if (bus != 0 || slot >= kSlots || function != 0) return nullptr;
  MutexLock lock(mu_);
  return slots_[slot];
}

uint32_t PciRootBus::ConfigRead(uint8_t bus, uint8_t slot, uint8_t function, uint16_t reg) const {
  std::shared_ptr<PciDevice> d = Get(bus, slot, function);
  return d ? d->ConfigRead(reg) : 0xffffffff;
}

void PciRootBus::ConfigWrite(uint8_t bus, uint8_t slot, uint8_t function, uint16_t reg,
                             uint32_t value, uint8_t byte_mask) const {
  if (std::shared_ptr<PciDevice> d = Get(bus, slot, function))
    d->ConfigWrite(reg, value, byte_mask);
}

void PciConfigIo::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  MutexLock lock(mu_);
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) Store(data, address_);
    return;
  }
  ReadTarget(*root_, FromConfigAddress(address_, offset - 4, data.size()), data);
}

void PciConfigIo::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  MutexLock lock(mu_);
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) address_ = Load(data);
    return;
  }
  WriteTarget(*root_, FromConfigAddress(address_, offset - 4, data.size()), data);
}

void PciConfigMmio::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  ReadTarget(*root_, FromEcamOffset(offset, data.size()), data);
}

void PciConfigMmio::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  WriteTarget(*root_, FromEcamOffset(offset, data.size()), data);
}

}  // namespace vmmkit::pci
