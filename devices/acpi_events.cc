#include "devices/acpi_events.h"

#include <cstring>

namespace vmmkit::devices {

void AcpiEvents::Raise(uint32_t events) {
  {
    MutexLock lock(mu_);
    gsta_ |= events;
  }
  interrupt_();
}

void AcpiEvents::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if (offset != kGsta || data.size() != 4) return;  // Not how the AML reads it: no effect.
  uint32_t value;
  {
    MutexLock lock(mu_);
    value = gsta_;
    gsta_ = 0;
  }
  std::memcpy(data.data(), &value, 4);
}

}  // namespace vmmkit::devices
