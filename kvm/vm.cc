#include "kvm/vm.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/ioctl.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "kvm/internal/kvm_abi.h"
#include "kvm/vcpu.h"

namespace vmmkit::kvm {
namespace {

constexpr uint64_t kPageSize = 4096;

std::string RegionString(const GuestRegion& r) {
  return absl::StrCat("[", r.start().ToString(), ", ", r.last().ToString(), "]");
}

}  // namespace

std::vector<GsiRoute> DefaultIrqchipRoutes() {
  std::vector<GsiRoute> routes;
  for (uint32_t gsi = 0; gsi < 24; ++gsi) {
    if (gsi < 8) routes.push_back({gsi, IrqchipRoute{KVM_IRQCHIP_PIC_MASTER, gsi}});
    if (gsi >= 8 && gsi < 16) routes.push_back({gsi, IrqchipRoute{KVM_IRQCHIP_PIC_SLAVE, gsi - 8}});
    // The PIT (GSI 0) is wired to IOAPIC pin 2; pin 0 is left unconnected.
    routes.push_back({gsi, IrqchipRoute{KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2u : gsi}});
  }
  return routes;
}

absl::StatusOr<int> Vm::CheckExtension(int capability) const {
  return Ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability,
               "KVM_CHECK_EXTENSION (vm) cap=", capability);
}

absl::Status Vm::EnableCap(uint32_t capability, absl::Span<const uint64_t> args, uint32_t flags) {
  kvm_enable_cap cap{};
  if (args.size() > sizeof(cap.args) / sizeof(cap.args[0])) {
    return absl::InvalidArgumentError(absl::StrCat("KVM_ENABLE_CAP cap=", capability, ": ",
                                                   args.size(), " arguments, at most 4"));
  }
  cap.cap = capability;
  cap.flags = flags;
  for (size_t i = 0; i < args.size(); ++i) cap.args[i] = args[i];
  return Ioctl(fd_.get(), KVM_ENABLE_CAP, &cap, "KVM_ENABLE_CAP cap=", capability).status();
}

absl::StatusOr<std::unique_ptr<Vcpu>> Vm::CreateVcpu(uint32_t id) {
  ASSIGN_OR_RETURN(int raw, Ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id),
                                  "KVM_CREATE_VCPU id=", id));
  return Vcpu::Adopt(id, ScopedFd(raw), vcpu_mmap_size_);
}

absl::StatusOr<uint32_t> Vm::AddMemoryRegion(std::shared_ptr<GuestRegion> region,
                                             MemorySlotFlags flags) {
  if (region == nullptr) {
    return absl::InvalidArgumentError("KVM_SET_USER_MEMORY_REGION: null region");
  }
  // GuestRegion guarantees page alignment of start, size and host address; check anyway, because
  // the kernel's EINVAL would not say which one was wrong.
  if (!region->start().IsAligned(kPageSize) || region->size() % kPageSize != 0 ||
      reinterpret_cast<uintptr_t>(region->host_address()) % kPageSize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KVM_SET_USER_MEMORY_REGION ", RegionString(*region), ": not 4 KiB aligned"));
  }
  MutexLock lock(slots_mu_);
  uint32_t slot = 0;
  for (const auto& [id, s] : slots_) {
    if (region->start() <= s.region->last() && s.region->start() <= region->last()) {
      return absl::AlreadyExistsError(absl::StrCat("KVM_SET_USER_MEMORY_REGION ",
                                                   RegionString(*region), ": overlaps slot ", id,
                                                   " ", RegionString(*s.region)));
    }
    if (id == slot) ++slot;  // slots_ is ordered: the first gap is the lowest free slot.
  }
  if (slot >= max_slots_) {
    return absl::ResourceExhaustedError(absl::StrCat("KVM_SET_USER_MEMORY_REGION ",
                                                     RegionString(*region), ": all ", max_slots_,
                                                     " memory slots are in use"));
  }
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.flags =
      (flags.log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0u) | (flags.readonly ? KVM_MEM_READONLY : 0u);
  r.guest_phys_addr = region->start().raw();
  r.memory_size = region->size();
  r.userspace_addr = reinterpret_cast<uintptr_t>(region->host_address());
  RETURN_IF_ERROR(Ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r,
                        "KVM_SET_USER_MEMORY_REGION slot=", slot,
                        " gpa=", region->start().ToString(), " size=", Hex(region->size()))
                      .status());
  slots_.emplace(slot, Slot{std::move(region), flags});
  return slot;
}

absl::Status Vm::RemoveMemoryRegion(uint32_t slot) {
  MutexLock lock(slots_mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end()) {
    return absl::NotFoundError(
        absl::StrCat("KVM_SET_USER_MEMORY_REGION: slot ", slot, " is not mapped"));
  }
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = it->second.region->start().raw();
  r.memory_size = 0;  // Size 0 deletes the slot.
  r.userspace_addr = reinterpret_cast<uintptr_t>(it->second.region->host_address());
  RETURN_IF_ERROR(Ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r,
                        "KVM_SET_USER_MEMORY_REGION (delete) slot=", slot)
                      .status());
  slots_.erase(it);
  return absl::OkStatus();
}

std::optional<uint32_t> Vm::SlotAt(GuestAddress gpa) const {
  MutexLock lock(slots_mu_);
  for (const auto& [id, s] : slots_) {
    if (s.region->Contains(gpa)) return id;
  }
  return std::nullopt;
}

size_t Vm::slot_count() const {
  MutexLock lock(slots_mu_);
  return slots_.size();
}

absl::Status Vm::CreateIrqchip() {
  return Ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP").status();
}

absl::Status Vm::EnableSplitIrqchip(uint32_t ioapic_pins) {
  const uint64_t args[] = {ioapic_pins};
  return EnableCap(KVM_CAP_SPLIT_IRQCHIP, args);
}

absl::StatusOr<kvm_irqchip> Vm::GetIrqchip(uint32_t chip) const {
  kvm_irqchip state{};
  state.chip_id = chip;
  RETURN_IF_ERROR(
      Ioctl(fd_.get(), KVM_GET_IRQCHIP, &state, "KVM_GET_IRQCHIP chip=", chip).status());
  return state;
}

absl::Status Vm::SetIrqchip(const kvm_irqchip& chip) {
  return Ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP chip=", chip.chip_id).status();
}

absl::Status Vm::CreatePit2(uint32_t flags) {
  kvm_pit_config config{};
  config.flags = flags;
  return Ioctl(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2 flags=", Hex(flags)).status();
}

absl::Status Vm::SetTssAddress(GuestAddress address) {
  return Ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address.raw()),
               "KVM_SET_TSS_ADDR addr=", address.ToString())
      .status();
}

absl::Status Vm::SetIdentityMapAddress(GuestAddress address) {
  uint64_t addr = address.raw();
  return Ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr,
               "KVM_SET_IDENTITY_MAP_ADDR addr=", address.ToString())
      .status();
}

absl::Status Vm::Irqfd(const EventFd& event, uint32_t gsi, uint32_t flags, int resample_fd,
                       const char* what) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event.fd());
  irqfd.gsi = gsi;
  irqfd.flags = flags;
  irqfd.resamplefd = static_cast<uint32_t>(resample_fd);
  return Ioctl(fd_.get(), KVM_IRQFD, &irqfd, what, " gsi=", gsi, " fd=", event.fd()).status();
}

absl::Status Vm::AssignIrqfd(const EventFd& event, uint32_t gsi) {
  return Irqfd(event, gsi, 0, 0, "KVM_IRQFD");
}

absl::Status Vm::AssignIrqfdWithResample(const EventFd& event, const EventFd& resample,
                                         uint32_t gsi) {
  return Irqfd(event, gsi, KVM_IRQFD_FLAG_RESAMPLE, resample.fd(), "KVM_IRQFD (resample)");
}

absl::Status Vm::DeassignIrqfd(const EventFd& event, uint32_t gsi) {
  return Irqfd(event, gsi, KVM_IRQFD_FLAG_DEASSIGN, 0, "KVM_IRQFD (deassign)");
}

absl::Status Vm::Ioevent(const EventFd& event, IoBus bus, uint64_t address, uint32_t length,
                         std::optional<uint64_t> datamatch, bool deassign) {
  const char* name = deassign ? "KVM_IOEVENTFD (deassign)" : "KVM_IOEVENTFD";
  const char* bus_name = bus == IoBus::kPio ? "pio" : "mmio";
  if (length != 0 && length != 1 && length != 2 && length != 4 && length != 8) {
    return absl::InvalidArgumentError(absl::StrCat(name, " ", bus_name, "=", Hex(address),
                                                   ": length ", length, " is not 0, 1, 2, 4 or 8"));
  }
  if (datamatch && length == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " ", bus_name, "=", Hex(address), ": datamatch needs a length"));
  }
  kvm_ioeventfd io{};
  io.addr = address;
  io.len = length;
  io.fd = event.fd();
  io.flags = (bus == IoBus::kPio ? KVM_IOEVENTFD_FLAG_PIO : 0u) |
             (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0u) |
             (datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0u);
  io.datamatch = datamatch.value_or(0);
  return Ioctl(fd_.get(), KVM_IOEVENTFD, &io, name, " ", bus_name, "=", Hex(address),
               " len=", length)
      .status();
}

absl::Status Vm::RegisterIoevent(const EventFd& event, IoBus bus, uint64_t address, uint32_t length,
                                 std::optional<uint64_t> datamatch) {
  return Ioevent(event, bus, address, length, datamatch, /*deassign=*/false);
}

absl::Status Vm::UnregisterIoevent(const EventFd& event, IoBus bus, uint64_t address,
                                   uint32_t length, std::optional<uint64_t> datamatch) {
  return Ioevent(event, bus, address, length, datamatch, /*deassign=*/true);
}

absl::Status Vm::SetGsiRouting(absl::Span<const GsiRoute> routes) {
  internal::VarBuffer<internal::IrqRoutingHeader, kvm_irq_routing_entry> buf(routes.size());
  buf.header()->nr = static_cast<uint32_t>(routes.size());
  for (size_t i = 0; i < routes.size(); ++i) {
    kvm_irq_routing_entry& e = buf.elements()[i];
    e.gsi = routes[i].gsi;
    if (const auto* chip = std::get_if<IrqchipRoute>(&routes[i].target)) {
      e.type = KVM_IRQ_ROUTING_IRQCHIP;
      e.u.irqchip.irqchip = chip->irqchip;
      e.u.irqchip.pin = chip->pin;
    } else {
      const auto& msi = std::get<MsiRoute>(routes[i].target);
      e.type = KVM_IRQ_ROUTING_MSI;
      e.u.msi.address_lo = static_cast<uint32_t>(msi.address);
      e.u.msi.address_hi = static_cast<uint32_t>(msi.address >> 32);
      e.u.msi.data = msi.data;
      if (msi.devid) {
        e.flags = KVM_MSI_VALID_DEVID;
        e.u.msi.devid = *msi.devid;
      }
    }
  }
  return Ioctl(fd_.get(), internal::kSetGsiRouting, buf.data(),
               "KVM_SET_GSI_ROUTING entries=", routes.size())
      .status();
}

absl::StatusOr<bool> Vm::SignalMsi(uint64_t address, uint32_t data, std::optional<uint32_t> devid) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  if (devid) {
    msi.flags = KVM_MSI_VALID_DEVID;
    msi.devid = *devid;
  }
  ASSIGN_OR_RETURN(int delivered, Ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi, "KVM_SIGNAL_MSI address=",
                                        Hex(address), " data=", Hex(data)));
  return delivered > 0;
}

absl::Status Vm::SetIrqLine(uint32_t irq, bool level) {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level ? 1 : 0;
  return Ioctl(fd_.get(), KVM_IRQ_LINE, &line, "KVM_IRQ_LINE irq=", irq, " level=", line.level)
      .status();
}

absl::StatusOr<uint64_t> Vm::SlotPages(uint32_t slot) const {
  MutexLock lock(slots_mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end()) {
    return absl::NotFoundError(absl::StrCat("dirty log: slot ", slot, " is not mapped"));
  }
  if (!it->second.flags.log_dirty) {
    return absl::FailedPreconditionError(
        absl::StrCat("dirty log: slot ", slot, " was not mapped with log_dirty"));
  }
  return it->second.region->size() / kPageSize;
}

absl::StatusOr<std::vector<uint64_t>> Vm::GetDirtyLog(uint32_t slot) const {
  ASSIGN_OR_RETURN(uint64_t pages, SlotPages(slot));
  std::vector<uint64_t> bitmap((pages + 63) / 64);
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  RETURN_IF_ERROR(
      Ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG slot=", slot).status());
  return bitmap;
}

absl::Status Vm::ClearDirtyLog(uint32_t slot, uint64_t first_page, uint64_t num_pages) {
  ASSIGN_OR_RETURN(uint64_t pages, SlotPages(slot));
  const std::string what = absl::StrCat("KVM_CLEAR_DIRTY_LOG slot=", slot,
                                        " first_page=", first_page, " num_pages=", num_pages);
  if (num_pages == 0 || first_page >= pages || num_pages > pages - first_page ||
      num_pages > UINT32_MAX) {
    return absl::OutOfRangeError(absl::StrCat(what, ": outside the slot's ", pages, " pages"));
  }
  if (first_page % 64 != 0 || (num_pages % 64 != 0 && first_page + num_pages != pages)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": range must start and end on multiples of 64 pages (or at the slot end)"));
  }
  std::vector<uint64_t> ones((num_pages + 63) / 64, ~uint64_t{0});
  kvm_clear_dirty_log clear{};
  clear.slot = slot;
  clear.first_page = first_page;
  clear.num_pages = static_cast<uint32_t>(num_pages);
  clear.dirty_bitmap = ones.data();
  return Ioctl(fd_.get(), KVM_CLEAR_DIRTY_LOG, &clear, what).status();
}

}  // namespace vmmkit::kvm
