// File: pci/config_space.h
// -----------------------------------------------------------------------------
// ConfigSpace is the configuration space of an emulated PCI function, kept by the rules: every
// byte has a write mask (the bits a guest may change; the rest read back as the device set
// them), status bits are write-1-to-clear, BARs answer the all-ones size probe with their size
// and keep their read-only type bits, and capabilities are appended to a list the header links
// from 0x34. MSI and MSI-X capabilities are built in, with their state (enable, vectors, message,
// masks) read back for the device. A write reports what changed, so the device can act on it
// (map a moved BAR, set up interrupts) after the guest's access.
//
//   ConfigSpace cfg({.vendor = 0x1af4, .device = 0x1042, .class_code = 0x018000});
//   RETURN_IF_ERROR(cfg.AddBar({.index = 0, .size = 0x4000, .is64 = true}));
//   ASSIGN_OR_RETURN(uint8_t msix, cfg.AddMsix({.vectors = 4, .table_bar = 0, .table_offset =
//   0x2000,
//                                               .pba_bar = 0, .pba_offset = 0x3000}));
//   ConfigSpace::Change c = cfg.Write(reg, value, byte_mask);   // from PciDevice::ConfigWrite
//   if (c.bars) RemapBars();
//
// Thread-safety: none; the owning device serializes accesses.

#ifndef VMMKIT_PCI_CONFIG_SPACE_H_
#define VMMKIT_PCI_CONFIG_SPACE_H_

#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pci/function.h"

namespace vmmkit::pci {

struct ConfigHeader {
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint32_t class_code = 0;  // Base class, subclass, programming interface (24 bits).
  uint8_t revision = 0;
  uint16_t subsystem_vendor = 0;
  uint16_t subsystem = 0;
  uint8_t interrupt_pin = 0;  // 0 none, 1-4 INTA-INTD.
};

// The MSI capability's state, as the guest programmed it.
struct MsiConfig {
  bool enabled = false;
  uint32_t vectors = 1;  // 2^MME, at most what the capability offers.
  uint64_t address = 0;
  uint16_t data = 0;
  uint32_t mask = 0;  // Per-vector mask bits (0 without per-vector masking).
  friend bool operator==(const MsiConfig&, const MsiConfig&) = default;
};

// An MSI capability: 2^log2_vectors vectors (at most 32), a 64-bit or 32-bit message address,
// with or without per-vector mask and pending bits.
struct MsiCapability {
  uint8_t log2_vectors = 0;
  bool is64 = true;
  bool maskable = true;
};

// An MSI-X capability: `vectors` (1-2048), its table and PBA at the given BARs and offsets.
struct MsixCapability {
  uint16_t vectors = 0;
  uint8_t table_bar = 0;
  uint32_t table_offset = 0;  // 8-aligned.
  uint8_t pba_bar = 0;
  uint32_t pba_offset = 0;  // 8-aligned.
};

class ConfigSpace {
 public:
  static constexpr uint16_t kSize = 256;  // Conventional PCI: 256 bytes.

  explicit ConfigSpace(const ConfigHeader& header);

  // A memory BAR (size a power of two, at least 16) or I/O BAR (at least 4, at most 256): the
  // address bits below its size read as zero. A 64-bit BAR takes index and index + 1.
  // INVALID_ARGUMENT for a bad size or index, ALREADY_EXISTS for a taken one.
  absl::Status AddBar(const Bar& bar);
  // Appends a capability to the list (`body` after its ID and next pointer; `writable` masks
  // the guest's writes to it byte for byte, all read-only if empty) and returns its offset: the
  // first free dword-aligned space, or `at` (a passed-through function keeps its device's
  // layout). RESOURCE_EXHAUSTED when it does not fit; INVALID_ARGUMENT when `at` is misaligned,
  // below 0x40, or overlaps a capability already added.
  absl::StatusOr<uint8_t> AddCapability(uint8_t id, absl::Span<const uint8_t> body,
                                        absl::Span<const uint8_t> writable = {},
                                        std::optional<uint8_t> at = std::nullopt);
  // At most one of each. The guest may write enable, the message and (MSI) multiple-message
  // enable, clamped to what the capability offers, and the mask bits; MSI's pending bits read as
  // zero here (a device that has them overlays them, see msi_pending_register()).
  absl::StatusOr<uint8_t> AddMsi(const MsiCapability& msi,
                                 std::optional<uint8_t> at = std::nullopt);
  absl::StatusOr<uint8_t> AddMsix(const MsixCapability& msix,
                                  std::optional<uint8_t> at = std::nullopt);

  // What a guest write changed.
  struct Change {
    bool command = false;  // Decoding, bus mastering or INTx disable.
    bool bars = false;     // A BAR's address (see BarAddress).
    bool msi = false;      // The MSI state (see msi()).
    bool msix = false;     // MSI-X enable or function mask.
    bool any() const { return command || bars || msi || msix; }
  };
  // A dword-aligned register below kSize, the bytes of `value` selected by `byte_mask`. Anything
  // else reads as zero and is ignored.
  uint32_t Read(uint16_t reg) const;
  Change Write(uint16_t reg, uint32_t value, uint8_t byte_mask);

  uint16_t command() const;
  bool memory_enabled() const;
  bool io_enabled() const;
  bool bus_master() const;
  // Where the guest put BAR `index` (its type bits cleared); nullopt for no such BAR.
  std::optional<uint64_t> BarAddress(uint32_t index) const;
  // Where BAR `index` decodes: its address while the command register enables its space, the
  // address is not zero, and the BAR neither holds the size probe's answer nor extends past its
  // space (4 GiB for a 32-bit BAR, 64 KiB for I/O). nullopt otherwise.
  std::optional<uint64_t> DecodedBarAddress(uint32_t index) const;
  std::vector<Bar> bars() const;
  // The firmware's placement: programs BAR `index` as a guest write would.
  void SetBarAddress(uint32_t index, uint64_t address);
  MsiConfig msi() const;
  // The MSI capability's pending-bits register, if its vectors are maskable.
  std::optional<uint16_t> msi_pending_register() const;
  std::optional<MsixCapability> msix() const { return msix_; }
  bool msix_enabled() const;
  bool msix_function_mask() const;
  // The capabilities in list order: (ID, offset).
  std::vector<std::pair<uint8_t, uint8_t>> capabilities() const { return caps_; }

 private:
  struct BarSlot {
    Bar bar;
    bool high = false;  // The upper dword of a 64-bit BAR.
  };
  uint32_t Dword(uint16_t off) const;
  void PutBytes(uint16_t off, absl::Span<const uint8_t> bytes);
  void WriteBar(uint32_t slot, uint32_t value, uint8_t byte_mask);
  absl::StatusOr<uint8_t> Allocate(uint8_t size, std::optional<uint8_t> at);

  std::array<uint8_t, kSize> data_{};
  std::array<uint8_t, kSize> writable_{};  // Bits a guest may set or clear.
  std::array<uint8_t, kSize> w1c_{};       // Bits a guest clears by writing 1.
  std::array<std::optional<BarSlot>, 6> bars_;
  std::bitset<kSize> used_;  // The header and the capabilities' bytes.
  std::vector<std::pair<uint8_t, uint8_t>> caps_;
  std::optional<uint8_t> msi_, msix_at_;
  MsiCapability msi_cap_;
  std::optional<MsixCapability> msix_;
};

}  // namespace vmmkit::pci

#endif  // VMMKIT_PCI_CONFIG_SPACE_H_
