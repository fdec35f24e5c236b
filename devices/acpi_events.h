// File: devices/acpi_events.h
// -----------------------------------------------------------------------------
// AcpiEvents: the I/O registers behind the DSDT's generic event device (GED) and its ACPI PCI
// hotplug methods, which is how a VMM tells a stock guest "the power button was pressed", "scan
// this slot for a new device" and "release the device in this slot", and learns that the guest
// has released it. Every register is 32 bits, accessed as a whole dword:
//
//   +0   GSTA  read: pending events (kPowerButton, kPciHotplug); reading clears them.
//   +4   PCIU  read: slots (bit per slot) with a device the guest should scan for; read clears.
//   +8   PCID  read: slots whose device the guest is asked to eject; read clears.
//   +12  PCEJ  write: slots the guest has released (its _EJ0 method writes the slot's bit).
//
// Raising an event latches its bits and raises the GED interrupt; the guest's _EVT method reads
// GSTA and, for kPciHotplug, its PSCN method reads PCIU/PCID and notifies each slot's device
// object (1: device check, 3: eject request), which Linux's acpiphp acts on with no help from
// guest userspace.
//
//   auto events = std::make_shared<AcpiEvents>([&] { ged_irq.Write(1); },
//                                              [&](uint8_t slot) { OnEjected(slot); });
//   RETURN_IF_ERROR(pio.Insert(events, kPortAcpiEvents, AcpiEvents::kSize));
//   events->RequestEject(3);
//
// Thread-safety: all methods are safe from any thread; callbacks run without the lock held.

#ifndef VMMKIT_DEVICES_ACPI_EVENTS_H_
#define VMMKIT_DEVICES_ACPI_EVENTS_H_

#include <cstdint>
#include <functional>

#include "base/mutex.h"
#include "devices/bus.h"

namespace vmmkit::devices {

class AcpiEvents : public BusDevice {
 public:
  static constexpr uint64_t kSize = 16;
  static constexpr uint32_t kPowerButton = 1u << 0;
  static constexpr uint32_t kPciHotplug = 1u << 1;
  static constexpr uint64_t kGsta = 0, kPciu = 4, kPcid = 8, kPcej = 12;

  // `interrupt` raises the GED's (edge-triggered) interrupt. `ejected` is called once per slot
  // bit the guest writes to PCEJ (slots 1-31; slot 0, the host bridge, is never ejectable).
  AcpiEvents(std::function<void()> interrupt, std::function<void(uint8_t slot)> ejected)
      : interrupt_(std::move(interrupt)), ejected_(std::move(ejected)) {}

  void PressPowerButton();
  // A device appeared in `slot` (1-31): the guest should scan it.
  void DeviceAdded(uint8_t slot);
  // Asks the guest to release the device in `slot` (1-31).
  void RequestEject(uint8_t slot);
  // Withdraws an eject request the guest has not read yet (a removal that timed out).
  void CancelEject(uint8_t slot);

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  void Raise(uint32_t event, uint32_t* slots, uint8_t slot);

  const std::function<void()> interrupt_;
  const std::function<void(uint8_t)> ejected_;
  Mutex mu_;
  uint32_t gsta_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t pciu_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t pcid_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vmmkit::devices

#endif  // VMMKIT_DEVICES_ACPI_EVENTS_H_
