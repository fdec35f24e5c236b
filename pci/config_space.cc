#include "pci/config_space.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vmmkit::pci {
namespace {

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

void Put16(std::array<uint8_t, ConfigSpace::kSize>& a, uint16_t off, uint16_t v) {
  std::memcpy(&a[off], &v, 2);
}
void Put32(std::array<uint8_t, ConfigSpace::kSize>& a, uint16_t off, uint32_t v) {
  std::memcpy(&a[off], &v, 4);
}
uint16_t Get16(const std::array<uint8_t, ConfigSpace::kSize>& a, uint16_t off) {
  uint16_t v;
  std::memcpy(&v, &a[off], 2);
  return v;
}

// Command bits a guest may change: I/O, memory, bus master, SERR, parity, INTx disable.
constexpr uint16_t kCommandWritable = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                      PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                      PCI_COMMAND_INTX_DISABLE;
// Status bits a guest clears by writing 1: the error bits.
constexpr uint16_t kStatusW1c = PCI_STATUS_DETECTED_PARITY | PCI_STATUS_SIG_SYSTEM_ERROR |
                                PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_REC_TARGET_ABORT |
                                PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_PARITY;

}  // namespace

ConfigSpace::ConfigSpace(const ConfigHeader& h) {
  Put16(data_, PCI_VENDOR_ID, h.vendor);
  Put16(data_, PCI_DEVICE_ID, h.device);
  data_[PCI_REVISION_ID] = h.revision;
  data_[PCI_CLASS_PROG] = static_cast<uint8_t>(h.class_code);
  Put16(data_, PCI_CLASS_DEVICE, static_cast<uint16_t>(h.class_code >> 8));
  data_[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
  Put16(data_, PCI_SUBSYSTEM_VENDOR_ID, h.subsystem_vendor);
  Put16(data_, PCI_SUBSYSTEM_ID, h.subsystem);
  data_[PCI_INTERRUPT_PIN] = h.interrupt_pin;
  Put16(writable_, PCI_COMMAND, kCommandWritable);
  Put16(w1c_, PCI_STATUS, kStatusW1c);
  writable_[PCI_CACHE_LINE_SIZE] = 0xff;
  writable_[PCI_LATENCY_TIMER] = 0xff;
  writable_[PCI_INTERRUPT_LINE] = 0xff;
}

absl::Status ConfigSpace::AddBar(const Bar& bar) {
  const uint32_t slots = bar.is64 ? 2 : 1;
  if (bar.index + slots > 6 || (bar.io && bar.is64)) {
    return absl::InvalidArgumentError(absl::StrCat("BAR ", bar.index, ": no such BAR"));
  }
  if (!IsPowerOfTwo(bar.size) || bar.size < (bar.io ? 4u : 16u) || (bar.io && bar.size > 256) ||
      (!bar.is64 && bar.size > (uint64_t{1} << 31))) {
    return absl::InvalidArgumentError(absl::StrCat("BAR ", bar.index, ": bad size ", bar.size));
  }
  for (uint32_t i = bar.index; i < bar.index + slots; ++i) {
    if (bars_[i]) return absl::AlreadyExistsError(absl::StrCat("BAR ", i, " is taken"));
  }
  bars_[bar.index] = BarSlot{bar, false};
  if (bar.is64) bars_[bar.index + 1] = BarSlot{bar, true};
  uint32_t low = bar.io ? PCI_BASE_ADDRESS_SPACE_IO : 0;
  if (bar.is64) low |= PCI_BASE_ADDRESS_MEM_TYPE_64;
  if (bar.prefetchable) low |= PCI_BASE_ADDRESS_MEM_PREFETCH;
  Put32(data_, static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * bar.index), low);
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> ConfigSpace::Allocate(uint8_t size) {
  const uint16_t aligned = (next_free_ + 3u) & ~3u;
  if (aligned + size > kSize) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for a ", size, "-byte capability in the configuration space"));
  }
  next_free_ = static_cast<uint8_t>(aligned + size);
  return static_cast<uint8_t>(aligned);
}

absl::StatusOr<uint8_t> ConfigSpace::AddCapability(uint8_t id, absl::Span<const uint8_t> body,
                                                   absl::Span<const uint8_t> writable) {
  if (!writable.empty() && writable.size() != body.size()) {
    return absl::InvalidArgumentError("the write mask must cover the capability's body");
  }
  absl::StatusOr<uint8_t> at = Allocate(static_cast<uint8_t>(2 + body.size()));
  if (!at.ok()) return at.status();
  data_[*at] = id;
  data_[*at + 1] = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    data_[*at + 2 + i] = body[i];
    writable_[*at + 2 + i] = writable.empty() ? 0 : writable[i];
  }
  if (last_cap_ == 0) {
    data_[PCI_CAPABILITY_LIST] = *at;
    Put16(data_, PCI_STATUS, Get16(data_, PCI_STATUS) | PCI_STATUS_CAP_LIST);
  } else {
    data_[last_cap_ + 1] = *at;
  }
  last_cap_ = *at;
  return *at;
}

absl::StatusOr<uint8_t> ConfigSpace::AddMsi(uint8_t log2_vectors) {
  if (log2_vectors > 5 || msi_) return absl::InvalidArgumentError("MSI: at most one, 32 vectors");
  // Control, address low/high, data, reserved, mask, pending: the 64-bit maskable layout.
  std::vector<uint8_t> body(22, 0), writable(22, 0);
  const uint16_t control =
      static_cast<uint16_t>(PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (log2_vectors << 1));
  std::memcpy(&body[0], &control, 2);
  writable[0] = PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE;  // MME is checked on write.
  // Address low (dword aligned), address high, data: bytes 2-11 of the body.
  std::fill(writable.begin() + 2, writable.begin() + 12, 0xff);
  writable[2] = 0xfc;
  const uint32_t mask_bits = log2_vectors == 5 ? ~0u : (1u << (1u << log2_vectors)) - 1;
  for (size_t i = 0; i < 4; ++i) writable[14 + i] = static_cast<uint8_t>(mask_bits >> (8 * i));
  absl::StatusOr<uint8_t> at = AddCapability(PCI_CAP_ID_MSI, body, writable);
  if (!at.ok()) return at.status();
  msi_ = *at;
  msi_max_log2_ = log2_vectors;
  return *at;
}

absl::StatusOr<uint8_t> ConfigSpace::AddMsix(uint16_t vectors, uint8_t table_bar,
                                             uint32_t table_offset, uint8_t pba_bar,
                                             uint32_t pba_offset) {
  if (vectors == 0 || vectors > 2048 || table_bar > 5 || pba_bar > 5 || (table_offset & 7) ||
      (pba_offset & 7) || msix_) {
    return absl::InvalidArgumentError("MSI-X: 1-2048 vectors, BARs 0-5, 8-aligned offsets, once");
  }
  std::vector<uint8_t> body(10, 0), writable(10, 0);
  const uint16_t control = static_cast<uint16_t>(vectors - 1);
  const uint32_t table = table_offset | table_bar, pba = pba_offset | pba_bar;
  std::memcpy(&body[0], &control, 2);
  std::memcpy(&body[2], &table, 4);
  std::memcpy(&body[6], &pba, 4);
  writable[1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
  absl::StatusOr<uint8_t> at = AddCapability(PCI_CAP_ID_MSIX, body, writable);
  if (!at.ok()) return at.status();
  msix_ = *at;
  return *at;
}

uint32_t ConfigSpace::Dword(uint16_t off) const {
  uint32_t v;
  std::memcpy(&v, &data_[off], 4);
  return v;
}

uint32_t ConfigSpace::Read(uint16_t reg) const {
  if (reg % 4 != 0 || reg >= kSize) return 0;
  return Dword(reg);
}

void ConfigSpace::WriteBar(uint32_t slot, uint32_t value, uint8_t byte_mask) {
  const BarSlot& b = *bars_[slot];
  // Address bits below the size read as zero (the size probe), and the type bits stay.
  uint64_t mask = ~(b.bar.size - 1);
  uint32_t dmask;
  if (b.high) {
    dmask = static_cast<uint32_t>(mask >> 32);
  } else {
    dmask = static_cast<uint32_t>(mask) & (b.bar.io ? ~3u : ~15u);
  }
  const uint16_t off = static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * slot);
  uint32_t cur = Dword(off);
  for (int i = 0; i < 4; ++i) {
    if (!(byte_mask >> i & 1)) continue;
    const uint32_t lane = 0xffu << (8 * i);
    cur = (cur & ~(lane & dmask)) | (value & lane & dmask);
  }
  Put32(data_, off, cur);
}

ConfigSpace::Change ConfigSpace::Write(uint16_t reg, uint32_t value, uint8_t byte_mask) {
  Change c;
  if (reg % 4 != 0 || reg >= kSize || (byte_mask & 0xf) == 0) return c;
  const uint16_t cmd = command();
  const MsiConfig msi_before = msi();
  const bool msix_before = msix_enabled(), mask_before = msix_function_mask();
  if (reg >= PCI_BASE_ADDRESS_0 && reg <= PCI_BASE_ADDRESS_5) {
    const uint32_t slot = (reg - PCI_BASE_ADDRESS_0) / 4;
    if (bars_[slot]) {
      const std::optional<uint64_t> before = BarAddress(bars_[slot]->high ? slot - 1 : slot);
      WriteBar(slot, value, byte_mask);
      c.bars = BarAddress(bars_[slot]->high ? slot - 1 : slot) != before;
    }
    return c;
  }
  for (int i = 0; i < 4; ++i) {
    if (!(byte_mask >> i & 1)) continue;
    const uint16_t off = static_cast<uint16_t>(reg + i);
    const uint8_t v = static_cast<uint8_t>(value >> (8 * i));
    data_[off] = static_cast<uint8_t>((data_[off] & ~writable_[off]) | (v & writable_[off]));
    data_[off] = static_cast<uint8_t>(data_[off] & ~(v & w1c_[off]));
  }
  if (msi_) {
    // MME above what the capability offers is not kept: the largest allowed is.
    uint16_t control = Get16(data_, *msi_ + PCI_MSI_FLAGS);
    const uint8_t mme = (control & PCI_MSI_FLAGS_QSIZE) >> 4;
    if (mme > msi_max_log2_) {
      control = static_cast<uint16_t>((control & ~PCI_MSI_FLAGS_QSIZE) | (msi_max_log2_ << 4));
      Put16(data_, static_cast<uint16_t>(*msi_ + PCI_MSI_FLAGS), control);
    }
  }
  c.command = command() != cmd;
  c.msi = msi() != msi_before;
  c.msix = msix_enabled() != msix_before || msix_function_mask() != mask_before;
  return c;
}

uint16_t ConfigSpace::command() const { return Get16(data_, PCI_COMMAND); }
bool ConfigSpace::memory_enabled() const { return command() & PCI_COMMAND_MEMORY; }
bool ConfigSpace::io_enabled() const { return command() & PCI_COMMAND_IO; }
bool ConfigSpace::bus_master() const { return command() & PCI_COMMAND_MASTER; }

std::optional<uint64_t> ConfigSpace::BarAddress(uint32_t index) const {
  if (index >= 6 || !bars_[index] || bars_[index]->high) return std::nullopt;
  const Bar& b = bars_[index]->bar;
  const uint16_t off = static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * index);
  uint64_t address = Dword(off) & (b.io ? ~3u : ~15u);
  if (b.is64) address |= uint64_t{Dword(static_cast<uint16_t>(off + 4))} << 32;
  return address;
}

void ConfigSpace::SetBarAddress(uint32_t index, uint64_t address) {
  if (index >= 6 || !bars_[index] || bars_[index]->high) return;
  const uint16_t off = static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * index);
  (void)Write(off, static_cast<uint32_t>(address), 0xf);
  if (bars_[index]->bar.is64) {
    (void)Write(static_cast<uint16_t>(off + 4), static_cast<uint32_t>(address >> 32), 0xf);
  }
}

MsiConfig ConfigSpace::msi() const {
  MsiConfig m;
  if (!msi_) return m;
  const uint16_t base = *msi_;
  const uint16_t control = Get16(data_, static_cast<uint16_t>(base + PCI_MSI_FLAGS));
  m.enabled = control & PCI_MSI_FLAGS_ENABLE;
  m.vectors = 1u << ((control & PCI_MSI_FLAGS_QSIZE) >> 4);
  m.address = Dword(static_cast<uint16_t>(base + PCI_MSI_ADDRESS_LO)) |
              uint64_t{Dword(static_cast<uint16_t>(base + PCI_MSI_ADDRESS_HI))} << 32;
  m.data = Get16(data_, static_cast<uint16_t>(base + PCI_MSI_DATA_64));
  m.mask = Dword(static_cast<uint16_t>(base + PCI_MSI_MASK_64));
  return m;
}

bool ConfigSpace::msix_enabled() const {
  return msix_ &&
         (Get16(data_, static_cast<uint16_t>(*msix_ + PCI_MSIX_FLAGS)) & PCI_MSIX_FLAGS_ENABLE);
}

bool ConfigSpace::msix_function_mask() const {
  return msix_ &&
         (Get16(data_, static_cast<uint16_t>(*msix_ + PCI_MSIX_FLAGS)) & PCI_MSIX_FLAGS_MASKALL);
}

}  // namespace vmmkit::pci
