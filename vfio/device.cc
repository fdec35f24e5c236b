#include "vfio/device.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "vfio/internal/cap_chain.h"
#include "vfio/internal/dma_checks.h"
#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio {

std::vector<RegionInfo::Area> RegionInfo::MmapAreas() const {
  if (!mmappable()) return {};
  if (!sparse_areas) return {{0, size}};
  std::vector<Area> out;
  for (const Area& a : *sparse_areas) {
    if (a.size != 0) out.push_back(a);
  }
  return out;
}

// --- MappedRegion -----------------------------------------------------------------------------

MappedRegion::MappedRegion(MappedRegion&& other) noexcept
    : sys_(other.sys_), index_(other.index_), areas_(std::move(other.areas_)) {
  other.areas_.clear();
}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    Release();
    sys_ = other.sys_;
    index_ = other.index_;
    areas_ = std::move(other.areas_);
    other.areas_.clear();
  }
  return *this;
}

MappedRegion::~MappedRegion() { Release(); }

void MappedRegion::Release() {
  for (const Area& a : areas_) sys_->Munmap(a.host, a.size);
  areas_.clear();
}

uint8_t* MappedRegion::HostAddress(uint64_t offset, uint64_t size) const {
  for (const Area& a : areas_) {
    if (offset >= a.offset && size <= a.size && offset - a.offset <= a.size - size) {
      return a.host + (offset - a.offset);
    }
  }
  return nullptr;
}

template <typename T>
absl::StatusOr<volatile T*> MappedRegion::At(uint64_t offset) const {
  if (offset % sizeof(T) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("region ", index_, " offset ", Hex(offset),
                                                   ": not aligned to ", sizeof(T), " bytes"));
  }
  uint8_t* p = HostAddress(offset, sizeof(T));
  if (p == nullptr) {
    return absl::OutOfRangeError(absl::StrCat("region ", index_, " offset ", Hex(offset), "+",
                                              sizeof(T), ": outside the mmapped areas"));
  }
  return reinterpret_cast<volatile T*>(p);
}

absl::StatusOr<uint32_t> MappedRegion::Read32(uint64_t offset) const {
  ASSIGN_OR_RETURN(volatile uint32_t * p, At<uint32_t>(offset));
  return *p;
}
absl::StatusOr<uint64_t> MappedRegion::Read64(uint64_t offset) const {
  ASSIGN_OR_RETURN(volatile uint64_t * p, At<uint64_t>(offset));
  return *p;
}
absl::Status MappedRegion::Write32(uint64_t offset, uint32_t value) const {
  ASSIGN_OR_RETURN(volatile uint32_t * p, At<uint32_t>(offset));
  *p = value;
  return absl::OkStatus();
}
absl::Status MappedRegion::Write64(uint64_t offset, uint64_t value) const {
  ASSIGN_OR_RETURN(volatile uint64_t * p, At<uint64_t>(offset));
  *p = value;
  return absl::OkStatus();
}

// --- VfioDevice -------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<VfioDevice>> VfioDevice::OpenCdev(const std::string& path,
                                                                 VfioSyscalls& sys) {
  const int raw = sys.Open(path.c_str(), O_RDWR);
  if (raw < 0) return ErrnoStatus(-raw, "open ", path);
  return std::unique_ptr<VfioDevice>(new VfioDevice(sys, nullptr, path, ScopedFd(raw)));
}

absl::StatusOr<std::unique_ptr<VfioDevice>> VfioDevice::FromGroupFd(
    std::shared_ptr<VfioGroup> group, VfioSyscalls& sys, const std::string& name, ScopedFd fd) {
  std::unique_ptr<VfioDevice> dev(new VfioDevice(sys, std::move(group), name, std::move(fd)));
  RETURN_IF_ERROR(dev->ReadInfo());
  return dev;
}

std::string VfioDevice::Name(const char* op) const { return absl::StrCat(op, " ", name_); }

absl::Status VfioDevice::ReadInfo() {
  vfio_device_info info{};
  info.argsz = sizeof(info);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_DEVICE_GET_INFO,
                            reinterpret_cast<uintptr_t>(&info), Name("VFIO_DEVICE_GET_INFO"))
                      .status());
  info_ = {info.flags, info.num_regions, info.num_irqs};
  if (info_.is_pci() && info_.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
    return absl::InternalError(absl::StrCat(Name("VFIO_DEVICE_GET_INFO"), ": a PCI device with ",
                                            info_.num_regions, " regions has no config space"));
  }
  // Region layouts do not change while the device is open: read them once, so that region and
  // config accesses (which a guest drives) cost one pread/pwrite each.
  regions_.clear();
  for (uint32_t i = 0; i < info_.num_regions && i < kMaxCachedRegions; ++i) {
    absl::StatusOr<RegionInfo> r = GetRegionInfo(i);
    // vfio-pci counts regions a device may not have (the VGA region of a non-VGA device) and
    // answers EINVAL for them: such a region is empty, neither readable nor writable.
    if (r.status().code() == absl::StatusCode::kInvalidArgument) r = RegionInfo{.index = i};
    if (!r.ok()) return r.status();
    regions_.push_back(*std::move(r));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> VfioDevice::BindIommufd(std::shared_ptr<Iommufd> iommufd) {
  const std::string what = Name("VFIO_DEVICE_BIND_IOMMUFD");
  if (group_ != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(what,
                     ": the device was opened through its group (legacy container); only a "
                     "cdev device binds to an iommufd"));
  }
  if (iommufd == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, ": null iommufd"));
  if (iommufd_ != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": already bound"));
  }
  internal::vfio_device_bind_iommufd bind{};
  bind.argsz = sizeof(bind);
  bind.iommufd = iommufd->fd();
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), internal::kVfioDeviceBindIommufd,
                            reinterpret_cast<uintptr_t>(&bind), what, " iommufd=", bind.iommufd)
                      .status());
  iommufd_ = std::move(iommufd);
  RETURN_IF_ERROR(ReadInfo());
  return bind.out_devid;
}

absl::Status VfioDevice::AttachIoas(const IommufdIoas& ioas) {
  const std::string what = absl::StrCat(Name("VFIO_DEVICE_ATTACH_IOMMUFD_PT"), " ioas=", ioas.id());
  if (iommufd_ == nullptr || &ioas.iommufd() != iommufd_.get()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": bind the device to the IOAS's iommufd first"));
  }
  internal::vfio_device_attach_iommufd_pt attach{};
  attach.argsz = sizeof(attach);
  attach.pt_id = ioas.id();
  RETURN_IF_ERROR(
      internal::WithDmaHint(VfioIoctl(sys_, fd_.get(), internal::kVfioDeviceAttachIommufdPt,
                                      reinterpret_cast<uintptr_t>(&attach), what)
                                .status()));
  attached_ioas_ = ioas.id();
  return absl::OkStatus();
}

absl::Status VfioDevice::DetachIoas() {
  const std::string what = Name("VFIO_DEVICE_DETACH_IOMMUFD_PT");
  if (!attached_ioas_) return absl::FailedPreconditionError(absl::StrCat(what, ": not attached"));
  internal::vfio_device_detach_iommufd_pt detach{};
  detach.argsz = sizeof(detach);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), internal::kVfioDeviceDetachIommufdPt,
                            reinterpret_cast<uintptr_t>(&detach), what)
                      .status());
  attached_ioas_.reset();
  return absl::OkStatus();
}

absl::StatusOr<RegionInfo> VfioDevice::GetRegionInfo(uint32_t index) const {
  const std::string what = absl::StrCat(Name("VFIO_DEVICE_GET_REGION_INFO"), " index=", index);
  if (index >= info_.num_regions) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": the device has ", info_.num_regions, " regions"));
  }
  vfio_region_info in{};
  in.index = index;
  ASSIGN_OR_RETURN(
      std::vector<uint64_t> buf,
      internal::GetInfoWithCaps(sys_, fd_.get(), VFIO_DEVICE_GET_REGION_INFO, in, what));
  const auto* info = reinterpret_cast<const vfio_region_info*>(buf.data());
  RegionInfo out;
  out.index = index;
  out.flags = info->flags;
  out.size = info->size;
  out.offset = info->offset;
  if (!(info->flags & VFIO_REGION_INFO_FLAG_CAPS)) return out;
  const auto* bytes = reinterpret_cast<const uint8_t*>(buf.data());
  const size_t size = buf.size() * 8;
  RETURN_IF_ERROR(internal::WalkCapChain(
      bytes, size, info->cap_offset, what, [&](uint16_t id, size_t off) -> absl::Status {
        if (id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
          vfio_region_info_cap_sparse_mmap sparse;
          RETURN_IF_ERROR(internal::ReadCap(bytes, size, off, what, &sparse));
          const size_t areas_at = off + sizeof(sparse);
          if (sparse.nr_areas > (size - areas_at) / sizeof(vfio_region_sparse_mmap_area)) {
            return absl::InternalError(absl::StrCat(what, ": malformed capability chain: ",
                                                    sparse.nr_areas, " sparse areas do not fit"));
          }
          out.sparse_areas.emplace();
          for (uint32_t i = 0; i < sparse.nr_areas; ++i) {
            vfio_region_sparse_mmap_area a;
            std::memcpy(&a, bytes + areas_at + i * sizeof(a), sizeof(a));
            // An area must lie inside the region: it decides what gets mmapped.
            if (a.offset > out.size || a.size > out.size - a.offset) {
              return absl::InternalError(absl::StrCat(what, ": sparse area ", Hex(a.offset), "+",
                                                      Hex(a.size), " lies outside the ",
                                                      Hex(out.size), "-byte region"));
            }
            out.sparse_areas->push_back({a.offset, a.size});
          }
        } else if (id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
          out.msix_mappable = true;
        } else if (id == VFIO_REGION_INFO_CAP_TYPE) {
          vfio_region_info_cap_type t;
          RETURN_IF_ERROR(internal::ReadCap(bytes, size, off, what, &t));
          out.type = {t.type, t.subtype};
        }
        return absl::OkStatus();
      }));
  return out;
}

template <typename Describe>
absl::Status VfioDevice::Access(bool write, uint32_t index, uint64_t offset, void* buf, size_t len,
                                const Describe& what) const {
  if (index >= regions_.size()) {
    return absl::OutOfRangeError(
        absl::StrCat(what(), ": the device has ", regions_.size(), " regions"));
  }
  const RegionInfo& r = regions_[index];
  if (write ? !r.writable() : !r.readable()) [[unlikely]] {
    return absl::PermissionDeniedError(
        absl::StrCat(what(), write ? ": not writable" : ": not readable"));
  }
  if (offset > r.size || len > r.size - offset) [[unlikely]] {
    return absl::OutOfRangeError(
        absl::StrCat(what(), ": outside the ", Hex(r.size), "-byte region"));
  }
  const int64_t n = write ? sys_.Pwrite(fd_.get(), buf, len, r.offset + offset)
                          : sys_.Pread(fd_.get(), buf, len, r.offset + offset);
  if (n < 0) [[unlikely]] {
    return ErrnoStatus(static_cast<int>(-n), what());
  }
  if (static_cast<uint64_t>(n) != len) [[unlikely]] {
    return absl::DataLossError(absl::StrCat(what(), ": short transfer of ", n, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::ReadRegion(uint32_t index, uint64_t offset,
                                    absl::Span<uint8_t> out) const {
  return Access(false, index, offset, out.data(), out.size(), [&] {
    return absl::StrFormat("read %s region %u offset %#x size %#x", name_, index, offset,
                           out.size());
  });
}

absl::Status VfioDevice::WriteRegion(uint32_t index, uint64_t offset,
                                     absl::Span<const uint8_t> data) const {
  return Access(true, index, offset, const_cast<uint8_t*>(data.data()), data.size(), [&] {
    return absl::StrFormat("write %s region %u offset %#x size %#x", name_, index, offset,
                           data.size());
  });
}

absl::StatusOr<uint32_t> VfioDevice::ReadConfig(uint64_t offset, uint32_t size) const {
  auto what = [&] {
    return absl::StrFormat("read %s config offset %#x size %u", name_, offset, size);
  };
  if (!info_.is_pci())
    return absl::FailedPreconditionError(absl::StrCat(what(), ": not a PCI device"));
  if ((size != 1 && size != 2 && size != 4) || offset % size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what(), ": size must be 1, 2 or 4 and the offset naturally aligned"));
  }
  uint32_t value = 0;  // Little-endian host: the low `size` bytes.
  RETURN_IF_ERROR(Access(false, VFIO_PCI_CONFIG_REGION_INDEX, offset, &value, size, what));
  return value;
}

absl::Status VfioDevice::WriteConfig(uint64_t offset, uint32_t size, uint32_t value) const {
  auto what = [&] {
    return absl::StrFormat("write %s config offset %#x size %u value %#x", name_, offset, size,
                           value);
  };
  if (!info_.is_pci())
    return absl::FailedPreconditionError(absl::StrCat(what(), ": not a PCI device"));
  if ((size != 1 && size != 2 && size != 4) || offset % size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what(), ": size must be 1, 2 or 4 and the offset naturally aligned"));
  }
  if (size < 4 && (value >> (8 * size)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": value wider than the access"));
  }
  return Access(true, VFIO_PCI_CONFIG_REGION_INDEX, offset, &value, size, what);
}

absl::StatusOr<MappedRegion> VfioDevice::MapRegion(uint32_t index) const {
  ASSIGN_OR_RETURN(RegionInfo r, GetRegionInfo(index));
  const std::string what = absl::StrCat("mmap ", name_, " region ", index);
  if (!r.mmappable()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": the kernel does not allow mmap of this region (use ReadRegion)"));
  }
  const int prot = (r.readable() ? PROT_READ : 0) | (r.writable() ? PROT_WRITE : 0);
  MappedRegion mapped(&sys_, index);  // Unmaps what was mapped if a later area fails.
  for (const RegionInfo::Area& a : r.MmapAreas()) {
    if (a.offset % 4096 != 0 || a.size % 4096 != 0) {
      return absl::InternalError(
          absl::StrCat(what, ": area ", Hex(a.offset), "+", Hex(a.size), " is not page aligned"));
    }
    int err = 0;
    void* p = sys_.Mmap(a.size, prot, fd_.get(), r.offset + a.offset, &err);
    if (p == MAP_FAILED) {
      return ErrnoStatus(err, what, " area ", Hex(a.offset), "+", Hex(a.size));
    }
    mapped.areas_.push_back({a.offset, a.size, static_cast<uint8_t*>(p)});
  }
  return mapped;
}

absl::StatusOr<IrqInfo> VfioDevice::GetIrqInfo(uint32_t index) const {
  const std::string what = absl::StrCat(Name("VFIO_DEVICE_GET_IRQ_INFO"), " index=", index);
  if (index >= info_.num_irqs) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": the device has ", info_.num_irqs, " IRQ indexes"));
  }
  vfio_irq_info info{};
  info.argsz = sizeof(info);
  info.index = index;
  RETURN_IF_ERROR(
      VfioIoctl(sys_, fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, reinterpret_cast<uintptr_t>(&info), what)
          .status());
  return IrqInfo{index, info.flags, info.count};
}

absl::Status VfioDevice::SetIrqs(uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
                                 absl::Span<const int> eventfds, const std::string& what) const {
  ASSIGN_OR_RETURN(IrqInfo irq, GetIrqInfo(index));
  if (start > irq.count || count > irq.count - start) {
    return absl::OutOfRangeError(absl::StrCat(what, ": vectors [", start, ", ", start + count,
                                              ") exceed the ", irq.count, " the device has"));
  }
  if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) && !irq.eventfd()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": index takes no eventfds"));
  }
  if ((flags & (VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK)) && !irq.maskable()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": index is not maskable"));
  }
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + eventfds.size() * sizeof(int32_t));
  vfio_irq_set set{};
  set.argsz = static_cast<uint32_t>(buf.size());
  set.flags = flags;
  set.index = index;
  set.start = start;
  set.count = count;
  std::memcpy(buf.data(), &set, sizeof(set));
  for (size_t i = 0; i < eventfds.size(); ++i) {
    const int32_t fd = eventfds[i];
    std::memcpy(buf.data() + sizeof(set) + i * sizeof(fd), &fd, sizeof(fd));
  }
  return VfioIoctl(sys_, fd_.get(), VFIO_DEVICE_SET_IRQS, reinterpret_cast<uintptr_t>(buf.data()),
                   what)
      .status();
}

absl::Status VfioDevice::EnableIrqs(uint32_t index, uint32_t start,
                                    absl::Span<const int> eventfds) const {
  // At most 8 fds named: an MSI-X table has up to 2048, and the error ends up in logs.
  constexpr size_t kNamed = 8;
  const std::string what = absl::StrCat(
      Name("VFIO_DEVICE_SET_IRQS"), " index=", index, " start=", start, " eventfds=[",
      absl::StrJoin(eventfds.subspan(0, std::min(eventfds.size(), kNamed)), ","),
      eventfds.size() > kNamed ? absl::StrCat(",... ", eventfds.size(), " in all") : "", "]");
  if (eventfds.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no eventfds"));
  for (int fd : eventfds) {
    if (fd < -1) return absl::InvalidArgumentError(absl::StrCat(what, ": bad fd ", fd));
  }
  return SetIrqs(index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, start,
                 static_cast<uint32_t>(eventfds.size()), eventfds, what);
}

absl::Status VfioDevice::DisableIrqs(uint32_t index) const {
  return SetIrqs(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, {},
                 absl::StrCat(Name("VFIO_DEVICE_SET_IRQS (disable)"), " index=", index));
}

absl::Status VfioDevice::MaskIntx() const {
  return SetIrqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1,
                 {}, Name("VFIO_DEVICE_SET_IRQS (mask INTx)"));
}

absl::Status VfioDevice::UnmaskIntx() const {
  return SetIrqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1,
                 {}, Name("VFIO_DEVICE_SET_IRQS (unmask INTx)"));
}

absl::Status VfioDevice::SetIntxUnmaskEventfd(int eventfd) const {
  const std::string what =
      absl::StrCat(Name("VFIO_DEVICE_SET_IRQS (INTx unmask eventfd)"), " fd=", eventfd);
  if (eventfd < -1) return absl::InvalidArgumentError(absl::StrCat(what, ": bad fd"));
  const int fds[] = {eventfd};
  return SetIrqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0,
                 1, fds, what);
}

absl::Status VfioDevice::Reset() const {
  const std::string what = Name("VFIO_DEVICE_RESET");
  if (!info_.can_reset()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what,
        ": the kernel has no reset for this device alone (no FLR or PM reset, and it is "
        "not alone on a resettable bus); see HotReset"));
  }
  return VfioIoctl(sys_, fd_.get(), VFIO_DEVICE_RESET, 0, what).status();
}

absl::StatusOr<std::vector<PciDependentDevice>> VfioDevice::GetHotResetInfo() const {
  const std::string what = Name("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
  // The kernel answers ENOSPC with the count when the array is too small.
  uint32_t count = 4;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<uint8_t> buf(sizeof(vfio_pci_hot_reset_info) +
                             count * sizeof(vfio_pci_dependent_device));
    vfio_pci_hot_reset_info head{};
    head.argsz = static_cast<uint32_t>(buf.size());
    std::memcpy(buf.data(), &head, sizeof(head));
    const int ret = sys_.Ioctl(fd_.get(), VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
                               reinterpret_cast<uintptr_t>(buf.data()));
    std::memcpy(&head, buf.data(), sizeof(head));
    if (ret == -ENOSPC && head.count > count && head.count <= 256) {
      count = head.count;
      continue;
    }
    if (ret < 0) {
      return ErrnoStatus(-ret, what,
                         -ret == ENODEV ? " (the device cannot be reset through its bus)" : "");
    }
    if (head.count > count) {
      return absl::InternalError(absl::StrCat(what, ": ", head.count, " devices do not fit"));
    }
    std::vector<PciDependentDevice> out;
    for (uint32_t i = 0; i < head.count; ++i) {
      vfio_pci_dependent_device d;
      std::memcpy(&d, buf.data() + sizeof(head) + i * sizeof(d), sizeof(d));
      out.push_back({d.group_id, absl::StrFormat("%04x:%02x:%02x.%x", d.segment, d.bus,
                                                 d.devfn >> 3, d.devfn & 7)});
    }
    return out;
  }
  return absl::InternalError(absl::StrCat(what, ": the device count kept changing"));
}

absl::Status VfioDevice::HotReset(absl::Span<const VfioGroup* const> groups) const {
  const std::string what = Name("VFIO_DEVICE_PCI_HOT_RESET");
  ASSIGN_OR_RETURN(std::vector<PciDependentDevice> affected, GetHotResetInfo());
  std::set<uint32_t> have;
  std::vector<int32_t> fds;
  for (const VfioGroup* g : groups) {
    if (g == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, ": null group"));
    if (have.insert(static_cast<uint32_t>(g->id())).second) fds.push_back(g->fd());
  }
  std::vector<std::string> missing;
  for (const PciDependentDevice& d : affected) {
    if (!have.count(d.group_id))
      missing.push_back(absl::StrCat(d.bdf, " (group ", d.group_id, ")"));
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": a bus reset also resets ",
                                                      absl::StrJoin(missing, ", "),
                                                      "; pass the groups owning them"));
  }
  std::vector<uint8_t> buf(sizeof(vfio_pci_hot_reset) + fds.size() * sizeof(int32_t));
  vfio_pci_hot_reset reset{};
  reset.argsz = static_cast<uint32_t>(buf.size());
  reset.count = static_cast<uint32_t>(fds.size());
  std::memcpy(buf.data(), &reset, sizeof(reset));
  if (!fds.empty())
    std::memcpy(buf.data() + sizeof(reset), fds.data(), fds.size() * sizeof(int32_t));
  return VfioIoctl(sys_, fd_.get(), VFIO_DEVICE_PCI_HOT_RESET,
                   reinterpret_cast<uintptr_t>(buf.data()), what)
      .status();
}

}  // namespace vmmkit::vfio
