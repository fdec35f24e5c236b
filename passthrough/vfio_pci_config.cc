#include "passthrough/vfio_pci_config.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "memory/address.h"

namespace vmmkit::passthrough {
namespace {

constexpr uint8_t kCapPm = PCI_CAP_ID_PM;
constexpr uint8_t kCapMsi = PCI_CAP_ID_MSI;
constexpr uint8_t kCapExp = PCI_CAP_ID_EXP;
constexpr uint8_t kCapMsix = PCI_CAP_ID_MSIX;

uint32_t Dword(const std::array<uint8_t, 256>& c, uint16_t off) {
  uint32_t v;
  std::memcpy(&v, c.data() + off, 4);
  return v;
}
void SetDword(std::array<uint8_t, 256>& c, uint16_t off, uint32_t v) {
  std::memcpy(c.data() + off, &v, 4);
}
uint16_t Word(const std::array<uint8_t, 256>& c, uint16_t off) {
  return static_cast<uint16_t>(c[off] | (c[off + 1] << 8));
}

// Bytes of a visible capability, from its header.
uint16_t CapLength(uint8_t id, uint16_t msi_control) {
  switch (id) {
    case kCapPm:
      return 8;
    case kCapMsi:
      return static_cast<uint16_t>(10 + ((msi_control & PCI_MSI_FLAGS_64BIT) ? 4 : 0) +
                                   ((msi_control & PCI_MSI_FLAGS_MASKBIT) ? 10 : 0));
    case kCapExp:
      return 0x3c;
    case kCapMsix:
      return 12;
    default:
      return 0;
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<VfioPciConfig>> VfioPciConfig::Create(const vfio::VfioDevice& device,
                                                                     Callbacks callbacks) {
  std::shared_ptr<VfioPciConfig> c(new VfioPciConfig(device, std::move(callbacks)));
  RETURN_IF_ERROR(c->Init());
  return c;
}

absl::Status VfioPciConfig::Init() {
  const std::string what = absl::StrCat("VFIO PCI config of ", device_.name());
  if (!device_.info().is_pci()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": not a PCI device"));
  }
  std::array<uint8_t, 256> real{};
  RETURN_IF_ERROR(device_.ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, 0, absl::MakeSpan(real)));
  if ((real[PCI_HEADER_TYPE] & 0x7f) != PCI_HEADER_TYPE_NORMAL) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": header type ", real[PCI_HEADER_TYPE] & 0x7f,
                     " (only endpoints, type 0, can be passed through)"));
  }
  std::array<uint8_t, 256> shadow = real;

  // BARs: flags from the device, sizes from VFIO, addresses from the guest (none yet).
  std::array<std::optional<VirtualBar>, 6> bars;
  for (uint32_t i = 0; i < 6; ++i) {
    const uint16_t off = static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * i);
    SetDword(shadow, off, 0);
    ASSIGN_OR_RETURN(vfio::RegionInfo region, device_.GetRegionInfo(i));
    if (region.size == 0) continue;
    const uint32_t raw = Dword(real, off);
    VirtualBar bar;
    bar.index = i;
    bar.size = region.size;
    bar.io = raw & PCI_BASE_ADDRESS_SPACE_IO;
    bar.is64 = !bar.io && (raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
    bar.prefetchable = !bar.io && (raw & PCI_BASE_ADDRESS_MEM_PREFETCH);
    if (!IsPowerOfTwo(bar.size) || (bar.is64 && i == 5) || (bar.io && bar.size > 0x10000)) {
      return absl::InternalError(
          absl::StrCat(what, ": BAR ", i, " of ", Hex(bar.size), " bytes cannot be emulated"));
    }
    bar.flags = raw & (bar.io ? 0x3u : 0xfu);
    SetDword(shadow, off, bar.flags);
    bars[i] = bar;
    if (bar.is64) {
      SetDword(shadow, static_cast<uint16_t>(off + 4), 0);
      ++i;
    }
  }
  SetDword(shadow, PCI_ROM_ADDRESS, 0);  // No expansion ROM.
  shadow[PCI_COMMAND] = 0;               // Decoding and bus mastering off until the guest says.
  shadow[PCI_COMMAND + 1] = 0;

  // Capabilities: keep the supported ones, in order; everything else in 0x40-0xff reads as 0.
  std::array<bool, 256> keep{};
  if (real[PCI_STATUS] & PCI_STATUS_CAP_LIST) {
    std::set<uint8_t> seen;
    for (uint8_t ptr = real[PCI_CAPABILITY_LIST] & 0xfc; ptr >= 0x40 && !seen.count(ptr);
         ptr = real[ptr + 1] & 0xfc) {
      seen.insert(ptr);
      const uint8_t id = real[ptr];
      const uint16_t msi_control = Word(real, static_cast<uint16_t>(ptr + 2));
      const uint16_t len = CapLength(id, msi_control);
      if (len == 0 || ptr + len > 256) continue;  // Unsupported (or malformed): hidden.
      visible_.push_back({id, ptr});
      for (uint16_t b = 0; b < len; ++b) keep[ptr + b] = true;
    }
  }
  for (uint16_t b = 0x40; b < 256; ++b) {
    if (!keep[b]) shadow[b] = 0;
  }
  shadow[PCI_CAPABILITY_LIST] = visible_.empty() ? 0 : visible_[0].second;
  for (size_t k = 0; k < visible_.size(); ++k) {
    shadow[visible_[k].second + 1] = k + 1 < visible_.size() ? visible_[k + 1].second : 0;
  }
  if (visible_.empty()) shadow[PCI_STATUS] &= static_cast<uint8_t>(~PCI_STATUS_CAP_LIST);

  for (auto [id, off] : visible_) {
    if (id == kCapMsi) {
      msi_cap_ = off;
      const uint16_t control = Word(real, static_cast<uint16_t>(off + PCI_MSI_FLAGS));
      msi_control_ro_ =
          control & (PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | PCI_MSI_FLAGS_QMASK);
      shadow[off + 2] = static_cast<uint8_t>(msi_control_ro_);
      shadow[off + 3] = static_cast<uint8_t>(msi_control_ro_ >> 8);
      for (uint16_t b = 4; b < CapLength(id, control); ++b) shadow[off + b] = 0;
    } else if (id == kCapMsix) {
      msix_cap_ = off;
      const uint16_t control = Word(real, static_cast<uint16_t>(off + PCI_MSIX_FLAGS));
      const uint32_t table = Dword(real, static_cast<uint16_t>(off + PCI_MSIX_TABLE));
      const uint32_t pba = Dword(real, static_cast<uint16_t>(off + PCI_MSIX_PBA));
      msix_ = MsixInfo{static_cast<uint16_t>((control & PCI_MSIX_FLAGS_QSIZE) + 1),
                       static_cast<uint8_t>(table & PCI_MSIX_TABLE_BIR), table & ~7u,
                       static_cast<uint8_t>(pba & PCI_MSIX_PBA_BIR), pba & ~7u};
      shadow[off + 3] = static_cast<uint8_t>((control & PCI_MSIX_FLAGS_QSIZE) >> 8);  // Off.
    }
  }
  MutexLock lock(mu_);
  shadow_ = shadow;
  bars_ = bars;
  return absl::OkStatus();
}

std::optional<uint16_t> VfioPciConfig::msi_pending_register() const {
  // Set by Init() before the object is shared, constant after: no lock.
  if (!msi_cap_ || !(msi_control_ro_ & PCI_MSI_FLAGS_MASKBIT)) return std::nullopt;
  return static_cast<uint16_t>(*msi_cap_ + ((msi_control_ro_ & PCI_MSI_FLAGS_64BIT) ? 20 : 16));
}

MsiState VfioPciConfig::MsiStateLocked() const {
  MsiState s;
  if (!msi_cap_) return s;
  const uint16_t off = *msi_cap_;
  const uint16_t ctl = Word(shadow_, static_cast<uint16_t>(off + PCI_MSI_FLAGS));
  const bool is64 = ctl & PCI_MSI_FLAGS_64BIT;
  s.enabled = ctl & PCI_MSI_FLAGS_ENABLE;
  s.vectors = 1u << ((ctl & PCI_MSI_FLAGS_QSIZE) >> 4);
  s.address = Dword(shadow_, static_cast<uint16_t>(off + 4)) |
              (is64 ? uint64_t{Dword(shadow_, static_cast<uint16_t>(off + 8))} << 32 : 0);
  s.data = Word(shadow_, static_cast<uint16_t>(off + (is64 ? 12 : 8)));
  if (ctl & PCI_MSI_FLAGS_MASKBIT) {
    s.mask = Dword(shadow_, static_cast<uint16_t>(off + (is64 ? 16 : 12)));
  }
  return s;
}

std::vector<VirtualBar> VfioPciConfig::bars() const {
  MutexLock lock(mu_);
  std::vector<VirtualBar> out;
  for (const auto& b : bars_) {
    if (b) out.push_back(*b);
  }
  return out;
}

std::optional<uint64_t> VfioPciConfig::Decoded(const VirtualBar& bar) const {
  const uint16_t command = Word(shadow_, PCI_COMMAND);
  const bool on = bar.io ? (command & PCI_COMMAND_IO) : (command & PCI_COMMAND_MEMORY);
  if (!on || bar.address == 0) return std::nullopt;
  // A BAR being sized (all ones) or placed where it would wrap decodes nowhere.
  const uint64_t limit = bar.io ? 0x10000 : (bar.is64 ? 0 : (uint64_t{1} << 32));
  if (limit != 0 && bar.address + bar.size > limit) return std::nullopt;
  if (bar.address + bar.size < bar.address) return std::nullopt;
  if (bar.address ==
      (~(bar.size - 1) & (bar.is64 ? ~uint64_t{0} : 0xffffffffu) & ~uint64_t{bar.io ? 3u : 15u})) {
    return std::nullopt;
  }
  return bar.address;
}

uint32_t VfioPciConfig::ConfigRead(uint16_t reg) {
  if (reg >= 256) return 0;  // No extended capabilities.
  MutexLock lock(mu_);
  uint32_t v = Dword(shadow_, reg);
  if (reg == PCI_COMMAND) {
    // Status is live (interrupt status, error bits), except the capability-list bit.
    absl::StatusOr<uint32_t> status = device_.ReadConfig(PCI_STATUS, 2);
    const uint32_t live = status.ok() ? *status : 0;
    const uint32_t ours = shadow_[PCI_STATUS] & PCI_STATUS_CAP_LIST;
    v = (v & 0xffff) | (((live & ~uint32_t{PCI_STATUS_CAP_LIST}) | ours) << 16);
  }
  return v;
}

void VfioPciConfig::ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) {
  if (reg >= 256) return;
  std::vector<std::function<void()>> events;
  {
    MutexLock lock(mu_);
    std::array<std::optional<uint64_t>, 6> before;
    for (size_t i = 0; i < 6; ++i) {
      if (bars_[i]) before[i] = Decoded(*bars_[i]);
    }
    const MsiState msi_before = MsiStateLocked();
    const uint16_t msix_before =
        msix_cap_ ? Word(shadow_, static_cast<uint16_t>(*msix_cap_ + 2)) : 0;

    for (uint16_t i = 0; i < 4; ++i) {
      if (byte_mask & (1u << i)) {
        WriteByte(static_cast<uint16_t>(reg + i), static_cast<uint8_t>(value >> (8 * i)), &events);
      }
    }
    // Normalize BARs: the size's low bits read as zero (how the guest learns the size).
    for (auto& b : bars_) {
      if (!b) continue;
      const uint16_t off = static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * b->index);
      uint64_t raw = Dword(shadow_, off);
      if (b->is64) raw |= uint64_t{Dword(shadow_, static_cast<uint16_t>(off + 4))} << 32;
      const uint64_t flags_mask = b->io ? 3 : 15;
      const uint64_t addr =
          raw & ~(b->size - 1) & ~flags_mask & (b->is64 ? ~uint64_t{0} : 0xffffffffu);
      b->address = addr;
      SetDword(shadow_, off, static_cast<uint32_t>(addr) | b->flags);
      if (b->is64)
        SetDword(shadow_, static_cast<uint16_t>(off + 4), static_cast<uint32_t>(addr >> 32));
    }
    for (size_t i = 0; i < 6; ++i) {
      if (!bars_[i]) continue;
      const std::optional<uint64_t> after = Decoded(*bars_[i]);
      if (after != before[i] && callbacks_.bar_moved) {
        events.push_back([this, bar = *bars_[i], old = before[i], after] {
          callbacks_.bar_moved(bar, old, after);
        });
      }
    }
    if (msi_cap_ && callbacks_.msi_changed) {
      const MsiState s = MsiStateLocked();
      if (!(s == msi_before)) {
        events.push_back([this, s] { callbacks_.msi_changed(s); });
      }
    }
    if (msix_cap_ && callbacks_.msix_changed) {
      const uint16_t ctl = Word(shadow_, static_cast<uint16_t>(*msix_cap_ + 2));
      if ((ctl ^ msix_before) & (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)) {
        events.push_back([this, ctl] {
          callbacks_.msix_changed(ctl & PCI_MSIX_FLAGS_ENABLE, ctl & PCI_MSIX_FLAGS_MASKALL);
        });
      }
    }
  }
  for (auto& e : events) e();
}

void VfioPciConfig::WriteByte(uint16_t off, uint8_t value,
                              std::vector<std::function<void()>>* events) {
  // Which bits of which bytes the guest may change; everything else is dropped.
  uint8_t writable = 0;
  if (off == PCI_COMMAND) {
    writable = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  } else if (off == PCI_COMMAND + 1) {
    writable = PCI_COMMAND_INTX_DISABLE >> 8;
  } else if (off == PCI_STATUS || off == PCI_STATUS + 1) {
    // Write-one-to-clear error bits go to the device.
    (void)device_.WriteConfig(off, 1, value);
    return;
  } else if (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_0 + 24) {
    // Only BARs the device has (a 64-bit BAR's upper half included); normalized after the access.
    const uint32_t index = (off - PCI_BASE_ADDRESS_0) / 4;
    const bool present =
        bars_[index].has_value() || (index > 0 && bars_[index - 1] && bars_[index - 1]->is64);
    writable = present ? 0xff : 0;
  } else if (off == PCI_INTERRUPT_LINE) {
    writable = 0xff;
  } else if (msi_cap_ && off >= *msi_cap_ + 2 &&
             off < *msi_cap_ + CapLength(kCapMsi, msi_control_ro_)) {
    const uint16_t rel = static_cast<uint16_t>(off - *msi_cap_);
    const bool is64 = msi_control_ro_ & PCI_MSI_FLAGS_64BIT;
    const uint16_t data_at = is64 ? 12 : 8;
    const uint16_t mask_at = is64 ? 16 : 12;
    if (rel == 2) {
      // Enable, and a multiple-message enable no larger than the device's capability.
      const uint8_t mmc = (msi_control_ro_ & PCI_MSI_FLAGS_QMASK) >> 1;
      uint8_t mme = (value & PCI_MSI_FLAGS_QSIZE) >> 4;
      if (mme > mmc) mme = mmc;
      shadow_[off] =
          static_cast<uint8_t>((shadow_[off] & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE)) |
                               (value & PCI_MSI_FLAGS_ENABLE) | (mme << 4));
      return;
    }
    if (rel == 4) {
      writable = 0xfc;  // Dword-aligned message address.
    } else if ((rel >= 5 && rel < 8) || (is64 && rel >= 8 && rel < 12) ||
               (rel >= data_at && rel < data_at + 2) ||
               ((msi_control_ro_ & PCI_MSI_FLAGS_MASKBIT) && rel >= mask_at && rel < mask_at + 4)) {
      writable = 0xff;
    }
  } else if (msix_cap_ && off == *msix_cap_ + 3) {
    writable = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
  }
  if (writable == 0) return;
  const uint8_t old = shadow_[off];
  shadow_[off] = static_cast<uint8_t>((old & ~writable) | (value & writable));
  if ((off == PCI_COMMAND || off == PCI_COMMAND + 1) && shadow_[off] != old) {
    // Forward the command bits to the device (bus mastering gates its DMA).
    const uint16_t guest = Word(shadow_, PCI_COMMAND);
    absl::StatusOr<uint32_t> live = device_.ReadConfig(PCI_COMMAND, 2);
    if (live.ok()) {
      constexpr uint16_t kOurs =
          PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
      const uint32_t merged = (*live & ~uint32_t{kOurs}) | (guest & kOurs);
      if (absl::Status s = device_.WriteConfig(PCI_COMMAND, 2, merged); !s.ok()) {
        events->push_back([this, s] { guest_log_.Warning(s.ToString()); });
      }
    }
  }
}

}  // namespace vmmkit::passthrough
