#include "vfio/testing/fake_vfio_kernel.h"

#include <fcntl.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstring>
#include <iterator>

namespace vmmkit::vfio::testing {

int FakeVfioKernel::Open(const char* path, int flags) {
  opened.emplace_back(path);
  if (open_errno != 0) return -open_errno;
  const int fd = ::open("/dev/null", (flags & O_ACCMODE) | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int FakeVfioKernel::Ioctl(int, unsigned long request, uintptr_t arg) {
  calls.push_back(request);
  if (auto it = fail_with.find(request); it != fail_with.end()) return -it->second;
  switch (request) {
    case VFIO_GET_API_VERSION:
      return api_version;
    case VFIO_CHECK_EXTENSION:
      return extensions.count(static_cast<uint32_t>(arg)) ? 1 : 0;
    case VFIO_SET_IOMMU:
      if (iommu_type) return -EBUSY;
      if (!extensions.count(static_cast<uint32_t>(arg))) return -EINVAL;
      iommu_type = static_cast<uint32_t>(arg);
      return 0;
    case VFIO_IOMMU_GET_INFO:
      return GetInfo(arg);
    case VFIO_IOMMU_MAP_DMA:
      return Map(arg);
    case VFIO_IOMMU_UNMAP_DMA:
      return Unmap(arg);
    default:
      return -ENOTTY;
  }
}

int FakeVfioKernel::GetInfo(uintptr_t arg) {
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

int FakeVfioKernel::Map(uintptr_t arg) {
  const auto* m = reinterpret_cast<const vfio_iommu_type1_dma_map*>(arg);
  if (!iommu_type) return -EINVAL;
  const uint64_t last = m->iova + m->size - 1;
  auto next = mappings.upper_bound(last);
  if (next != mappings.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size - 1 >= m->iova) return -EEXIST;
  }
  mappings[m->iova] = Mapping{m->size, m->vaddr, m->flags};
  return 0;
}

int FakeVfioKernel::Unmap(uintptr_t arg) {
  auto* u = reinterpret_cast<vfio_iommu_type1_dma_unmap*>(arg);
  const uint64_t last = u->iova + u->size - 1;
  uint64_t removed = 0;
  for (auto it = mappings.begin(); it != mappings.end();) {
    const uint64_t m_last = it->first + it->second.size - 1;
    const bool overlaps = it->first <= last && m_last >= u->iova;
    if (overlaps && (it->first < u->iova || m_last > last)) return -EINVAL;  // Would bisect.
    if (overlaps) {
      removed += it->second.size;
      it = mappings.erase(it);
    } else {
      ++it;
    }
  }
  u->size = removed;
  return 0;
}

}  // namespace vmmkit::vfio::testing
