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
  for (uint16_t b = 0; b < 0x40; ++b) used_[b] = true;
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

absl::StatusOr<uint8_t> ConfigSpace::Allocate(uint8_t size, std::optional<uint8_t> at) {
  auto free_at = [&](uint16_t off) {
    if (off + size > kSize) return false;
    for (uint16_t b = off; b < off + size; ++b) {
      if (used_[b]) return false;
    }
    return true;
  };
  if (at) {
    if (*at < 0x40 || *at % 4 != 0 || !free_at(*at)) {
      return absl::InvalidArgumentError(absl::StrCat("a ", size, "-byte capability cannot go at ",
                                                     *at, ": misaligned, in the header, or taken"));
    }
  } else {
    for (uint16_t off = 0x40; off < kSize; off += 4) {
      if (free_at(off)) {
        at = static_cast<uint8_t>(off);
        break;
      }
    }
    if (!at) {
      return absl::ResourceExhaustedError(
          absl::StrCat("no room for a ", size, "-byte capability in the configuration space"));
    }
  }
  for (uint16_t b = *at; b < *at + size; ++b) used_[b] = true;
  return *at;
}

absl::StatusOr<uint8_t> ConfigSpace::AddCapability(uint8_t id, absl::Span<const uint8_t> body,
                                                   absl::Span<const uint8_t> writable,
                                                   std::optional<uint8_t> place) {
  if (!writable.empty() && writable.size() != body.size()) {
    return absl::InvalidArgumentError("the write mask must cover the capability's body");
  }
  if (body.size() > kSize - 0x40 - 2) {
    return absl::ResourceExhaustedError("a capability larger than the configuration space");
  }
  absl::StatusOr<uint8_t> at = Allocate(static_cast<uint8_t>(2 + body.size()), place);
  if (!at.ok()) return at.status();
  data_[*at] = id;
  data_[*at + 1] = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    data_[*at + 2 + i] = body[i];
    writable_[*at + 2 + i] = writable.empty() ? 0 : writable[i];
  }
  if (caps_.empty()) {
    data_[PCI_CAPABILITY_LIST] = *at;
    Put16(data_, PCI_STATUS, Get16(data_, PCI_STATUS) | PCI_STATUS_CAP_LIST);
  } else {
    data_[caps_.back().second + 1] = *at;
  }
  caps_.push_back({id, *at});
  return *at;
}

absl::StatusOr<uint8_t> ConfigSpace::AddMsi(const MsiCapability& cap, std::optional<uint8_t> at) {
  if (cap.log2_vectors > 5 || msi_)
    return absl::InvalidArgumentError("MSI: at most one, 32 vectors");
  // Control, address low, [address high], data, [reserved, mask, pending].
  const size_t data_at = cap.is64 ? 10 : 6, mask_at = data_at + 4;
  std::vector<uint8_t> body(data_at + 2 + (cap.maskable ? 10 : 0), 0);
  std::vector<uint8_t> writable(body.size(), 0);
  uint16_t control = static_cast<uint16_t>(cap.log2_vectors << 1);
  if (cap.is64) control |= PCI_MSI_FLAGS_64BIT;
  if (cap.maskable) control |= PCI_MSI_FLAGS_MASKBIT;
  std::memcpy(&body[0], &control, 2);
  writable[0] = PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE;     // MME is clamped on write.
  for (size_t i = 2; i < data_at + 2; ++i) writable[i] = 0xff;  // Address and data.
  writable[2] = 0xfc;                                           // Dword-aligned address.
  if (cap.maskable) {
    const uint32_t mask_bits = cap.log2_vectors == 5 ? ~0u : (1u << (1u << cap.log2_vectors)) - 1;
    for (size_t i = 0; i < 4; ++i) {
      writable[mask_at + i] = static_cast<uint8_t>(mask_bits >> (8 * i));
    }
  }
  absl::StatusOr<uint8_t> off = AddCapability(PCI_CAP_ID_MSI, body, writable, at);
  if (!off.ok()) return off.status();
  msi_ = *off;
  msi_cap_ = cap;
  return *off;
}

absl::StatusOr<uint8_t> ConfigSpace::AddMsix(const MsixCapability& cap, std::optional<uint8_t> at) {
  if (cap.vectors == 0 || cap.vectors > 2048 || cap.table_bar > 5 || cap.pba_bar > 5 ||
      (cap.table_offset & 7) || (cap.pba_offset & 7) || msix_) {
    return absl::InvalidArgumentError("MSI-X: 1-2048 vectors, BARs 0-5, 8-aligned offsets, once");
  }
  std::vector<uint8_t> body(10, 0), writable(10, 0);
  const uint16_t control = static_cast<uint16_t>(cap.vectors - 1);
  const uint32_t table = cap.table_offset | cap.table_bar, pba = cap.pba_offset | cap.pba_bar;
  std::memcpy(&body[0], &control, 2);
  std::memcpy(&body[2], &table, 4);
  std::memcpy(&body[6], &pba, 4);
  writable[1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
  absl::StatusOr<uint8_t> off = AddCapability(PCI_CAP_ID_MSIX, body, writable, at);
  if (!off.ok()) return off.status();
  msix_at_ = *off;
  msix_ = cap;
  return *off;
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
    if (mme > msi_cap_.log2_vectors) {
      control =
          static_cast<uint16_t>((control & ~PCI_MSI_FLAGS_QSIZE) | (msi_cap_.log2_vectors << 4));
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

std::optional<uint64_t> ConfigSpace::DecodedBarAddress(uint32_t index) const {
  const std::optional<uint64_t> address = BarAddress(index);
  if (!address || *address == 0) return std::nullopt;
  const Bar& b = bars_[index]->bar;
  if (!(b.io ? io_enabled() : memory_enabled())) return std::nullopt;
  const uint64_t limit = b.io ? 0x10000 : (b.is64 ? 0 : uint64_t{1} << 32);
  if (limit != 0 && *address + b.size > limit) return std::nullopt;
  if (*address + b.size < *address) return std::nullopt;  // Wraps.
  const uint64_t probe =
      ~(b.size - 1) & (b.is64 ? ~uint64_t{0} : 0xffffffffu) & ~uint64_t{b.io ? 3u : 15u};
  if (*address == probe) return std::nullopt;  // The size probe's answer, mid-sizing.
  return address;
}

std::vector<Bar> ConfigSpace::bars() const {
  std::vector<Bar> out;
  for (const auto& slot : bars_) {
    if (slot && !slot->high) out.push_back(slot->bar);
  }
  return out;
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
  m.address = Dword(static_cast<uint16_t>(base + PCI_MSI_ADDRESS_LO));
  if (msi_cap_.is64) {
    m.address |= uint64_t{Dword(static_cast<uint16_t>(base + PCI_MSI_ADDRESS_HI))} << 32;
  }
  m.data = Get16(data_,
                 static_cast<uint16_t>(base + (msi_cap_.is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32)));
  if (msi_cap_.maskable) {
    m.mask =
        Dword(static_cast<uint16_t>(base + (msi_cap_.is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32)));
  }
  return m;
}

std::optional<uint16_t> ConfigSpace::msi_pending_register() const {
  if (!msi_ || !msi_cap_.maskable) return std::nullopt;
  return static_cast<uint16_t>(*msi_ + (msi_cap_.is64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32));
}

bool ConfigSpace::msix_enabled() const {
  return msix_at_ &&
         (Get16(data_, static_cast<uint16_t>(*msix_at_ + PCI_MSIX_FLAGS)) & PCI_MSIX_FLAGS_ENABLE);
}

bool ConfigSpace::msix_function_mask() const {
  return msix_at_ &&
         (Get16(data_, static_cast<uint16_t>(*msix_at_ + PCI_MSIX_FLAGS)) & PCI_MSIX_FLAGS_MASKALL);
}

}  // namespace vmmkit::pci
