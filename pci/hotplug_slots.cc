#include "pci/hotplug_slots.h"

#include <cstring>

namespace vmmkit::pci {
namespace {
bool IsSlot(uint8_t slot) { return slot >= 1 && slot <= 31; }
}  // namespace

void HotplugSlots::Latch(uint32_t* slots, uint8_t slot) {
  {
    MutexLock lock(mu_);
    *slots |= 1u << slot;
  }
  notify_();
}

void HotplugSlots::DeviceAdded(uint8_t slot) {
  if (IsSlot(slot)) Latch(&pciu_, slot);
}

void HotplugSlots::RequestEject(uint8_t slot) {
  if (IsSlot(slot)) Latch(&pcid_, slot);
}

void HotplugSlots::CancelEject(uint8_t slot) {
  if (!IsSlot(slot)) return;
  MutexLock lock(mu_);
  pcid_ &= ~(1u << slot);
}

void HotplugSlots::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if (data.size() != 4 || (offset != kPciu && offset != kPcid)) return;  // Not the AML's way.
  uint32_t value;
  {
    MutexLock lock(mu_);
    uint32_t& reg = offset == kPciu ? pciu_ : pcid_;
    value = reg;
    reg = 0;
  }
  std::memcpy(data.data(), &value, 4);
}

void HotplugSlots::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (offset != kPcej || data.size() != 4) return;
  uint32_t slots;
  std::memcpy(&slots, data.data(), 4);
  for (uint8_t slot = 1; slot < 32; ++slot) {
    if (slots & (1u << slot)) ejected_(slot);
  }
}

}  // namespace vmmkit::pci
