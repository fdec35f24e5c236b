#include "devices/pci.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vmmkit::devices {
namespace {

constexpr uint32_t kConfigEnable = 1u << 31;

// Splits an access of data.size() bytes at byte offset `reg` (within one dword) into the dword
// register, the byte shift and the byte mask. Accesses that cross a dword are not delivered.
bool Decompose(uint64_t reg, size_t size, uint16_t* dword, int* shift, uint8_t* mask) {
  if (size == 0 || size > 4 || (reg & 3) + size > 4) return false;
  *dword = static_cast<uint16_t>(reg & ~uint64_t{3});
  *shift = static_cast<int>(reg & 3) * 8;
  *mask = static_cast<uint8_t>(((1u << size) - 1) << (reg & 3));
  return true;
}

uint32_t Load(absl::Span<const uint8_t> data) {
  uint32_t v = 0;
  for (size_t i = 0; i < data.size() && i < 4; ++i) v |= uint32_t{data[i]} << (8 * i);
  return v;
}

void Store(absl::Span<uint8_t> data, uint32_t v) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(v >> (8 * (i % 4)));
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
  std::lock_guard<std::mutex> lock(mu_);
  if (slots_[slot] != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("PCI root bus: slot ", slot, " is occupied"));
  }
  slots_[slot] = std::move(device);
  return absl::OkStatus();
}

absl::Status PciRootBus::RemoveDevice(uint8_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (slot == 0 || slot >= kSlots || slots_[slot] == nullptr) {
    return absl::NotFoundError(absl::StrCat("PCI root bus: no removable device in slot ", slot));
  }
  slots_[slot] = nullptr;
  return absl::OkStatus();
}

std::optional<uint8_t> PciRootBus::FreeSlot() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint8_t s = 1; s < kSlots; ++s) {
    if (slots_[s] == nullptr) return s;
  }
  return std::nullopt;
}

std::shared_ptr<PciDevice> PciRootBus::Get(uint8_t bus, uint8_t slot, uint8_t function) const {
  if (bus != 0 || slot >= kSlots || function != 0) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) Store(data, address_);
    return;
  }
  uint16_t dword;
  int shift;
  uint8_t mask;
  if (!(address_ & kConfigEnable) || !Decompose(offset - 4, data.size(), &dword, &shift, &mask)) {
    return;
  }
  const uint16_t reg = static_cast<uint16_t>((address_ & 0xfc) | dword);
  const uint32_t v = root_->ConfigRead(static_cast<uint8_t>(address_ >> 16),
                                       static_cast<uint8_t>((address_ >> 11) & 0x1f),
                                       static_cast<uint8_t>((address_ >> 8) & 0x7), reg);
  Store(data, v >> shift);
}

void PciConfigIo::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) address_ = Load(data);
    return;
  }
  uint16_t dword;
  int shift;
  uint8_t mask;
  if (!(address_ & kConfigEnable) || !Decompose(offset - 4, data.size(), &dword, &shift, &mask)) {
    return;
  }
  root_->ConfigWrite(static_cast<uint8_t>(address_ >> 16),
                     static_cast<uint8_t>((address_ >> 11) & 0x1f),
                     static_cast<uint8_t>((address_ >> 8) & 0x7),
                     static_cast<uint16_t>((address_ & 0xfc) | dword), Load(data) << shift, mask);
}

void PciConfigMmio::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  uint16_t dword;
  int shift;
  uint8_t mask;
  if (!Decompose(offset & 0xfff, data.size(), &dword, &shift, &mask)) return;
  const uint32_t v = root_->ConfigRead(static_cast<uint8_t>(offset >> 20),
                                       static_cast<uint8_t>((offset >> 15) & 0x1f),
                                       static_cast<uint8_t>((offset >> 12) & 0x7), dword);
  Store(data, v >> shift);
}

void PciConfigMmio::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  uint16_t dword;
  int shift;
  uint8_t mask;
  if (!Decompose(offset & 0xfff, data.size(), &dword, &shift, &mask)) return;
  root_->ConfigWrite(static_cast<uint8_t>(offset >> 20),
                     static_cast<uint8_t>((offset >> 15) & 0x1f),
                     static_cast<uint8_t>((offset >> 12) & 0x7), dword, Load(data) << shift, mask);
}

}  // namespace vmmkit::devices
