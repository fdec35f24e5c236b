// Fuzzes the ACPI PCI hotplug slot registers (PCIU, PCID read-to-clear; PCEJ write) as a guest's
// AML drives them while the VMM adds devices, requests and cancels ejects. Checked: nothing
// crashes; the eject callback only ever names a slot 1-31 the guest wrote to PCEJ; PCIU and PCID
// hold only slots the VMM named.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "devices/testing/fuzz_access.h"
#include "pci/hotplug_slots.h"

namespace vmmkit::pci {
namespace {

void Run(const uint8_t* data, size_t size) {
  uint32_t named = 0;       // Slots the VMM has named, as bits.
  uint32_t eject_bits = 0;  // What the guest wrote to PCEJ last.
  HotplugSlots slots(
      [] {},
      [&](uint8_t slot) {
        fuzzing::Require(slot >= 1 && slot <= 31, "an eject of a slot that does not exist");
        fuzzing::Require((eject_bits >> slot) & 1, "an eject the guest did not write");
      });
  fuzzing::FuzzInput in(data, size);
  for (int ops = 0; !in.done() && ops < 1024; ++ops) {
    const uint8_t op = in.Take<uint8_t>();
    const uint8_t slot = in.Take<uint8_t>() % 40;
    switch (op % 5) {
      case 0:
        slots.DeviceAdded(slot);
        if (slot >= 1 && slot <= 31) named |= 1u << slot;
        break;
      case 1:
        slots.RequestEject(slot);
        if (slot >= 1 && slot <= 31) named |= 1u << slot;
        break;
      case 2:
        slots.CancelEject(slot);
        break;
      case 3: {
        eject_bits = in.Take<uint32_t>();
        slots.Write(HotplugSlots::kPcej,
                    absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&eject_bits), 4));
        break;
      }
      default: {
        for (uint64_t reg : {HotplugSlots::kPciu, HotplugSlots::kPcid}) {
          uint32_t v = 0;
          slots.Read(reg, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4));
          fuzzing::Require((v & ~named) == 0, "a slot the VMM never named");
        }
        eject_bits = ~0u;  // Any access: what it writes to PCEJ is the guest's eject.
        (void)devices::testing::FuzzAccess(in, slots, HotplugSlots::kSize);
        break;
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit::pci

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::pci::Run(data, size);
  return 0;
}
