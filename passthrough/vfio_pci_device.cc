#include "passthrough/vfio_pci_device.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/alongside.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "memory/address.h"
#include "memory/guest_region.h"

namespace vmmkit::passthrough {
namespace {

constexpr uint64_t kPage = 4096;

uint64_t AlignDown(uint64_t v) { return v & ~(kPage - 1); }
uint64_t AlignUp(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

// [begin, end) ranges of `areas` minus `holes`, in order.
std::vector<std::pair<uint64_t, uint64_t>> Subtract(
    const std::vector<std::pair<uint64_t, uint64_t>>& areas,
    std::vector<std::pair<uint64_t, uint64_t>> holes) {
  std::sort(holes.begin(), holes.end());
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (auto [begin, end] : areas) {
    uint64_t at = begin;
    for (auto [hb, he] : holes) {
      if (he <= at || hb >= end) continue;
      if (hb > at) out.push_back({at, hb});
      at = std::max(at, he);
    }
    if (at < end) out.push_back({at, end});
  }
  return out;
}

}  // namespace

// The trapped parts of one BAR: MSI-X table and PBA to pci::MsixTable, the rest to the device's
// region. A vCPU may have taken the trap from the bus just before the device was unplugged, so the
// trap holds the device weakly: once the device is gone, reads float high and writes vanish.
class VfioPciDevice::BarTrap : public devices::BusDevice {
 public:
  BarTrap(std::weak_ptr<VfioPciDevice> device, uint32_t index)
      : device_(std::move(device)), index_(index) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    if (std::shared_ptr<VfioPciDevice> d = device_.lock()) {
      d->BarAccess(index_, false, offset, data.data(), data.size());
    } else {
      std::memset(data.data(), 0xff, data.size());
    }
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    if (std::shared_ptr<VfioPciDevice> d = device_.lock()) {
      d->BarAccess(index_, true, offset, const_cast<uint8_t*>(data.data()), data.size());
    }
  }

 private:
  const std::weak_ptr<VfioPciDevice> device_;
  const uint32_t index_;
};

absl::StatusOr<std::shared_ptr<VfioPciDevice>> VfioPciDevice::Create(
    std::unique_ptr<vfio::VfioDevice> device, PassthroughMachine machine,
    VfioPciDeviceOptions options) {
  if (device == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("passthrough device ", options.id, ": no VFIO device"));
  }
  std::shared_ptr<VfioPciDevice> d(
      new VfioPciDevice(std::move(device), machine, std::move(options)));
  RETURN_IF_ERROR(d->Init());  // On failure the destructor undoes what Init did.
  return d;
}

absl::Status VfioPciDevice::Init() {
  const std::string what =
      absl::StrCat("passthrough device ", options_.id, " (", device_->name(), ")");
  if (options_.explicit_reset) {
    absl::Status s = device_->Reset();
    if (!s.ok() && s.code() != absl::StatusCode::kFailedPrecondition) return s;
    if (!s.ok()) LogWarning(what, ": no reset on attach: ", s.message());
  }
  VfioPciConfig::Callbacks callbacks{
      .bar_moved = [this](const VirtualBar& bar, std::optional<uint64_t> from,
                          std::optional<uint64_t> to) { OnBarMoved(bar, from, to); },
      .msi_changed = [this](const MsiState& msi) { OnMsiChanged(msi); },
      .msix_changed = [this](bool enabled, bool mask) { OnMsixChanged(enabled, mask); },
  };
  ASSIGN_OR_RETURN(config_, VfioPciConfig::Create(*device_, std::move(callbacks)));
  msix_ = config_->msix();
  msi_pending_register_ = config_->msi_pending_register();
  if (msix_) {
    msix_table_ = std::make_unique<pci::MsixTable>(
        msix_->vectors,
        [this](uint16_t index, const pci::MsixVector& v) { OnMsixVector(index, v); });
  }
  MutexLock lock(machine_.lock);
  for (const VirtualBar& bar : config_->bars()) RETURN_IF_ERROR(PrepareBar(bar));

  // INTx: only if the device has a pin, VFIO offers it, and the VMM gave us a line.
  absl::StatusOr<uint32_t> pin = device_->ReadConfig(PCI_INTERRUPT_PIN, 1);
  absl::StatusOr<vfio::IrqInfo> intx = device_->GetIrqInfo(VFIO_PCI_INTX_IRQ_INDEX);
  intx_available_ = options_.intx_gsi.has_value() && pin.ok() && *pin != 0 && intx.ok() &&
                    intx->count == 1 && intx->eventfd();
  if (intx_available_) RETURN_IF_ERROR(EnableIntx());
  return absl::OkStatus();
}

absl::Status VfioPciDevice::PrepareBar(const VirtualBar& vbar) {
  Bar bar{.bar = vbar};
  if (!vbar.io) {
    ASSIGN_OR_RETURN(vfio::RegionInfo info, device_->GetRegionInfo(vbar.index));
    if (info.mmappable() && !info.MmapAreas().empty()) {
      ASSIGN_OR_RETURN(vfio::MappedRegion mapped, device_->MapRegion(vbar.index));
      bar.mapped = std::make_shared<vfio::MappedRegion>(std::move(mapped));
      std::vector<std::pair<uint64_t, uint64_t>> areas, holes;
      for (const auto& a : bar.mapped->areas()) areas.push_back({a.offset, a.offset + a.size});
      // The MSI-X table and PBA must trap (the guest's messages are emulated), whatever VFIO
      // allows: whole pages, since a KVM slot cannot be smaller.
      if (msix_ && msix_->table_bar == vbar.index) {
        holes.push_back(
            {AlignDown(msix_->table_offset),
             AlignUp(msix_->table_offset + msix_->vectors * pci::MsixTable::kEntrySize)});
      }
      if (msix_ && msix_->pba_bar == vbar.index) {
        holes.push_back({AlignDown(msix_->pba_offset),
                         AlignUp(msix_->pba_offset + (msix_->vectors + 63) / 64 * 8)});
      }
      for (auto [begin, end] : Subtract(areas, holes)) {
        // Slots need whole pages: a sub-page BAR (or area) is simply trapped.
        const uint64_t b = AlignUp(begin), e = AlignDown(end);
        if (e > b) bar.slot_areas.push_back({b, e - b});
      }
    }
  }
  bars_[vbar.index] = std::move(bar);
  return absl::OkStatus();
}

VfioPciDevice::~VfioPciDevice() {
  // Already detached (possibly on another thread, which handed this object over): nothing is left
  // to undo, and the machine's lock may be busy for a while (a VMM unmapping guest RAM).
  if (!detached_) Detach();
  // The device closes now (vfio-pci resets it once its fd and BAR mappings, its last references,
  // are gone), while KVM may still be tearing down the INTx irqfd that Detach handed to a helper;
  // then the helper is waited for, and with it go the eventfds.
  config_.reset();
  msix_table_.reset();
  for (auto& bar : bars_) bar.reset();
  device_.reset();
  intx_teardown_.reset();
}

void VfioPciDevice::Detach() {
  {
    MutexLock lock(machine_.lock);
    if (detached_) return;
    detached_ = true;
    if (mode_ == IrqMode::kMsi) DisableVectors(VFIO_PCI_MSI_IRQ_INDEX);
    if (mode_ == IrqMode::kMsix) DisableVectors(VFIO_PCI_MSIX_IRQ_INDEX);
    // Routes an earlier teardown could not remove: one more try, now that the device goes.
    if (!lingering_fds_.empty() && machine_.msi_routes.DisableDevice(options_.device_number).ok()) {
      lingering_fds_.clear();
    }
    if (mode_ == IrqMode::kIntx) {
      // The device can no longer raise INTx once VFIO has dropped its trigger. KVM's teardown of
      // a resampling irqfd waits out two or three SRCU grace periods (20-28 ms in the lab, where
      // it was most of a hot-unplug's critical path), so it runs on a helper while the caller goes
      // on (closing the fd, which waits for vfio-pci's reset; unmapping guest RAM); the
      // destructor waits for it.
      (void)device_->DisableIrqs(VFIO_PCI_INTX_IRQ_INDEX);
      mode_ = IrqMode::kNone;
      intx_teardown_ = std::make_unique<Alongside>(
          [lines = &machine_.irq_lines, trigger = intx_trigger_.get(), gsi = *options_.intx_gsi] {
            (void)lines->Deassign(*trigger, gsi);
          });
    }
    for (auto& bar : bars_) {
      if (bar) Unplace(*bar);
    }
  }
  // Stop the device's DMA before the VMM unmaps guest RAM from its container.
  (void)device_->WriteConfig(PCI_COMMAND, 2, 0);
  if (options_.explicit_reset) {
    absl::Status s = device_->Reset();
    if (!s.ok() && s.code() != absl::StatusCode::kFailedPrecondition) {
      LogWarning("passthrough device ", options_.id, ": reset on detach: ", s.message());
    }
  }
}

absl::Status VfioPciDevice::PlaceBars(
    const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) {
  for (const VirtualBar& bar : config_->bars()) {
    ASSIGN_OR_RETURN(uint64_t address, allocate(bar));
    if (address % bar.size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("passthrough device ", options_.id, ": BAR ", bar.index, " at ",
                       Hex(address), " is not aligned to its size ", Hex(bar.size)));
    }
    const uint16_t off = static_cast<uint16_t>(PCI_BASE_ADDRESS_0 + 4 * bar.index);
    config_->ConfigWrite(off, static_cast<uint32_t>(address), 0xf);
    if (bar.is64) {
      config_->ConfigWrite(static_cast<uint16_t>(off + 4), static_cast<uint32_t>(address >> 32),
                           0xf);
    }
  }
  if (intx_available_) config_->ConfigWrite(PCI_INTERRUPT_LINE, *options_.intx_gsi, 0x1);
  return absl::OkStatus();
}

std::string VfioPciDevice::Describe() {
  const uint32_t id = ConfigRead(0);
  std::string error;
  {
    MutexLock lock(machine_.lock);
    error = irq_error_;
  }
  return absl::StrFormat("vfio-pci %04x:%04x, interrupts: %s%s", id & 0xffff, id >> 16,
                         interrupt_mode(), error.empty() ? "" : absl::StrCat(" (", error, ")"));
}

std::string VfioPciDevice::interrupt_mode() const {
  MutexLock lock(machine_.lock);
  switch (mode_) {
    case IrqMode::kIntx:
      return "intx";
    case IrqMode::kMsi:
      return "msi";
    case IrqMode::kMsix:
      return "msix";
    case IrqMode::kNone:
      break;
  }
  return "none";
}

// --- BARs
// -----------------------------------------------------------------------------------------

void VfioPciDevice::OnBarMoved(const VirtualBar& vbar, std::optional<uint64_t> from,
                               std::optional<uint64_t> to) {
  MutexLock lock(machine_.lock);
  std::optional<Bar>& bar = bars_[vbar.index];
  if (!bar || detached_) return;
  (void)from;
  Unplace(*bar);
  bar->bar = vbar;
  if (!to) return;
  if (absl::Status s = Place(*bar, *to); !s.ok()) {
    // The guest put the BAR somewhere it cannot be (over RAM, or another device): it decodes
    // nowhere, as if the guest had left decoding off.
    guest_log_.Warning("passthrough device ", options_.id, ": BAR ", vbar.index, " at ", Hex(*to),
                       " not mapped: ", s.message());
  }
}

absl::Status VfioPciDevice::Place(Bar& bar, uint64_t address) {
  devices::Bus* bus = bar.bar.io ? &machine_.pio : &machine_.mmio;
  RETURN_IF_ERROR(bus->Insert(std::make_shared<BarTrap>(weak_from_this(), bar.bar.index), address,
                              bar.bar.size));
  bar.placed = address;
  for (auto [offset, size] : bar.slot_areas) {
    absl::StatusOr<std::shared_ptr<GuestRegion>> region = GuestRegion::FromMapping(
        GuestAddress(address + offset), size, bar.mapped->HostAddress(offset, size), bar.mapped);
    absl::Status s = region.status();
    if (s.ok()) {
      s = machine_.memory.AddDeviceMemory(SlotName(bar, offset), *region);
    }
    if (!s.ok()) {
      Unplace(bar);  // All or nothing.
      return s;
    }
  }
  return absl::OkStatus();
}

void VfioPciDevice::Unplace(Bar& bar) {
  if (!bar.placed) return;
  const uint64_t address = *bar.placed;
  for (auto [offset, size] : bar.slot_areas) {
    // Only what Place added: a failed Place may have stopped short, and the range may belong to
    // something else (the RAM the guest tried to cover).
    const AddressSpaceRegion* r = machine_.memory.Find(GuestAddress(address + offset));
    if (r != nullptr && r->name == SlotName(bar, offset)) {
      (void)machine_.memory.Remove(GuestAddress(address + offset));
    }
  }
  devices::Bus* bus = bar.bar.io ? &machine_.pio : &machine_.mmio;
  (void)bus->Remove(address);
  bar.placed.reset();
}

std::string VfioPciDevice::SlotName(const Bar& bar, uint64_t offset) const {
  return absl::StrCat(options_.id, "-bar", bar.bar.index, "+", Hex(offset));
}

void VfioPciDevice::BarAccess(uint32_t index, bool write, uint64_t offset, uint8_t* data,
                              size_t len) {
  if (detached_) {  // A vCPU that took the trap just before the unplug.
    if (!write) std::memset(data, 0xff, len);
    return;
  }
  if (msix_ && msix_table_) {
    const uint64_t table_end = msix_->table_offset + msix_->vectors * pci::MsixTable::kEntrySize;
    const uint64_t pba_end = msix_->pba_offset + (msix_->vectors + 63) / 64 * 8;
    if (index == msix_->table_bar && offset >= msix_->table_offset && offset < table_end) {
      if (offset + len > table_end) return;  // Straddles the table's end: dropped (reads: 0s).
      if (write) {
        msix_table_->WriteTable(offset - msix_->table_offset, absl::MakeConstSpan(data, len));
      } else {
        msix_table_->ReadTable(offset - msix_->table_offset, absl::MakeSpan(data, len));
      }
      return;
    }
    if (index == msix_->pba_bar && offset >= msix_->pba_offset && offset < pba_end) {
      if (!write && offset + len <= pba_end) {
        RefreshPending();
        msix_table_->ReadPba(offset - msix_->pba_offset, absl::MakeSpan(data, len));
      }
      return;  // The PBA is read-only.
    }
  }
  // Anything else goes to the device (VFIO bounds-checks against the region).
  absl::Status s = write ? device_->WriteRegion(index, offset, absl::MakeConstSpan(data, len))
                         : device_->ReadRegion(index, offset, absl::MakeSpan(data, len));
  if (!s.ok() && !write) std::memset(data, 0xff, len);
}

// --- Interrupts -------------------------------------------------------------------------------

absl::Status VfioPciDevice::EnableIntx() {
  if (!intx_available_ || mode_ == IrqMode::kIntx) return absl::OkStatus();
  if (intx_trigger_ == nullptr) {
    ASSIGN_OR_RETURN(EventFd trigger, EventFd::Create());
    ASSIGN_OR_RETURN(EventFd resample, EventFd::Create());
    intx_trigger_ = std::make_unique<EventFd>(std::move(trigger));
    intx_resample_ = std::make_unique<EventFd>(std::move(resample));
  }
  // Level-triggered: the line stays asserted until the guest EOIs; the irqchip then signals the
  // resample eventfd, which VFIO takes as "unmask" (it masked the device when it fired).
  RETURN_IF_ERROR(
      machine_.irq_lines.AssignWithResample(*intx_trigger_, *intx_resample_, *options_.intx_gsi));
  const int fd = intx_trigger_->fd();
  absl::Status s = device_->EnableIrqs(VFIO_PCI_INTX_IRQ_INDEX, 0, absl::MakeConstSpan(&fd, 1));
  if (s.ok()) s = device_->SetIntxUnmaskEventfd(intx_resample_->fd());
  if (!s.ok()) {
    (void)device_->DisableIrqs(VFIO_PCI_INTX_IRQ_INDEX);
    (void)machine_.irq_lines.Deassign(*intx_trigger_, *options_.intx_gsi);
    return s;
  }
  mode_ = IrqMode::kIntx;
  return absl::OkStatus();
}

void VfioPciDevice::DisableIntx() {
  if (mode_ != IrqMode::kIntx) return;
  (void)device_->DisableIrqs(VFIO_PCI_INTX_IRQ_INDEX);
  (void)machine_.irq_lines.Deassign(*intx_trigger_, *options_.intx_gsi);
  mode_ = IrqMode::kNone;
}

uint32_t VfioPciDevice::ConfigRead(uint16_t reg) {
  if (detached_) return ~0u;
  if (reg == msi_pending_register_) return MsiPending();
  return config_->ConfigRead(reg);
}

// A masked vector (MSI or MSI-X) has no irqfd bound, so what VFIO signals meanwhile stays counted
// in its eventfd until the unmask binds it again (and KVM delivers it): that count is the pending
// bit.
std::vector<bool> VfioPciDevice::SignalledVectors() const {
  std::vector<pollfd> fds;
  for (const auto& fd : vector_fds_) fds.push_back({fd != nullptr ? fd->fd() : -1, POLLIN, 0});
  std::vector<bool> signalled(fds.size(), false);
  if (fds.empty() || ::poll(fds.data(), fds.size(), 0) < 0) return signalled;
  for (size_t i = 0; i < fds.size(); ++i) signalled[i] = (fds[i].revents & POLLIN) != 0;
  return signalled;
}

void VfioPciDevice::RefreshPending() {
  MutexLock lock(machine_.lock);
  const std::vector<bool> signalled =
      mode_ == IrqMode::kMsix ? SignalledVectors() : std::vector<bool>();
  for (uint16_t i = 0; i < msix_table_->size(); ++i) {
    const bool masked = msix_function_mask_ || msix_table_->vector(i).masked;
    msix_table_->SetPending(i, masked && i < signalled.size() && signalled[i]);
  }
}

uint32_t VfioPciDevice::MsiPending() {
  MutexLock lock(machine_.lock);
  if (mode_ != IrqMode::kMsi) return 0;
  const std::vector<bool> signalled = SignalledVectors();
  uint32_t bits = 0;
  for (size_t i = 0; i < signalled.size() && i < 32; ++i) {
    if ((msi_.mask >> i & 1) && signalled[i]) bits |= 1u << i;
  }
  return bits;
}

void VfioPciDevice::DisableVectors(uint32_t vfio_index) {
  (void)device_->DisableIrqs(vfio_index);
  // All of them with one routing-table update, not one per vector: a guest disabling MSI-X with
  // many vectors waits for this (its vCPU is in the config write), and so does an unplug.
  if (absl::Status s = machine_.msi_routes.DisableDevice(options_.device_number); !s.ok()) {
    // The routes, and irqfds KVM may still hold, stay: so do their eventfds, until a later
    // teardown (another disable, the detach) takes the routes away.
    LogError("passthrough device ", options_.id, ": ", s.message());
    for (auto& fd : vector_fds_) {
      if (fd != nullptr) lingering_fds_.push_back(std::move(fd));
    }
  } else {
    lingering_fds_.clear();
  }
  vector_fds_.clear();
  vfio_vectors_ = 0;
  mode_ = IrqMode::kNone;
}

void VfioPciDevice::IrqError(absl::string_view what, const absl::Status& s) {
  irq_error_ = absl::StrCat(what, ": ", s.message());
  guest_log_.Warning("passthrough device ", options_.id, ": ", irq_error_);
}

namespace {
irq::MsiMessage MsiVectorMessage(const MsiState& msi, uint32_t i) {
  // Multiple-message MSI: the device puts the vector number in the data's low bits.
  const uint32_t low = msi.vectors - 1;
  return {msi.address, (uint32_t{msi.data} & ~low) | i};
}
}  // namespace

absl::Status VfioPciDevice::EnableMsi(const MsiState& msi) {
  std::vector<int> fds;
  std::vector<std::unique_ptr<EventFd>> created;
  for (uint32_t i = 0; i < msi.vectors; ++i) {
    ASSIGN_OR_RETURN(EventFd fd, EventFd::Create());
    created.push_back(std::make_unique<EventFd>(std::move(fd)));
    fds.push_back(created.back()->fd());
  }
  DisableIntx();  // VFIO runs one interrupt type at a time.
  vector_fds_ = std::move(created);
  absl::Status s;
  uint32_t enabled = 0;
  for (; enabled < msi.vectors && s.ok(); ++enabled) {
    s = machine_.msi_routes
            .Enable(Key(enabled, false), MsiVectorMessage(msi, enabled),
                    options_.guest_requester_id, *vector_fds_[enabled], (msi.mask >> enabled) & 1)
            .status();
  }
  if (s.ok()) s = device_->EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, fds);
  if (!s.ok()) {
    // No quiet fall-back to INTx: the guest's driver waits for MSIs, not INTx.
    DisableVectors(VFIO_PCI_MSI_IRQ_INDEX);
    return s;
  }
  mode_ = IrqMode::kMsi;
  msi_ = msi;
  irq_error_.clear();
  return absl::OkStatus();
}

void VfioPciDevice::OnMsiChanged(const MsiState& msi) {
  MutexLock lock(machine_.lock);
  if (detached_) return;
  if (mode_ == IrqMode::kMsix) return;  // The guest enabled both: MSI-X wins, as in QEMU.
  absl::Status s;
  if (!msi.enabled) {
    if (mode_ == IrqMode::kMsi) {
      DisableVectors(VFIO_PCI_MSI_IRQ_INDEX);
      s = EnableIntx();
    }
  } else if (mode_ != IrqMode::kMsi || msi.vectors != msi_.vectors) {
    if (mode_ == IrqMode::kMsi) DisableVectors(VFIO_PCI_MSI_IRQ_INDEX);
    s = EnableMsi(msi);
  } else {
    // Reprogrammed or (un)masked while enabled: update the routes in place.
    for (uint32_t i = 0; i < msi.vectors && s.ok(); ++i) {
      const irq::MsiMessage m = MsiVectorMessage(msi, i);
      if (m != MsiVectorMessage(msi_, i)) s = machine_.msi_routes.Update(Key(i, false), m);
      if (s.ok() && ((msi.mask ^ msi_.mask) >> i & 1)) {
        s = (msi.mask >> i & 1) ? machine_.msi_routes.Mask(Key(i, false))
                                : machine_.msi_routes.Unmask(Key(i, false));
      }
    }
    if (s.ok()) msi_ = msi;
  }
  if (!s.ok()) IrqError("MSI", s);
}

absl::Status VfioPciDevice::EnableMsix() {
  if (mode_ == IrqMode::kMsi) DisableVectors(VFIO_PCI_MSI_IRQ_INDEX);
  DisableIntx();
  // The device goes into MSI-X mode with no vector wired (one vector, no eventfd), as the guest's
  // view has it: Linux enables MSI-X with every vector masked and unmasks each as a driver asks
  // for it. A vector gets its eventfd and route on its first unmask (WireMsixVector), so a table
  // of 2048 entries costs nothing for the vectors nobody uses.
  const int none = -1;
  RETURN_IF_ERROR(device_->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, absl::MakeConstSpan(&none, 1)));
  vector_fds_.clear();
  vector_fds_.resize(msix_table_->size());
  vfio_vectors_ = 1;
  mode_ = IrqMode::kMsix;
  irq_error_.clear();
  absl::Status first_error;
  for (uint16_t i = 0; i < msix_table_->size(); ++i) {
    if (msix_table_->vector(i).masked) continue;
    absl::Status s = WireMsixVector(i);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

absl::Status VfioPciDevice::WireMsixVector(uint16_t index) {
  if (vector_fds_[index] != nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(EventFd created, EventFd::Create());
  auto fd = std::make_unique<EventFd>(std::move(created));
  const pci::MsixVector v = msix_table_->vector(index);
  const auto fail = [&](const absl::Status& s) { return Prefixed(s, "vector ", index); };
  // Routed masked; the caller unmasks it if the function mask allows.
  if (absl::Status s = machine_.msi_routes
                           .Enable(Key(index, true), {v.address, v.data},
                                   options_.guest_requester_id, *fd, /*masked=*/true)
                           .status();
      !s.ok()) {
    return fail(s);
  }
  vector_fds_[index] = std::move(fd);
  absl::Status s;
  if (index < vfio_vectors_) {
    const int raw = vector_fds_[index]->fd();
    s = device_->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, index, absl::MakeConstSpan(&raw, 1));
  } else {
    // VFIO (Linux before 6.5) cannot add vectors to an enabled MSI-X: enable it again with room
    // for this one, every wired vector keeping its eventfd (what QEMU does on such kernels).
    std::vector<int> fds(index + 1u, -1);
    for (uint32_t i = 0; i <= index; ++i) {
      if (vector_fds_[i] != nullptr) fds[i] = vector_fds_[i]->fd();
    }
    (void)device_->DisableIrqs(VFIO_PCI_MSIX_IRQ_INDEX);
    s = device_->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, fds);
    if (s.ok()) vfio_vectors_ = index + 1u;
  }
  if (!s.ok()) {
    (void)machine_.msi_routes.Disable(Key(index, true));
    vector_fds_[index].reset();
    return fail(s);
  }
  return absl::OkStatus();
}

absl::Status VfioPciDevice::ApplyMsixMask(uint16_t index) {
  const bool masked = msix_function_mask_ || msix_table_->vector(index).masked;
  if (vector_fds_[index] == nullptr) {
    if (msix_table_->vector(index).masked) return absl::OkStatus();  // Never used yet.
    RETURN_IF_ERROR(WireMsixVector(index));
  }
  return masked ? machine_.msi_routes.Mask(Key(index, true))
                : machine_.msi_routes.Unmask(Key(index, true));
}

void VfioPciDevice::OnMsixChanged(bool enabled, bool function_mask) {
  if (!msix_table_) return;
  MutexLock lock(machine_.lock);
  if (detached_) return;
  absl::Status s;
  const bool mask_changed = function_mask != msix_function_mask_;
  msix_function_mask_ = function_mask;
  if (!enabled) {
    if (mode_ == IrqMode::kMsix) {
      DisableVectors(VFIO_PCI_MSIX_IRQ_INDEX);
      s = EnableIntx();
    }
  } else if (mode_ != IrqMode::kMsix) {
    s = EnableMsix();
    for (uint16_t i = 0; i < msix_table_->size() && s.ok() && !function_mask; ++i) {
      s = ApplyMsixMask(i);
    }
  } else if (mask_changed) {
    for (uint16_t i = 0; i < msix_table_->size() && s.ok(); ++i) s = ApplyMsixMask(i);
  }
  if (!s.ok()) IrqError("MSI-X", s);
}

void VfioPciDevice::OnMsixVector(uint16_t index, const pci::MsixVector& v) {
  MutexLock lock(machine_.lock);
  if (detached_ || mode_ != IrqMode::kMsix) return;  // Applied when MSI-X is enabled.
  const irq::MsiMessage m{v.address, v.data};
  absl::Status s;
  if (vector_fds_[index] != nullptr && machine_.msi_routes.delivered(Key(index, true)) != m) {
    s = machine_.msi_routes.Update(Key(index, true), m);
  }
  if (s.ok()) s = ApplyMsixMask(index);
  if (!s.ok()) IrqError("MSI-X", s);
}

}  // namespace vmmkit::passthrough
