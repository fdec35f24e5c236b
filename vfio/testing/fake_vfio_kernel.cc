#include "vfio/testing/fake_vfio_kernel.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio::testing {
namespace {

namespace abi = ::vmmkit::vfio::internal;

constexpr int kRegionShift = 40;  // Like vfio-pci: a region's offset in the fd is index << 40.

template <typename T>
T Load(uintptr_t arg) {
  T v;
  std::memcpy(&v, reinterpret_cast<const void*>(arg), sizeof(T));
  return v;
}
template <typename T>
void Store(uintptr_t arg, const T& v) {
  std::memcpy(reinterpret_cast<void*>(arg), &v, sizeof(T));
}

bool Overlaps(const std::map<uint64_t, FakeVfioKernel::Mapping>& m, uint64_t iova, uint64_t last) {
  auto next = m.upper_bound(last);
  if (next == m.begin()) return false;
  auto prev = std::prev(next);
  return prev->first + prev->second.size - 1 >= iova;
}

}  // namespace

FakeVfioKernel::Device FakeVfioKernel::PciDevice(int group) {
  Device d;
  d.group = group;
  d.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
  d.regions.resize(VFIO_PCI_NUM_REGIONS);
  const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  d.regions[VFIO_PCI_BAR0_REGION_INDEX] = {
      false, rw | VFIO_REGION_INFO_FLAG_MMAP, 1 << 20, {}, false, {}};
  d.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {false, rw, 256, {}, false, {}};
  d.regions[VFIO_PCI_VGA_REGION_INDEX].absent = true;
  d.irqs.resize(VFIO_PCI_NUM_IRQS);
  d.irqs[VFIO_PCI_INTX_IRQ_INDEX] = {
      VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED, 1};
  d.irqs[VFIO_PCI_MSI_IRQ_INDEX] = {VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1};
  d.irqs[VFIO_PCI_MSIX_IRQ_INDEX] = {VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 8};
  return d;
}

int FakeVfioKernel::NewFd(int flags, FdInfo info) {
  const int fd = ::open("/dev/null", (flags & O_ACCMODE) | O_CLOEXEC);
  if (fd < 0) return -errno;
  fds_[fd] = std::move(info);
  return fd;
}

bool FakeVfioKernel::FdOpen(int fd) const {
  // A closed fd's number may be reused by anything; ours are all /dev/null.
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
         minor(st.st_rdev) == 3;
}

void FakeVfioKernel::ForgetClosedFds() {
  for (auto it = fds_.begin(); it != fds_.end();) {
    if (FdOpen(it->first)) {
      ++it;
      continue;
    }
    // Closing a device releases what the kernel ties to it.
    if (it->second.kind == Kind::kCdev) {
      Device& d = devices[it->second.name];
      if (d.attached_ioas) --ioases[*d.attached_ioas].attached_devices;
      d.attached_ioas.reset();
      d.bound_iommufd.reset();
    }
    if (it->second.kind == Kind::kGroup) groups[it->second.group].container_fd.reset();
    it = fds_.erase(it);
  }
}

std::map<std::string, int> FakeVfioKernel::OpenFds() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  ForgetClosedFds();
  std::map<std::string, int> out;
  static const char* kNames[] = {"container", "group", "device", "iommufd", "cdev"};
  for (const auto& [fd, info] : fds_) ++out[kNames[static_cast<int>(info.kind)]];
  return out;
}

int FakeVfioKernel::Open(const char* path, int flags) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  opened.emplace_back(path);
  if (open_errno != 0) return -open_errno;
  ForgetClosedFds();
  const std::string p(path);
  if (p == "/dev/vfio/vfio") {
    const int fd = NewFd(flags, {Kind::kContainer, -1, ""});
    if (fd >= 0) {
      containers_[fd] = Container();
      last_container_fd_ = fd;
    }
    return fd;
  }
  if (p == "/dev/iommu") return has_iommufd ? NewFd(flags, {Kind::kIommufd, -1, ""}) : -ENOENT;
  const std::string cdev_prefix = "/dev/vfio/devices/";
  if (p.rfind(cdev_prefix, 0) == 0) {
    const std::string name = p.substr(cdev_prefix.size());
    if (!devices.count(name)) return -ENOENT;
    return NewFd(flags, {Kind::kCdev, -1, name});
  }
  int group = -1;
  if (std::sscanf(path, "/dev/vfio/%d", &group) == 1 && groups.count(group)) {
    for (const auto& [fd, info] : fds_) {
      if (info.kind == Kind::kGroup && info.group == group) return -EBUSY;  // One opener.
    }
    return NewFd(flags, {Kind::kGroup, group, ""});
  }
  return -ENOENT;
}

int FakeVfioKernel::Ioctl(int fd, unsigned long request, uintptr_t arg) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  calls.push_back(request);
  if (auto it = fail_with.find(request); it != fail_with.end()) return -it->second;
  if (auto it = fail_after.find(request); it != fail_after.end()) {
    if (it->second.first-- == 0) {
      const int err = it->second.second;
      fail_after.erase(it);
      return -err;
    }
  }
  auto it = fds_.find(fd);
  if (it == fds_.end()) return -EBADF;
  const FdInfo info = it->second;
  switch (info.kind) {
    case Kind::kContainer:
      return ContainerIoctl(fd, request, arg);
    case Kind::kGroup:
      return GroupIoctl(info, request, arg);
    case Kind::kDevice:
    case Kind::kCdev:
      return DeviceIoctl(info, request, arg);
    case Kind::kIommufd:
      return IommufdIoctl(fd, request, arg);
  }
  return -ENOTTY;
}

// --- Container ----------------------------------------------------------------------------------

int FakeVfioKernel::ContainerIoctl(int fd, unsigned long request, uintptr_t arg) {
  Container& c = containers_[fd];
  const bool spapr = c.iommu_type == VFIO_SPAPR_TCE_v2_IOMMU;
  switch (request) {
    case VFIO_GET_API_VERSION:
      return api_version;
    case VFIO_CHECK_EXTENSION:
      return extensions.count(static_cast<uint32_t>(arg)) ? 1 : 0;
    case VFIO_SET_IOMMU:
      if (c.iommu_type) return -EBUSY;
      if (!extensions.count(static_cast<uint32_t>(arg))) return -EINVAL;
      c.iommu_type = static_cast<uint32_t>(arg);
      if (arg == VFIO_SPAPR_TCE_v2_IOMMU) c.windows[spapr_dma32_start] = spapr_dma32_size;
      return 0;
    case VFIO_IOMMU_GET_INFO:  // == VFIO_IOMMU_SPAPR_TCE_GET_INFO.
      if (!c.iommu_type) return -EINVAL;
      return spapr ? SpaprInfo(arg) : Type1Info(arg);
    case VFIO_IOMMU_ENABLE:
      ++c.enable_calls;
      return 0;
    case VFIO_IOMMU_MAP_DMA: {
      const auto m = Load<vfio_iommu_type1_dma_map>(arg);
      if (!c.iommu_type) return -EINVAL;
      if (spapr) {
        auto reg = c.registered.upper_bound(m.vaddr);
        if (reg == c.registered.begin() ||
            std::prev(reg)->first + std::prev(reg)->second < m.vaddr + m.size) {
          return -EPERM;  // Not pre-registered.
        }
      }
      return MapInto(c.mappings, m.iova, m.size, m.vaddr, m.flags);
    }
    case VFIO_IOMMU_UNMAP_DMA: {
      auto u = Load<vfio_iommu_type1_dma_unmap>(arg);
      const uint64_t last = u.iova + u.size - 1;
      uint64_t removed = 0;
      for (auto m = c.mappings.begin(); m != c.mappings.end();) {
        const uint64_t m_last = m->first + m->second.size - 1;
        const bool overlaps = m->first <= last && m_last >= u.iova;
        if (overlaps && (m->first < u.iova || m_last > last)) return -EINVAL;  // Would bisect.
        if (overlaps) {
          removed += m->second.size;
          m = c.mappings.erase(m);
        } else {
          ++m;
        }
      }
      u.size = removed;
      Store(arg, u);
      return 0;
    }
    case VFIO_IOMMU_SPAPR_REGISTER_MEMORY: {
      if (!spapr) return -ENOTTY;
      const auto r = Load<vfio_iommu_spapr_register_memory>(arg);
      for (auto [vaddr, size] : c.registered) {
        if (vaddr < r.vaddr + r.size && r.vaddr < vaddr + size) return -EBUSY;
      }
      c.registered[r.vaddr] = r.size;
      return 0;
    }
    case VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: {
      if (!spapr) return -ENOTTY;
      const auto r = Load<vfio_iommu_spapr_register_memory>(arg);
      auto reg = c.registered.find(r.vaddr);
      if (reg == c.registered.end() || reg->second != r.size) return -ENOENT;
      for (const auto& [iova, m] : c.mappings) {
        if (m.vaddr < r.vaddr + r.size && r.vaddr < m.vaddr + m.size) return -EBUSY;  // Mapped.
      }
      c.registered.erase(reg);
      return 0;
    }
    case VFIO_IOMMU_SPAPR_TCE_CREATE: {
      if (!spapr) return -ENOTTY;
      auto cr = Load<vfio_iommu_spapr_tce_create>(arg);
      if (c.windows.size() >= spapr_max_windows) return -ENOSPC;
      cr.start_addr = 1ull << 59;  // Where POWER places the 64-bit window.
      if (c.windows.count(cr.start_addr)) return -EBUSY;
      c.windows[cr.start_addr] = cr.window_size;
      Store(arg, cr);
      return 0;
    }
    case VFIO_IOMMU_SPAPR_TCE_REMOVE: {
      if (!spapr) return -ENOTTY;
      const auto r = Load<vfio_iommu_spapr_tce_remove>(arg);
      return c.windows.erase(r.start_addr) ? 0 : -EINVAL;
    }
    default:
      return -ENOTTY;
  }
}

int FakeVfioKernel::MapInto(std::map<uint64_t, Mapping>& mappings, uint64_t iova, uint64_t size,
                            uint64_t vaddr, uint32_t flags) {
  if (size == 0) return -EINVAL;
  if (Overlaps(mappings, iova, iova + size - 1)) return -EEXIST;
  mappings[iova] = Mapping{size, vaddr, flags};
  return 0;
}

int FakeVfioKernel::Type1Info(uintptr_t arg) {
  auto* info = reinterpret_cast<vfio_iommu_type1_info*>(arg);
  if (info->argsz < sizeof(*info)) return -EINVAL;
  std::vector<uint8_t> caps;
  uint32_t cap_offset = sizeof(*info);
  if (raw_caps) {
    caps = *raw_caps;
    cap_offset = raw_cap_offset.value_or(sizeof(*info));
  } else {
    // Like the kernel: IOVA ranges, then DMA available, chained by absolute offsets.
    const uint32_t ranges_at = sizeof(*info);
    const auto ranges_len = static_cast<uint32_t>(sizeof(vfio_iommu_type1_info_cap_iova_range) +
                                                  iova_ranges.size() * sizeof(vfio_iova_range));
    vfio_iommu_type1_info_cap_iova_range r{};
    r.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
    r.header.version = 1;
    r.header.next = dma_avail ? ranges_at + ranges_len : 0;
    r.nr_iovas = static_cast<uint32_t>(iova_ranges.size());
    caps.resize(sizeof(r));
    std::memcpy(caps.data(), &r, sizeof(r));
    for (auto [start, end] : iova_ranges) {
      vfio_iova_range range{.start = start, .end = end};
      const auto* p = reinterpret_cast<const uint8_t*>(&range);
      caps.insert(caps.end(), p, p + sizeof(range));
    }
    if (dma_avail) {
      vfio_iommu_type1_info_dma_avail a{};
      a.header.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;
      a.header.version = 1;
      a.avail = *dma_avail;
      const auto* p = reinterpret_cast<const uint8_t*>(&a);
      caps.insert(caps.end(), p, p + sizeof(a));
    }
  }
  info->flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
  info->iova_pgsizes = page_sizes;
  const uint32_t needed = static_cast<uint32_t>(sizeof(*info) + caps.size());
  if (info->argsz < needed) {
    info->argsz = needed;
    info->cap_offset = 0;
    return 0;
  }
  std::memcpy(reinterpret_cast<uint8_t*>(info) + sizeof(*info), caps.data(), caps.size());
  info->cap_offset = cap_offset;
  return 0;
}

int FakeVfioKernel::SpaprInfo(uintptr_t arg) {
  auto info = Load<vfio_iommu_spapr_tce_info>(arg);
  if (info.argsz < sizeof(info)) return -EINVAL;
  info.flags = VFIO_IOMMU_SPAPR_INFO_DDW;
  info.dma32_window_start = spapr_dma32_start;
  info.dma32_window_size = spapr_dma32_size;
  info.ddw.pgsizes = spapr_ddw_page_sizes;
  info.ddw.max_dynamic_windows_supported = spapr_max_windows;
  info.ddw.levels = 5;
  Store(arg, info);
  return 0;
}

// --- Group --------------------------------------------------------------------------------------

int FakeVfioKernel::GroupIoctl(const FdInfo& info, unsigned long request, uintptr_t arg) {
  Group& g = groups[info.group];
  switch (request) {
    case VFIO_GROUP_GET_STATUS: {
      auto st = Load<vfio_group_status>(arg);
      st.flags = (g.viable ? VFIO_GROUP_FLAGS_VIABLE : 0u) |
                 (g.container_fd ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0u);
      Store(arg, st);
      return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
      const int cfd = Load<int>(arg);
      if (!g.viable) return -EPERM;
      if (g.container_fd) return -EINVAL;
      auto c = fds_.find(cfd);
      if (c == fds_.end() || c->second.kind != Kind::kContainer) return -EBADF;
      g.container_fd = cfd;
      return 0;
    }
    case VFIO_GROUP_UNSET_CONTAINER:
      if (!g.container_fd) return -EINVAL;
      ForgetClosedFds();
      for (const auto& [fd, other] : fds_) {
        if (other.kind == Kind::kDevice && devices[other.name].group == info.group) return -EBUSY;
      }
      g.container_fd.reset();
      return 0;
    case VFIO_GROUP_GET_DEVICE_FD: {
      const std::string name(reinterpret_cast<const char*>(arg));
      auto d = devices.find(name);
      if (d == devices.end() || d->second.group != info.group) return -ENODEV;
      if (!g.container_fd || !containers_[*g.container_fd].iommu_type) return -EINVAL;
      return NewFd(O_RDWR, {Kind::kDevice, info.group, name});
    }
    default:
      return -ENOTTY;
  }
}

// --- Device -------------------------------------------------------------------------------------

int FakeVfioKernel::DeviceIoctl(const FdInfo& info, unsigned long request, uintptr_t arg) {
  Device& d = devices[info.name];
  if (info.kind == Kind::kCdev && request != abi::kVfioDeviceBindIommufd && !d.bound_iommufd) {
    return -EINVAL;  // A cdev does nothing before it is bound.
  }
  switch (request) {
    case VFIO_DEVICE_GET_INFO: {
      auto di = Load<vfio_device_info>(arg);
      di.flags = d.flags;
      di.num_regions = static_cast<uint32_t>(d.regions.size());
      di.num_irqs = static_cast<uint32_t>(d.irqs.size());
      Store(arg, di);
      return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO:
      return RegionInfo(d, arg);
    case VFIO_DEVICE_GET_IRQ_INFO: {
      auto ii = Load<vfio_irq_info>(arg);
      if (ii.index >= d.irqs.size()) return -EINVAL;
      ii.flags = d.irqs[ii.index].flags;
      ii.count = d.irqs[ii.index].count;
      Store(arg, ii);
      return 0;
    }
    case VFIO_DEVICE_SET_IRQS: {
      const auto set = Load<vfio_irq_set>(arg);
      if (set.index >= d.irqs.size()) return -EINVAL;
      IrqSet rec{set.flags, set.index, set.start, set.count, {}};
      if (set.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
        if (set.argsz < sizeof(set) + set.count * sizeof(int32_t)) return -EINVAL;
        rec.fds.resize(set.count);
        std::memcpy(rec.fds.data(), reinterpret_cast<const uint8_t*>(arg) + sizeof(set),
                    set.count * sizeof(int32_t));
      }
      d.irq_sets.push_back(std::move(rec));
      return 0;
    }
    case VFIO_DEVICE_RESET:
      if (!(d.flags & VFIO_DEVICE_FLAGS_RESET)) return -EINVAL;
      ++d.resets;
      return 0;
    case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: {
      auto head = Load<vfio_pci_hot_reset_info>(arg);
      if (d.hot_reset_deps.empty()) return -ENODEV;
      const uint32_t n = static_cast<uint32_t>(d.hot_reset_deps.size());
      const uint32_t needed = sizeof(head) + n * sizeof(vfio_pci_dependent_device);
      head.count = n;
      if (head.argsz < needed) {
        Store(arg, head);
        return -ENOSPC;
      }
      Store(arg, head);
      for (uint32_t i = 0; i < n; ++i) {
        unsigned seg = 0, bus = 0, dev = 0, fn = 0;
        std::sscanf(d.hot_reset_deps[i].second.c_str(), "%x:%x:%x.%x", &seg, &bus, &dev, &fn);
        vfio_pci_dependent_device dd{};
        dd.group_id = d.hot_reset_deps[i].first;
        dd.segment = static_cast<uint16_t>(seg);
        dd.bus = static_cast<uint8_t>(bus);
        dd.devfn = static_cast<uint8_t>((dev << 3) | fn);
        std::memcpy(reinterpret_cast<uint8_t*>(arg) + sizeof(head) + i * sizeof(dd), &dd,
                    sizeof(dd));
      }
      return 0;
    }
    case VFIO_DEVICE_PCI_HOT_RESET: {
      const auto head = Load<vfio_pci_hot_reset>(arg);
      d.hot_reset_group_fds.resize(head.count);
      std::memcpy(d.hot_reset_group_fds.data(),
                  reinterpret_cast<const uint8_t*>(arg) + sizeof(head),
                  head.count * sizeof(int32_t));
      ++d.hot_resets;
      return 0;
    }
    case abi::kVfioDeviceBindIommufd: {
      if (info.kind != Kind::kCdev) return -ENOTTY;
      auto bind = Load<abi::vfio_device_bind_iommufd>(arg);
      auto f = fds_.find(bind.iommufd);
      if (f == fds_.end() || f->second.kind != Kind::kIommufd) return -EBADF;
      if (d.bound_iommufd) return -EINVAL;
      d.bound_iommufd = bind.iommufd;
      bind.out_devid = next_devid_++;
      Store(arg, bind);
      return 0;
    }
    case abi::kVfioDeviceAttachIommufdPt: {
      auto attach = Load<abi::vfio_device_attach_iommufd_pt>(arg);
      auto ioas = ioases.find(attach.pt_id);
      if (ioas == ioases.end()) return -ENOENT;
      if (d.attached_ioas) return -EBUSY;
      d.attached_ioas = attach.pt_id;
      ++ioas->second.attached_devices;
      return 0;
    }
    case abi::kVfioDeviceDetachIommufdPt:
      if (!d.attached_ioas) return -EINVAL;
      --ioases[*d.attached_ioas].attached_devices;
      d.attached_ioas.reset();
      return 0;
    default:
      return -ENOTTY;
  }
}

int FakeVfioKernel::RegionInfo(const Device& d, uintptr_t arg) {
  auto* ri = reinterpret_cast<vfio_region_info*>(arg);
  if (ri->argsz < sizeof(*ri) || ri->index >= d.regions.size()) return -EINVAL;
  const Region& r = d.regions[ri->index];
  if (r.absent) return -EINVAL;
  std::vector<uint8_t> caps;
  auto append = [&caps](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    caps.insert(caps.end(), b, b + n);
  };
  std::vector<size_t> headers;  // Offsets in `caps` of each header, to chain them afterwards.
  if (r.sparse) {
    headers.push_back(caps.size());
    vfio_region_info_cap_sparse_mmap s{};
    s.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
    s.header.version = 1;
    s.nr_areas = static_cast<uint32_t>(r.sparse->size());
    append(&s, sizeof(s));
    for (auto [off, size] : *r.sparse) {
      vfio_region_sparse_mmap_area a{off, size};
      append(&a, sizeof(a));
    }
  }
  if (r.msix_mappable) {
    headers.push_back(caps.size());
    vfio_info_cap_header h{VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, 0};
    append(&h, sizeof(h));
  }
  for (size_t i = 0; i + 1 < headers.size(); ++i) {
    const auto next = static_cast<uint32_t>(sizeof(*ri) + headers[i + 1]);
    std::memcpy(caps.data() + headers[i] + offsetof(vfio_info_cap_header, next), &next,
                sizeof(next));
  }
  ri->flags = r.flags | (caps.empty() ? 0u : VFIO_REGION_INFO_FLAG_CAPS);
  ri->size = r.size;
  ri->offset = uint64_t{ri->index} << kRegionShift;
  ri->cap_offset = 0;
  const auto needed = static_cast<uint32_t>(sizeof(*ri) + caps.size());
  if (ri->argsz < needed) {
    ri->argsz = needed;
    return 0;
  }
  if (!caps.empty()) {
    std::memcpy(reinterpret_cast<uint8_t*>(ri) + sizeof(*ri), caps.data(), caps.size());
    ri->cap_offset = sizeof(*ri);
  }
  return 0;
}

FakeVfioKernel::Region* FakeVfioKernel::RegionAt(int fd, uint64_t offset, size_t len,
                                                 uint64_t* within) {
  auto it = fds_.find(fd);
  if (it == fds_.end() || (it->second.kind != Kind::kDevice && it->second.kind != Kind::kCdev)) {
    return nullptr;
  }
  Device& d = devices[it->second.name];
  const uint64_t index = offset >> kRegionShift;
  if (index >= d.regions.size()) return nullptr;
  Region& r = d.regions[index];
  *within = offset & ((uint64_t{1} << kRegionShift) - 1);
  if (*within > r.size || len > r.size - *within) return nullptr;
  r.data.resize(r.size);
  return &r;
}

int64_t FakeVfioKernel::Pread(int fd, void* buf, size_t len, uint64_t offset) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  uint64_t within = 0;
  Region* r = RegionAt(fd, offset, len, &within);
  if (r == nullptr || !(r->flags & VFIO_REGION_INFO_FLAG_READ)) return -EINVAL;
  std::memcpy(buf, r->data.data() + within, len);
  return static_cast<int64_t>(len);
}

int64_t FakeVfioKernel::Pwrite(int fd, const void* buf, size_t len, uint64_t offset) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  uint64_t within = 0;
  Region* r = RegionAt(fd, offset, len, &within);
  if (r == nullptr || !(r->flags & VFIO_REGION_INFO_FLAG_WRITE)) return -EINVAL;
  std::memcpy(r->data.data() + within, buf, len);
  return static_cast<int64_t>(len);
}

void* FakeVfioKernel::Mmap(size_t len, int prot, int fd, uint64_t offset, int* err) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  uint64_t within = 0;
  Region* r = RegionAt(fd, offset, len, &within);
  if (r == nullptr || !(r->flags & VFIO_REGION_INFO_FLAG_MMAP)) {
    *err = EINVAL;
    return MAP_FAILED;
  }
  // Private anonymous memory holding a copy of the region's contents: enough to check what is
  // mapped where (writes through the mapping are not reflected back into `data`).
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = errno;
    return p;
  }
  std::memcpy(p, r->data.data() + within, len);
  ::mprotect(p, len, prot);
  mmaps.emplace_back(p, len);
  return p;
}

void FakeVfioKernel::Munmap(void* addr, size_t len) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = std::find(mmaps.begin(), mmaps.end(), std::make_pair(addr, len));
  if (it != mmaps.end()) mmaps.erase(it);
  ::munmap(addr, len);
}

// --- iommufd ------------------------------------------------------------------------------------

int FakeVfioKernel::IommufdIoctl(int, unsigned long request, uintptr_t arg) {
  switch (request) {
    case abi::kIommuIoasAlloc: {
      auto a = Load<abi::iommu_ioas_alloc>(arg);
      if (a.size < sizeof(a) || a.flags != 0) return -EINVAL;
      a.out_ioas_id = next_ioas_++;
      ioases[a.out_ioas_id] = Ioas();
      Store(arg, a);
      return 0;
    }
    case abi::kIommuDestroy: {
      const auto d = Load<abi::iommu_destroy>(arg);
      ForgetClosedFds();
      auto it = ioases.find(d.id);
      if (it == ioases.end()) return -ENOENT;
      if (it->second.attached_devices > 0) return -EBUSY;
      ioases.erase(it);
      return 0;
    }
    case abi::kIommuIoasIovaRanges: {
      auto q = Load<abi::iommu_ioas_iova_ranges>(arg);
      if (!ioases.count(q.ioas_id)) return -ENOENT;
      const auto n = static_cast<uint32_t>(ioas_ranges.size());
      const uint32_t room = q.num_iovas;
      q.num_iovas = n;
      q.out_iova_alignment = 4096;
      Store(arg, q);
      if (room < n) return -EMSGSIZE;
      for (uint32_t i = 0; i < n; ++i) {
        abi::iommu_iova_range r{ioas_ranges[i].first, ioas_ranges[i].second};
        std::memcpy(reinterpret_cast<uint8_t*>(q.allowed_iovas) + i * sizeof(r), &r, sizeof(r));
      }
      return 0;
    }
    case abi::kIommuIoasMap: {
      const auto m = Load<abi::iommu_ioas_map>(arg);
      auto it = ioases.find(m.ioas_id);
      if (it == ioases.end()) return -ENOENT;
      if (!(m.flags & abi::kIommuIoasMapFixedIova)) return -EOPNOTSUPP;  // vfio/ never asks.
      bool inside = false;
      for (auto [start, last] : ioas_ranges) {
        inside |= m.iova >= start && m.iova + m.length - 1 <= last;
      }
      if (!inside) return -EINVAL;
      return MapInto(it->second.mappings, m.iova, m.length, m.user_va, m.flags);
    }
    case abi::kIommuIoasUnmap: {
      auto u = Load<abi::iommu_ioas_unmap>(arg);
      auto it = ioases.find(u.ioas_id);
      if (it == ioases.end()) return -ENOENT;
      const uint64_t last = u.iova + u.length - 1;
      uint64_t removed = 0;
      auto& maps = it->second.mappings;
      for (auto m = maps.begin(); m != maps.end();) {
        const uint64_t m_last = m->first + m->second.size - 1;
        const bool overlaps = m->first <= last && m_last >= u.iova;
        if (overlaps && (m->first < u.iova || m_last > last)) return -ENOENT;  // No splitting.
        if (overlaps) {
          removed += m->second.size;
          m = maps.erase(m);
        } else {
          ++m;
        }
      }
      if (removed == 0) return -ENOENT;
      u.length = removed;
      Store(arg, u);
      return 0;
    }
    default:
      return -ENOTTY;
  }
}

}  // namespace vmmkit::vfio::testing
