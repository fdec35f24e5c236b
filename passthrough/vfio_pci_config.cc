#include "passthrough/vfio_pci_config.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <array>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "memory/address.h"

namespace vmmkit::passthrough {
namespace {

uint32_t Dword(const std::array<uint8_t, 256>& c, uint16_t off) {
  uint32_t v;
  std::memcpy(&v, c.data() + off, 4);
  return v;
}
uint16_t Word(const std::array<uint8_t, 256>& c, uint16_t off) {
  return static_cast<uint16_t>(c[off] | (c[off + 1] << 8));
}

// Bytes of a capability the guest may see, from its header; 0 for one it may not.
uint16_t CapLength(uint8_t id, uint16_t msi_control) {
  switch (id) {
    case PCI_CAP_ID_PM:
      return PCI_PM_SIZEOF;
    case PCI_CAP_ID_MSI:
      return static_cast<uint16_t>(10 + ((msi_control & PCI_MSI_FLAGS_64BIT) ? 4 : 0) +
                                   ((msi_control & PCI_MSI_FLAGS_MASKBIT) ? 10 : 0));
    case PCI_CAP_ID_EXP:
      return PCI_CAP_EXP_ENDPOINT_SIZEOF_V2;
    case PCI_CAP_ID_MSIX:
      return PCI_CAP_MSIX_SIZEOF;
    default:
      return 0;
  }
}

// The command bits the guest's writes reach the device with.
constexpr uint16_t kForwardedCommand =
    PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;

}  // namespace

absl::StatusOr<pci::ConfigSpace> VfioPciConfig::Build(const vfio::VfioDevice& device) {
  const std::string what = absl::StrCat("VFIO PCI config of ", device.name());
  if (!device.info().is_pci()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": not a PCI device"));
  }
  std::array<uint8_t, 256> real{};
  RETURN_IF_ERROR(device.ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, 0, absl::MakeSpan(real)));
  if ((real[PCI_HEADER_TYPE] & 0x7f) != PCI_HEADER_TYPE_NORMAL) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": header type ", real[PCI_HEADER_TYPE] & 0x7f,
                     " (only endpoints, type 0, can be passed through)"));
  }
  pci::ConfigSpace space({.vendor = Word(real, PCI_VENDOR_ID),
                          .device = Word(real, PCI_DEVICE_ID),
                          .class_code = Dword(real, PCI_CLASS_REVISION) >> 8,
                          .revision = real[PCI_REVISION_ID],
                          .subsystem_vendor = Word(real, PCI_SUBSYSTEM_VENDOR_ID),
                          .subsystem = Word(real, PCI_SUBSYSTEM_ID),
                          .interrupt_pin = real[PCI_INTERRUPT_PIN]});

  // BARs: type bits from the device, sizes from VFIO, addresses from the guest (none yet).
  for (uint32_t i = 0; i < 6; ++i) {
    ASSIGN_OR_RETURN(vfio::RegionInfo region, device.GetRegionInfo(i));
    if (region.size == 0) continue;
    const uint32_t raw = Dword(real, static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * i));
    pci::Bar bar;
    bar.index = i;
    bar.size = region.size;
    bar.io = raw & PCI_BASE_ADDRESS_SPACE_IO;
    bar.is64 = !bar.io && (raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
    bar.prefetchable = !bar.io && (raw & PCI_BASE_ADDRESS_MEM_PREFETCH);
    if (absl::Status s = space.AddBar(bar); !s.ok()) {
      return absl::InternalError(absl::StrCat(what, ": BAR ", i, " of ", Hex(bar.size),
                                              " bytes cannot be emulated: ", s.message()));
    }
    if (bar.is64) ++i;
  }

  // Capabilities: the supported ones, in the device's order and at its offsets; a malformed or
  // overlapping one is hidden like an unsupported one.
  if (real[PCI_STATUS] & PCI_STATUS_CAP_LIST) {
    std::set<uint8_t> seen;
    for (uint8_t ptr = real[PCI_CAPABILITY_LIST] & 0xfc; ptr >= 0x40 && !seen.count(ptr);
         ptr = real[ptr + 1] & 0xfc) {
      seen.insert(ptr);
      const uint8_t id = real[ptr];
      const uint16_t control = Word(real, static_cast<uint16_t>(ptr + 2));
      const uint16_t len = CapLength(id, control);
      if (len == 0 || ptr + len > 256) continue;
      absl::StatusOr<uint8_t> added;
      if (id == PCI_CAP_ID_MSI) {
        added = space.AddMsi(
            {.log2_vectors = static_cast<uint8_t>((control & PCI_MSI_FLAGS_QMASK) >> 1),
             .is64 = (control & PCI_MSI_FLAGS_64BIT) != 0,
             .maskable = (control & PCI_MSI_FLAGS_MASKBIT) != 0},
            ptr);
      } else if (id == PCI_CAP_ID_MSIX) {
        const uint32_t table = Dword(real, static_cast<uint16_t>(ptr + PCI_MSIX_TABLE));
        const uint32_t pba = Dword(real, static_cast<uint16_t>(ptr + PCI_MSIX_PBA));
        added =
            space.AddMsix({.vectors = static_cast<uint16_t>((control & PCI_MSIX_FLAGS_QSIZE) + 1),
                           .table_bar = static_cast<uint8_t>(table & PCI_MSIX_TABLE_BIR),
                           .table_offset = table & ~uint32_t{PCI_MSIX_TABLE_BIR},
                           .pba_bar = static_cast<uint8_t>(pba & PCI_MSIX_PBA_BIR),
                           .pba_offset = pba & ~uint32_t{PCI_MSIX_PBA_BIR}},
                          ptr);
      } else {
        added =
            space.AddCapability(id, absl::MakeConstSpan(real.data() + ptr + 2, len - 2), {}, ptr);
      }
      if (!added.ok()) continue;
    }
  }
  return space;
}

absl::StatusOr<std::shared_ptr<VfioPciConfig>> VfioPciConfig::Create(const vfio::VfioDevice& device,
                                                                     Callbacks callbacks) {
  ASSIGN_OR_RETURN(pci::ConfigSpace space, Build(device));
  std::shared_ptr<VfioPciConfig> c(new VfioPciConfig(device, std::move(callbacks), space));
  // Fixed from here on: read without the lock.
  c->visible_ = space.capabilities();
  c->msix_ = space.msix();
  c->msi_pending_ = space.msi_pending_register();
  c->bar_list_ = space.bars();
  return c;
}

std::vector<VirtualBar> VfioPciConfig::bars() const {
  MutexLock lock(mu_);
  std::vector<VirtualBar> out;
  for (const pci::Bar& b : bar_list_) {
    VirtualBar v;
    static_cast<pci::Bar&>(v) = b;
    v.address = space_.BarAddress(b.index).value_or(0);
    out.push_back(v);
  }
  return out;
}

std::array<std::optional<uint64_t>, 6> VfioPciConfig::DecodedLocked() const {
  std::array<std::optional<uint64_t>, 6> out;
  for (const pci::Bar& b : bar_list_) out[b.index] = space_.DecodedBarAddress(b.index);
  return out;
}

uint32_t VfioPciConfig::ConfigRead(uint16_t reg) {
  if (reg >= pci::ConfigSpace::kSize) return 0;  // No extended capabilities.
  MutexLock lock(mu_);
  uint32_t v = space_.Read(reg);
  if (reg == PCI_COMMAND) {
    // Status is live (interrupt status, error bits), except the capability-list bit.
    absl::StatusOr<uint32_t> status = device_.ReadConfig(PCI_STATUS, 2);
    const uint32_t live = status.ok() ? *status : 0;
    const uint32_t ours = (v >> 16) & PCI_STATUS_CAP_LIST;
    v = (v & 0xffff) | (((live & ~uint32_t{PCI_STATUS_CAP_LIST}) | ours) << 16);
  }
  return v;
}

void VfioPciConfig::ForwardCommandLocked(std::vector<std::function<void()>>* events) {
  absl::StatusOr<uint32_t> live = device_.ReadConfig(PCI_COMMAND, 2);
  absl::Status s = live.status();
  if (live.ok()) {
    const uint32_t merged =
        (*live & ~uint32_t{kForwardedCommand}) | (space_.command() & kForwardedCommand);
    s = device_.WriteConfig(PCI_COMMAND, 2, merged);
  }
  if (!s.ok()) events->push_back([this, s] { guest_log_.Warning(s.ToString()); });
}

void VfioPciConfig::ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) {
  if (reg >= pci::ConfigSpace::kSize || reg % 4 != 0) return;
  std::vector<std::function<void()>> events;
  {
    MutexLock lock(mu_);
    if (reg == PCI_COMMAND && (byte_mask & 0xc)) {
      // Status: its write-1-to-clear bits are the device's.
      for (uint16_t i = 2; i < 4; ++i) {
        if (byte_mask & (1u << i)) {
          (void)device_.WriteConfig(reg + i, 1, static_cast<uint8_t>(value >> (8 * i)));
        }
      }
      byte_mask &= 0x3;
    }
    const std::array<std::optional<uint64_t>, 6> before = DecodedLocked();
    const pci::ConfigSpace::Change change = space_.Write(reg, value, byte_mask);
    if (change.command) ForwardCommandLocked(&events);
    const std::array<std::optional<uint64_t>, 6> after = DecodedLocked();
    for (const pci::Bar& b : bar_list_) {
      if (after[b.index] == before[b.index] || !callbacks_.bar_moved) continue;
      VirtualBar bar;
      static_cast<pci::Bar&>(bar) = b;
      bar.address = space_.BarAddress(b.index).value_or(0);
      events.push_back([this, bar, old = before[b.index], now = after[b.index]] {
        callbacks_.bar_moved(bar, old, now);
      });
    }
    if (change.msi && callbacks_.msi_changed) {
      events.push_back([this, s = space_.msi()] { callbacks_.msi_changed(s); });
    }
    if (change.msix && callbacks_.msix_changed) {
      events.push_back([this, enabled = space_.msix_enabled(), mask = space_.msix_function_mask()] {
        callbacks_.msix_changed(enabled, mask);
      });
    }
  }
  for (auto& e : events) e();
}

}  // namespace vmmkit::passthrough
