#include "acpi/tables.h"

#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::acpi {
namespace {

constexpr char kOemId[] = "VMMKIT";    // 6 characters.
constexpr char kCreatorId[] = "VMMK";  // 4 characters.
constexpr size_t kHeaderSize = 36;

// A System Description Table under construction: header first, body appended.
class Sdt {
 public:
  Sdt(const char signature[4], uint8_t revision, const char oem_table_id[8]) {
    bytes_.resize(kHeaderSize, 0);
    std::memcpy(&bytes_[0], signature, 4);
    bytes_[8] = revision;
    std::memcpy(&bytes_[10], kOemId, 6);
    std::memcpy(&bytes_[16], oem_table_id, 8);
    Put<uint32_t>(24, 1);  // OEM revision.
    std::memcpy(&bytes_[28], kCreatorId, 4);
    Put<uint32_t>(32, 1);  // Creator revision.
  }
  template <typename T>
  void Append(T value) {
    // Integers only: a container here would copy its pointers, not its contents.
    static_assert(std::is_integral_v<T>, "use AppendBytes for byte sequences");
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(&bytes_[at], &value, sizeof(T));
  }
  void AppendBytes(absl::Span<const uint8_t> more) {
    bytes_.insert(bytes_.end(), more.begin(), more.end());
  }
  void Zeros(size_t n) { bytes_.resize(bytes_.size() + n, 0); }
  template <typename T>
  void Put(size_t offset, T value) {
    std::memcpy(&bytes_[offset], &value, sizeof(T));
  }
  size_t size() const { return bytes_.size(); }
  std::vector<uint8_t> Finish() {
    Put<uint32_t>(4, static_cast<uint32_t>(bytes_.size()));
    bytes_[9] = 0;
    bytes_[9] = static_cast<uint8_t>(-Checksum(bytes_));
    return bytes_;
  }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace

uint8_t Checksum(absl::Span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return sum;
}

GenericAddress SystemIoByte(uint16_t port) {
  return GenericAddress{
      .space_id = 1, .bit_width = 8, .bit_offset = 0, .access_size = 1, .address = port};
}

std::vector<uint8_t> Rsdp(uint64_t xsdt_address) {
  std::vector<uint8_t> r(36, 0);
  std::memcpy(&r[0], "RSD PTR ", 8);
  std::memcpy(&r[9], kOemId, 6);
  r[15] = 2;  // Revision: ACPI 2.0+ (has an XSDT).
  const uint32_t length = 36;
  std::memcpy(&r[20], &length, 4);
  std::memcpy(&r[24], &xsdt_address, 8);
  r[8] = static_cast<uint8_t>(-Checksum(absl::MakeSpan(r).subspan(0, 20)));  // ACPI 1.0 part.
  r[32] = static_cast<uint8_t>(-Checksum(r));                                // Whole structure.
  return r;
}

std::vector<uint8_t> Xsdt(absl::Span<const uint64_t> table_addresses) {
  Sdt t("XSDT", 1, "VMMKXSDT");
  for (uint64_t a : table_addresses) t.Append(a);
  return t.Finish();
}

std::vector<uint8_t> Fadt(const FadtConfig& c, uint64_t dsdt_address) {
  Sdt t("FACP", 6, "VMMKFACP");
  t.Zeros(276 - kHeaderSize);
  t.Put<uint32_t>(40, static_cast<uint32_t>(dsdt_address));  // DSDT (32-bit copy).
  t.Put<uint16_t>(109, c.iapc_boot_arch);
  constexpr uint32_t kResetRegSup = 1 << 10, kHwReducedAcpi = 1 << 20;
  t.Put<uint32_t>(112, kResetRegSup | kHwReducedAcpi);
  auto put_gas = [&t](size_t offset, const GenericAddress& g) {
    t.Put<uint8_t>(offset, g.space_id);
    t.Put<uint8_t>(offset + 1, g.bit_width);
    t.Put<uint8_t>(offset + 2, g.bit_offset);
    t.Put<uint8_t>(offset + 3, g.access_size);
    t.Put<uint64_t>(offset + 4, g.address);
  };
  put_gas(116, c.reset_register);
  t.Put<uint8_t>(128, c.reset_value);
  t.Put<uint8_t>(131, 1);              // FADT minor version: 6.1.
  t.Put<uint64_t>(140, dsdt_address);  // X_DSDT.
  put_gas(244, c.sleep_control);
  put_gas(256, c.sleep_status);
  uint64_t vendor = 0;
  std::memcpy(&vendor, "VMMKIT\0\0", 8);
  t.Put<uint64_t>(268, vendor);  // Hypervisor vendor identity.
  return t.Finish();
}

std::vector<uint8_t> Madt(const MadtConfig& c) {
  Sdt t("APIC", 5, "VMMKMADT");
  t.Append(c.local_apic_address);
  t.Append<uint32_t>(c.pcat_compat ? 1 : 0);
  for (size_t i = 0; i < c.apic_ids.size(); ++i) {
    t.Append<uint8_t>(0);  // Processor Local APIC.
    t.Append<uint8_t>(8);
    t.Append<uint8_t>(static_cast<uint8_t>(i));  // ACPI processor UID.
    t.Append<uint8_t>(c.apic_ids[i]);
    t.Append<uint32_t>(1);  // Enabled.
  }
  t.Append<uint8_t>(1);  // I/O APIC.
  t.Append<uint8_t>(12);
  t.Append<uint8_t>(c.ioapic_id);
  t.Append<uint8_t>(0);
  t.Append(c.ioapic_address);
  t.Append(c.ioapic_gsi_base);
  for (const InterruptOverride& o : c.overrides) {
    t.Append<uint8_t>(2);  // Interrupt Source Override.
    t.Append<uint8_t>(10);
    t.Append<uint8_t>(0);  // Bus: ISA.
    t.Append(o.source);
    t.Append(o.gsi);
    t.Append(o.flags);
  }
  t.Append<uint8_t>(4);  // Local APIC NMI: all processors, LINT1.
  t.Append<uint8_t>(6);
  t.Append<uint8_t>(0xff);
  t.Append<uint16_t>(0);
  t.Append<uint8_t>(1);
  return t.Finish();
}

std::vector<uint8_t> Mcfg(const McfgConfig& c) {
  Sdt t("MCFG", 1, "VMMKMCFG");
  t.Zeros(8);  // Reserved.
  t.Append(c.ecam_base);
  t.Append(c.segment);
  t.Append(c.start_bus);
  t.Append(c.end_bus);
  t.Append<uint32_t>(0);
  return t.Finish();
}

std::vector<uint8_t> Dmar(const DmarConfig& c) {
  Sdt t("DMAR", 1, "VMMKDMAR");
  t.Append<uint8_t>(static_cast<uint8_t>(c.address_width - 1));
  t.Append<uint8_t>(c.interrupt_remapping ? 1 : 0);  // Flags: INTR_REMAP.
  t.Zeros(10);                                       // Reserved.
  // DRHD: type 0, length (16, and 8 per device scope), flags, size (0: one 4 KiB page), segment.
  t.Append<uint16_t>(0);
  t.Append<uint16_t>(c.ioapic ? 24 : 16);
  t.Append<uint8_t>(c.include_pci_all ? 1 : 0);
  t.Append<uint8_t>(0);
  t.Append<uint16_t>(0);
  t.Append(c.register_base);
  if (c.ioapic) {
    // Device scope: type 3 (IOAPIC), length 8, reserved, enumeration id, start bus, one path
    // entry (device, function).
    t.Append<uint8_t>(3);
    t.Append<uint8_t>(8);
    t.Append<uint16_t>(0);
    t.Append<uint8_t>(c.ioapic->enumeration_id);
    t.Append<uint8_t>(static_cast<uint8_t>(c.ioapic->source_id >> 8));
    t.Append<uint8_t>(static_cast<uint8_t>((c.ioapic->source_id >> 3) & 0x1f));
    t.Append<uint8_t>(static_cast<uint8_t>(c.ioapic->source_id & 7));
  }
  return t.Finish();
}

std::vector<uint8_t> Dsdt(const Aml& body) {
  Sdt t("DSDT", 2, "VMMKDSDT");
  t.AppendBytes(body);
  return t.Finish();
}

absl::StatusOr<GuestAddress> WriteAcpiTables(const GuestMemory& memory, GuestAddress base,
                                             uint64_t max_size, const AcpiTables& tables) {
  // Lay out: RSDP, DSDT, FADT, MADT, [MCFG], XSDT. Build bottom-up so each pointer is known.
  uint64_t cursor = base.raw();
  auto reserve = [&](size_t size) {
    const uint64_t at = (cursor + 7) & ~uint64_t{7};
    cursor = at + size;
    return at;
  };
  const uint64_t rsdp_at = reserve(36);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> out;
  std::vector<uint8_t> dsdt = Dsdt(tables.dsdt_body);
  const uint64_t dsdt_at = reserve(dsdt.size());
  out.emplace_back(dsdt_at, std::move(dsdt));
  std::vector<uint64_t> xsdt_entries;
  std::vector<uint8_t> fadt = Fadt(tables.fadt, dsdt_at);
  xsdt_entries.push_back(reserve(fadt.size()));
  out.emplace_back(xsdt_entries.back(), std::move(fadt));
  std::vector<uint8_t> madt = Madt(tables.madt);
  xsdt_entries.push_back(reserve(madt.size()));
  out.emplace_back(xsdt_entries.back(), std::move(madt));
  if (tables.mcfg) {
    std::vector<uint8_t> mcfg = Mcfg(*tables.mcfg);
    xsdt_entries.push_back(reserve(mcfg.size()));
    out.emplace_back(xsdt_entries.back(), std::move(mcfg));
  }
  if (tables.dmar) {
    std::vector<uint8_t> dmar = Dmar(*tables.dmar);
    xsdt_entries.push_back(reserve(dmar.size()));
    out.emplace_back(xsdt_entries.back(), std::move(dmar));
  }
  std::vector<uint8_t> xsdt = Xsdt(xsdt_entries);
  const uint64_t xsdt_at = reserve(xsdt.size());
  out.emplace_back(xsdt_at, std::move(xsdt));
  out.emplace_back(rsdp_at, Rsdp(xsdt_at));
  if (cursor - base.raw() > max_size) {
    return absl::ResourceExhaustedError(absl::StrCat("ACPI tables need ", cursor - base.raw(),
                                                     " bytes at ", base.ToString(), "; only ",
                                                     max_size, " are reserved"));
  }
  RETURN_IF_ERROR(memory.Translate(base, cursor - base.raw()).status());  // All of it is RAM.
  for (const auto& [at, bytes] : out) RETURN_IF_ERROR(memory.Write(GuestAddress(at), bytes));
  return GuestAddress(rsdp_at);
}

}  // namespace vmmkit::acpi
