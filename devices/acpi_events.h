// File: devices/acpi_events.h
// -----------------------------------------------------------------------------
// AcpiEvents: the status register behind the DSDT's generic event device (GED), which is how a
// VMM tells a stock guest "the power button was pressed" or "look at the PCI hotplug slots"
// with no help from guest userspace. One 32-bit register, accessed as a whole dword:
//
//   +0   GSTA  read: pending events (kPowerButton, kPciHotplug); reading clears them.
//
// Raising an event latches its bit and raises the GED interrupt; the guest's _EVT method reads
// GSTA and dispatches each event (the power button object's notify, the PCI root's slot scan;
// the slots' own registers are pci::HotplugSlots').
//
//   auto events = std::make_shared<AcpiEvents>([&] { ged_irq.Trigger(); });
//   RETURN_IF_ERROR(pio.Insert(events, kPortAcpiEvents, AcpiEvents::kSize));
//   events->PressPowerButton();
//
// Thread-safety: all methods are safe from any thread; the interrupt callback runs without the
// lock held.

#ifndef VMMKIT_DEVICES_ACPI_EVENTS_H_
#define VMMKIT_DEVICES_ACPI_EVENTS_H_

#include <cstdint>
#include <functional>

#include "base/mutex.h"
#include "devices/bus.h"

namespace vmmkit::devices {

class AcpiEvents : public BusDevice {
 public:
  static constexpr uint64_t kSize = 4;
  static constexpr uint32_t kPowerButton = 1u << 0;
  static constexpr uint32_t kPciHotplug = 1u << 1;
  static constexpr uint64_t kGsta = 0;

  // `interrupt` raises the GED's (edge-triggered) interrupt.
  explicit AcpiEvents(std::function<void()> interrupt) : interrupt_(std::move(interrupt)) {}

  // Latches `events` (a mask of the k* bits) and raises the interrupt.
  void Raise(uint32_t events);
  void PressPowerButton() { Raise(kPowerButton); }

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t, absl::Span<const uint8_t>) override {}  // Read-only.

 private:
  const std::function<void()> interrupt_;
  Mutex mu_;
  uint32_t gsta_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vmmkit::devices

#endif  // VMMKIT_DEVICES_ACPI_EVENTS_H_
