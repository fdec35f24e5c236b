#include "vmm/layout.h"

#include <algorithm>

#include "acpi/aml.h"
#include "devices/pci.h"

namespace vmmkit::vmm {

std::vector<std::pair<GuestAddress, uint64_t>> RamRegions(uint64_t memory_bytes) {
  std::vector<std::pair<GuestAddress, uint64_t>> regions;
  const uint64_t low = std::min(memory_bytes, kLowRamLimit);
  regions.emplace_back(GuestAddress(0), low);
  if (memory_bytes > low) regions.emplace_back(GuestAddress(kHighRamStart), memory_bytes - low);
  return regions;
}

std::vector<loader::E820Entry> E820Map(uint64_t memory_bytes) {
  using loader::E820Type;
  const uint64_t low = std::min(memory_bytes, kLowRamLimit);
  std::vector<loader::E820Entry> map = {
      {0, kEbdaStart, E820Type::kRam},
      {kEbdaStart, 0xa0000 - kEbdaStart, E820Type::kReserved},
      {kAcpiTables.raw(), 0x100000 - kAcpiTables.raw(), E820Type::kReserved},
      {0x100000, low - 0x100000, E820Type::kRam},
      {kEcamBase, kEcamSize, E820Type::kReserved},
  };
  if (memory_bytes > low) map.push_back({kHighRamStart, memory_bytes - low, E820Type::kRam});
  return map;
}

uint32_t SlotGsi(uint8_t slot) { return kPciIntxFirstGsi + slot % 8; }

acpi::Aml BuildDsdt() {
  using namespace acpi;  // NOLINT: the AML vocabulary reads best unqualified.
  // _PRT: how each slot's INTx pins reach the IOAPIC (GSI routing, level-triggered active-low).
  std::vector<Aml> prt;
  for (uint8_t slot = 1; slot < devices::PciRootBus::kSlots; ++slot) {
    for (uint8_t pin = 0; pin < 4; ++pin) {
      prt.push_back(Package({Integer((uint64_t{slot} << 16) | 0xffff), Integer(pin), Integer(0),
                             Integer(SlotGsi(slot))}));
    }
  }
  return Terms({
      Scope("\\_SB_",
            {
                Device("PCI0",
                       {
                           Name("_HID", EisaId("PNP0A08")),
                           Name("_CID", EisaId("PNP0A03")),
                           Name("_SEG", Integer(0)),
                           Name("_UID", Integer(0)),
                           Name("_BBN", Integer(0)),
                           Name("_CRS", ResourceTemplate({
                                            WordBusNumber(0, 0),
                                            IoPort(kPortPciConfig, 8),
                                            WordIo(0x0000, 0x0cf7),
                                            WordIo(0x0d00, 0xffff),
                                            DWordMemory(kPciMmioStart, kPciMmioEnd, false),
                                        })),
                           Name("_PRT", Package(prt)),
                       }),
                Device("COM1",
                       {
                           Name("_HID", EisaId("PNP0501")),
                           Name("_UID", Integer(1)),
                           Name("_CRS",
                                ResourceTemplate({IoPort(kPortCom1, 8), IrqNoFlags(kCom1Irq)})),
                       }),
                // The power button a graceful Shutdown presses: a hardware-reduced platform
                // signals it through a Generic Event Device, whose one event is "button".
                Device("PWRB", {Name("_HID", EisaId("PNP0C0C")), Name("_UID", Integer(0))}),
                Device("GED0",
                       {
                           Name("_HID", String("ACPI0013")),
                           Name("_UID", Integer(0)),
                           Name("_CRS", ResourceTemplate({Interrupt(kGedGsi, true, false)})),
                           Method("_EVT", 1, true, {Notify("\\_SB_.PWRB", 0x80)}),
                       }),
            }),
      // Sleep type 5 written to the sleep control register powers off (AcpiSleepControl).
      Name("_S5_", Package({Integer(5), Integer(0)})),
  });
}

}  // namespace vmmkit::vmm
