#include "devices/acpi_events.h"

#include <algorithm>
#include <cstring>

namespace vmmkit::devices {

void AcpiEvents::Raise(uint32_t event, uint32_t* slots, uint8_t slot) {
  {
    MutexLock lock(mu_);
    gsta_ |= event;
    if (slots != nullptr) *slots |= 1u << slot;
  }
  interrupt_();
}

void AcpiEvents::PressPowerButton() { Raise(kPowerButton, nullptr, 0); }

void AcpiEvents::DeviceAdded(uint8_t slot) {
  if (slot == 0 || slot > 31) return;
  Raise(kPciHotplug, &pciu_, slot);
}

void AcpiEvents::RequestEject(uint8_t slot) {
  if (slot == 0 || slot > 31) return;
  Raise(kPciHotplug, &pcid_, slot);
}

void AcpiEvents::CancelEject(uint8_t slot) {
  if (slot == 0 || slot > 31) return;
  MutexLock lock(mu_);
  pcid_ &= ~(1u << slot);
}

void AcpiEvents::Read(uint64_t offset, absl::Span<uint8_t> data) {
  uint32_t value = 0;
  if (data.size() == 4 && offset % 4 == 0) {  // Anything else is not how the AML reads them.
    MutexLock lock(mu_);
    uint32_t* reg = offset == kGsta   ? &gsta_
                    : offset == kPciu ? &pciu_
                    : offset == kPcid ? &pcid_
                                      : nullptr;
    if (reg != nullptr) {
      value = *reg;
      *reg = 0;
    }
  }
  std::memset(data.data(), 0, data.size());
  std::memcpy(data.data(), &value, std::min<size_t>(data.size(), 4));
}

void AcpiEvents::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (offset != kPcej || data.size() != 4) return;
  uint32_t slots;
  std::memcpy(&slots, data.data(), 4);
  slots &= ~1u;  // Slot 0 is the host bridge.
  for (uint8_t slot = 1; slot < 32; ++slot) {
    if (slots & (1u << slot)) ejected_(slot);
  }
}

}  // namespace vmmkit::devices
