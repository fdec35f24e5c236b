// File: pci/hotplug_slots.h
// -----------------------------------------------------------------------------
// HotplugSlots: the root bus's hotplug slots as the DSDT's ACPI PCI hotplug methods see them,
// which is how a VMM tells a stock guest "scan this slot for a new device" and "release the
// device in this slot", and learns that the guest has released it. Three 32-bit registers, a
// bit per slot, each accessed as a whole dword:
//
//   +0   PCIU  read: slots with a device the guest should scan for; reading clears them.
//   +4   PCID  read: slots whose device the guest is asked to eject; reading clears them.
//   +8   PCEJ  write: slots the guest has released (its _EJ0 method writes the slot's bit).
//
// Latching a slot's bit calls `notify`, which raises the platform's hotplug event (the GED's,
// see devices::AcpiEvents); the guest's scan method then reads PCIU/PCID and notifies each
// slot's device object (1: device check, 3: eject request), which Linux's acpiphp acts on.
// Slot 0, the host bridge, is never hot-plugged or ejected.
//
//   auto slots = std::make_shared<HotplugSlots>([&] { events->Raise(kPciHotplug); },
//                                               [&](uint8_t slot) { OnEjected(slot); });
//   RETURN_IF_ERROR(pio.Insert(slots, kPortPciHotplug, HotplugSlots::kSize));
//   slots->RequestEject(3);
//
// Thread-safety: all methods are safe from any thread; callbacks run without the lock held.

#ifndef VMMKIT_PCI_HOTPLUG_SLOTS_H_
#define VMMKIT_PCI_HOTPLUG_SLOTS_H_

#include <cstdint>
#include <functional>

#include "base/mutex.h"
#include "devices/bus.h"

namespace vmmkit::pci {

class HotplugSlots : public devices::BusDevice {
 public:
  static constexpr uint64_t kSize = 12;
  static constexpr uint64_t kPciu = 0, kPcid = 4, kPcej = 8;

  // `ejected` is called once per slot bit (1-31) the guest writes to PCEJ.
  HotplugSlots(std::function<void()> notify, std::function<void(uint8_t slot)> ejected)
      : notify_(std::move(notify)), ejected_(std::move(ejected)) {}

  // A device appeared in `slot` (1-31): the guest should scan it.
  void DeviceAdded(uint8_t slot);
  // Asks the guest to release the device in `slot` (1-31).
  void RequestEject(uint8_t slot);
  // Withdraws an eject request the guest has not read yet (a removal that timed out).
  void CancelEject(uint8_t slot);

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  void Latch(uint32_t* slots, uint8_t slot);

  const std::function<void()> notify_;
  const std::function<void(uint8_t)> ejected_;
  Mutex mu_;
  uint32_t pciu_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t pcid_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vmmkit::pci

#endif  // VMMKIT_PCI_HOTPLUG_SLOTS_H_
