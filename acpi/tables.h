// File: acpi/tables.h
// -----------------------------------------------------------------------------
// ACPI tables for an x86 guest (ACPI 6.x, chapter 5): RSDP, XSDT, FADT, MADT, MCFG and DSDT,
// and Intel's DMAR (VT-d specification, chapter 8) for a guest-visible IOMMU,
// each returned as bytes with its length and checksum filled in, plus a writer that lays a set
// of them out in guest memory and links them (RSDP -> XSDT -> tables, FADT -> DSDT).
//
// The FADT describes a hardware-reduced ACPI platform: no SCI, no PM1 blocks; power-off goes
// through the sleep control register and reboot through the reset register, both I/O ports the
// VMM emulates. That is what Linux needs to find CPUs (MADT), PCI (MCFG + DSDT) and power off.
//
//   AcpiTables tables{.dsdt_body = aml, .fadt = {...}, .madt = {...}, .mcfg = {...}};
//   ASSIGN_OR_RETURN(GuestAddress rsdp, WriteAcpiTables(memory, GuestAddress(0xe0000), tables));

#ifndef VMMKIT_ACPI_TABLES_H_
#define VMMKIT_ACPI_TABLES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "acpi/aml.h"
#include "memory/guest_memory.h"

namespace vmmkit::acpi {

// The 8-bit sum of `bytes`; a table is valid when the sum over all of it is 0.
uint8_t Checksum(absl::Span<const uint8_t> bytes);

// An ACPI Generic Address Structure.
struct GenericAddress {
  uint8_t space_id = 0;  // 0 system memory, 1 system I/O.
  uint8_t bit_width = 0;
  uint8_t bit_offset = 0;
  uint8_t access_size = 0;  // 1 byte, 2 word, 3 dword, 4 qword.
  uint64_t address = 0;
};
GenericAddress SystemIoByte(uint16_t port);

struct FadtConfig {
  GenericAddress reset_register;  // Writing reset_value here resets the machine.
  uint8_t reset_value = 0;
  GenericAddress sleep_control;  // Hardware-reduced sleep (S5 = power off) control register.
  GenericAddress sleep_status;
  uint16_t iapc_boot_arch = 0;  // IA-PC boot architecture flags (kIapc*).
};
inline constexpr uint16_t kIapc8042 = 1 << 1;
inline constexpr uint16_t kIapcVgaNotPresent = 1 << 2;
inline constexpr uint16_t kIapcMsiNotSupported = 1 << 3;

struct InterruptOverride {
  uint8_t source;  // ISA IRQ.
  uint32_t gsi;
  uint16_t flags;  // MPS INTI flags: polarity bits 0-1, trigger mode bits 2-3.
};

struct MadtConfig {
  uint32_t local_apic_address = 0xfee00000;
  std::vector<uint8_t> apic_ids;  // One enabled processor per entry, ACPI processor UID = index.
  uint8_t ioapic_id = 0;
  uint32_t ioapic_address = 0xfec00000;
  uint32_t ioapic_gsi_base = 0;
  std::vector<InterruptOverride> overrides;
  bool pcat_compat = true;  // Dual 8259 PICs are present.
};

struct McfgConfig {
  uint64_t ecam_base;
  uint16_t segment = 0;
  uint8_t start_bus = 0;
  uint8_t end_bus = 0;
};

// A DMA Remapping table with one remapping unit (DRHD) on segment 0.
struct DmarConfig {
  uint8_t address_width = 39;   // The DMA address width (the table holds it minus one).
  uint64_t register_base = 0;   // The unit's 4 KiB register block.
  bool include_pci_all = true;  // The unit covers every PCI device, hot-added ones too.
  bool interrupt_remapping = false;
  // The IOAPIC behind the unit (a device scope of type 3): the MADT's IOAPIC id, and the
  // requester id its interrupts carry. Linux enables interrupt remapping only if every IOAPIC has
  // one.
  struct IoapicScope {
    uint8_t enumeration_id = 0;
    uint16_t source_id = 0;  // bus << 8 | device << 3 | function.
  };
  std::optional<IoapicScope> ioapic;
};

std::vector<uint8_t> Rsdp(uint64_t xsdt_address);
std::vector<uint8_t> Xsdt(absl::Span<const uint64_t> table_addresses);
std::vector<uint8_t> Fadt(const FadtConfig& config, uint64_t dsdt_address);
std::vector<uint8_t> Madt(const MadtConfig& config);
std::vector<uint8_t> Mcfg(const McfgConfig& config);
std::vector<uint8_t> Dsdt(const Aml& body);
std::vector<uint8_t> Dmar(const DmarConfig& config);

struct AcpiTables {
  Aml dsdt_body;
  FadtConfig fadt;
  MadtConfig madt;
  std::optional<McfgConfig> mcfg;
  std::optional<DmarConfig> dmar;
};

// Writes the RSDP at `base` and the tables after it (8-byte aligned), all within
// [base, base + max_size). Returns the RSDP's address. RESOURCE_EXHAUSTED if they do not fit.
absl::StatusOr<GuestAddress> WriteAcpiTables(const GuestMemory& memory, GuestAddress base,
                                             uint64_t max_size, const AcpiTables& tables);

}  // namespace vmmkit::acpi

#endif  // VMMKIT_ACPI_TABLES_H_
