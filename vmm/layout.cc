#include "vmm/layout.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "acpi/aml.h"
#include "devices/acpi_events.h"
#include "pci/hotplug_slots.h"
#include "pci/root_bus.h"

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

absl::Status WriteResetStub(const GuestMemory& memory) {
  static constexpr uint8_t kStub[] = {
      0xb0, 0xfe,  // mov al, 0xfe
      0xe6, 0x64,  // out 0x64, al      ; i8042: pulse the reset line
      0xf4,        // hlt
      0xeb, 0xfd,  // jmp -3            ; back to hlt
  };
  return memory.Write(kResetStub, kStub);
}

uint32_t SlotGsi(uint8_t slot) { return kPciIntxFirstGsi + slot % 8; }

std::pair<uint64_t, uint64_t> PciMmio64Window(uint64_t memory_bytes) {
  const uint64_t high_ram = memory_bytes > kLowRamLimit ? memory_bytes - kLowRamLimit : 0;
  const uint64_t gib = uint64_t{1} << 30;
  const uint64_t start = (kHighRamStart + high_ram + gib - 1) / gib * gib;
  return {start, kPciMmio64Size};
}

acpi::Aml BuildDsdt(uint64_t memory_bytes) {
  const auto [mmio64, mmio64_size] = PciMmio64Window(memory_bytes);
  using namespace acpi;  // NOLINT: the AML vocabulary reads best unqualified.
  // _PRT: how each slot's INTx pins reach the IOAPIC (GSI routing, level-triggered active-low).
  std::vector<Aml> prt;
  for (uint8_t slot = 1; slot < pci::PciRootBus::kSlots; ++slot) {
    for (uint8_t pin = 0; pin < 4; ++pin) {
      prt.push_back(Package({Integer((uint64_t{slot} << 16) | 0xffff), Integer(pin), Integer(0),
                             Integer(SlotGsi(slot))}));
    }
  }
  // ACPI PCI hotplug (pci::HotplugSlots' registers): a device object per slot that the guest may
  // eject, and PSCN, which reads the slots to scan (PCIU) and to release (PCID) once each and
  // notifies the slots' objects: 1 "device check", 3 "eject request". Linux's acpiphp does the
  // rest, then calls the slot's _EJ0, which reports the release through PCEJ.
  std::vector<Aml> pci0 = {
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
                       QWordMemory(mmio64, mmio64 + mmio64_size - 1, false),
                   })),
      Name("_PRT", Package(prt)),
      OperationRegion("PHPR", RegionSpace::kSystemIo, kPortPciHotplug, pci::HotplugSlots::kSize),
      Field("PHPR", {{"PCIU", 32}, {"PCID", 32}, {"PCEJ", 32}}),
  };
  std::vector<Aml> scan = {Store(Call("PCIU"), Local(0)), Store(Call("PCID"), Local(1))};
  for (uint8_t slot = 1; slot < pci::PciRootBus::kSlots; ++slot) {
    const std::string name = absl::StrFormat("S%02X", slot);
    pci0.push_back(Device(
        name, {
                  Name("_ADR", Integer(uint64_t{slot} << 16)),
                  Name("_SUN", Integer(slot)),
                  Method("_EJ0", 1, false, {Store(Integer(uint64_t{1} << slot), Call("PCEJ"))}),
              }));
    scan.push_back(If(And(Local(0), Integer(uint64_t{1} << slot)), {Notify(name, 1)}));
    scan.push_back(If(And(Local(1), Integer(uint64_t{1} << slot)), {Notify(name, 3)}));
  }
  pci0.push_back(Method("PSCN", 0, true, scan));
  return Terms({
      Scope("\\_SB_",
            {
                Device("PCI0", pci0),
                Device("COM1",
                       {
                           Name("_HID", EisaId("PNP0501")),
                           Name("_UID", Integer(1)),
                           Name("_CRS",
                                ResourceTemplate({IoPort(kPortCom1, 8), IrqNoFlags(kCom1Irq)})),
                       }),
                // The RTC, so that Linux's rtc_cmos binds it with its interrupt.
                Device(
                    "RTC_",
                    {
                        Name("_HID", EisaId("PNP0B00")),
                        Name("_CRS", ResourceTemplate({IoPort(kPortCmos, 2), IrqNoFlags(kRtcIrq)})),
                    }),
                // A hardware-reduced platform signals events through a Generic Event Device:
                // its _EVT reads which happened (GSTA, read-clear) and dispatches them.
                Device("PWRB", {Name("_HID", EisaId("PNP0C0C")), Name("_UID", Integer(0))}),
                Device("GED0",
                       {
                           Name("_HID", String("ACPI0013")),
                           Name("_UID", Integer(0)),
                           Name("_CRS", ResourceTemplate({Interrupt(kGedGsi, true, false)})),
                           OperationRegion("GDST", RegionSpace::kSystemIo, kPortAcpiEvents,
                                           devices::AcpiEvents::kSize),
                           Field("GDST", {{"GSTA", 32}}),
                           Method("_EVT", 1, true,
                                  {
                                      Store(Call("GSTA"), Local(0)),
                                      If(And(Local(0), Integer(devices::AcpiEvents::kPowerButton)),
                                         {Notify("\\_SB_.PWRB", 0x80)}),
                                      If(And(Local(0), Integer(devices::AcpiEvents::kPciHotplug)),
                                         {Call("\\_SB_.PCI0.PSCN")}),
                                  }),
                       }),
            }),
      // Sleep type 5 written to the sleep control register powers off (AcpiSleepControl).
      Name("_S5_", Package({Integer(5), Integer(0)})),
  });
}

}  // namespace vmmkit::vmm
