// File: vmm/layout.h
// -----------------------------------------------------------------------------
// The guest-physical memory map of a vmm x86-64 guest, in one place:
//
//   0x0000_0500  GDT                  0x0000_6000  PVH start info, module list, memory map
//   0x0000_7000  boot_params (zero page), or the Multiboot information
//   0x0000_9000  page tables (4 GiB identity map: PML4, PDPT, 4 PDs)
//   0x0002_0000  kernel command line  0x0009_fc00  EBDA (reserved)
//   0x000e_0000  ACPI tables (RSDP first; 64 KiB, reserved)
//   0x000f_fff0  the reset stub, where a real-mode restart jumps (reserved up to 1 MiB)
//   0x0010_0000  kernel (bzImage protected-mode part), then RAM up to min(memory, 3 GiB)
//   0xc000_0000  PCI MMIO window (512 MiB)
//   0xe000_0000  PCIe ECAM for bus 0 (1 MiB, reserved)
//   0xfec0_0000  IOAPIC              0xfed9_0000  VT-d registers (with --iommu; 4 KiB)
//   0xfee0_0000  LAPIC
//   0x1_0000_0000  RAM above 3 GiB, if any
//   then, from the next 1 GiB boundary: the 64-bit PCI MMIO window (32 GiB), for 64-bit BARs
//
// Port I/O: 0x60-0x64 i8042, 0x70-0x71 CMOS RTC, 0x3b0-0x3b1 ACPI sleep control/status,
// 0x3f8-0x3ff COM1 (IRQ 4), 0x440 boot timer, 0xcf8-0xcff PCI configuration, 0xf4-0xf7 the
// debug-exit port (--debug_exit).

#ifndef VMMKIT_VMM_LAYOUT_H_
#define VMMKIT_VMM_LAYOUT_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "acpi/aml.h"
#include "loader/linux_loader.h"
#include "memory/address.h"
#include "memory/guest_memory.h"

namespace vmmkit::vmm {

inline constexpr GuestAddress kGdt(0x500);
inline constexpr GuestAddress kPvhStartInfo(0x6000);
inline constexpr GuestAddress kBootParams(0x7000);
inline constexpr GuestAddress kPageTables(0x9000);
inline constexpr GuestAddress kCmdline(0x20000);
inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr GuestAddress kAcpiTables(0xe0000);
inline constexpr uint64_t kAcpiTablesSize = 0x10000;
// f000:fff0, where a real-mode restart enters the BIOS. Linux jumps there to reboot when it finds a
// hardware-reduced FADT and was not booted through EFI (its reboot_type becomes EFI, whose reset
// it cannot call, then BIOS) unless its command line says otherwise (reboot=k).
inline constexpr GuestAddress kResetStub(0xffff0);
inline constexpr uint64_t kLowRamLimit = 0xc0000000;  // RAM below the 32-bit MMIO hole.
inline constexpr uint64_t kPciMmioStart = 0xc0000000;
inline constexpr uint64_t kPciMmioEnd = 0xdfffffff;
inline constexpr uint64_t kEcamBase = 0xe0000000;
inline constexpr uint64_t kEcamSize = 1 << 20;  // Bus 0 only.
inline constexpr uint32_t kIoapicAddress = 0xfec00000;
// The IOAPIC's requester id (bus 0xff, 00.0, where QEMU's q35 puts it): what its interrupts carry
// into interrupt remapping.
inline constexpr uint16_t kIoapicSourceId = 0xff00;
// Where q35 puts its VT-d unit, so software written against QEMU finds it.
inline constexpr uint64_t kVtdBase = 0xfed90000;
inline constexpr uint64_t kHighRamStart = uint64_t{1} << 32;
inline constexpr GuestAddress kTssAddress(0xfffbd000);
inline constexpr GuestAddress kIdentityMapAddress(0xfffbc000);

inline constexpr uint16_t kPortI8042 = 0x60;
inline constexpr uint16_t kPortCmos = 0x70;
inline constexpr uint16_t kPortAcpiSleep = 0x3b0;
inline constexpr uint16_t kPortCom1 = 0x3f8;
inline constexpr uint32_t kCom1Irq = 4;
inline constexpr uint32_t kGedGsi = 5;  // The ACPI generic event device (power button, hotplug).
inline constexpr uint32_t kRtcIrq = 8;
// The GED's status register (devices::AcpiEvents) and the PCI hotplug slots' registers
// (pci::HotplugSlots) right after it; below 0x1000, where Linux never puts PCI I/O BARs.
inline constexpr uint16_t kPortAcpiEvents = 0x0a00;
inline constexpr uint16_t kPortPciHotplug = kPortAcpiEvents + 4;
inline constexpr uint16_t kPortBootTimer = 0x440;
inline constexpr uint16_t kPortDebugExit = 0xf4;
inline constexpr uint16_t kPortPciConfig = 0xcf8;
inline constexpr uint16_t kPciIoStart = 0xc000;  // I/O BARs of passed-through devices: to 0xffff.
// Interrupts: INTx of PCI slots on IOAPIC inputs 16-23; MSI routes above the IOAPIC's 24.
inline constexpr uint32_t kPciIntxFirstGsi = 16;
inline constexpr uint32_t kMsiFirstGsi = 24;
inline constexpr uint32_t kMsiGsiCount = 1000;

// The RAM regions for `memory_bytes` of guest memory: below the 3 GiB hole, then above 4 GiB.
std::vector<std::pair<GuestAddress, uint64_t>> RamRegions(uint64_t memory_bytes);
// The e820 map for those regions: RAM, the reserved EBDA/ACPI area below 1 MiB, and ECAM.
std::vector<loader::E820Entry> E820Map(uint64_t memory_bytes);

// Writes the reset stub to kResetStub: the i8042 reset command, which ends the VM, then a halt
// loop. The same bytes do the same in real, protected and long mode.
absl::Status WriteResetStub(const GuestMemory& memory);

// INTx of PCI slot `slot` (every pin): one IOAPIC input per slot, GSIs 16-23 (slot modulo 8).
uint32_t SlotGsi(uint8_t slot);
// The 64-bit PCI MMIO window for a guest with `memory_bytes` of RAM: (start, size), above the
// RAM that sits above 4 GiB, as QEMU places its 64-bit PCI hole.
std::pair<uint64_t, uint64_t> PciMmio64Window(uint64_t memory_bytes);
inline constexpr uint64_t kPciMmio64Size = uint64_t{32} << 30;

// The DSDT body: the PCI root bridge (resources, both MMIO windows, INTx routing _PRT), COM1, the
// power button and its generic event device, and the S5 sleep state.
acpi::Aml BuildDsdt(uint64_t memory_bytes);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_LAYOUT_H_
