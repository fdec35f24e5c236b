#include "vfio/container.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio {
namespace {

constexpr uint64_t kPage = 4096;

std::string Range(Iova iova, uint64_t size) {
  return absl::StrCat("iova=", iova.ToString(), " size=", Hex(size));
}

// Adds what a user can do about the common kernel refusals to the ioctl's error.
absl::Status WithHint(const absl::Status& s) {
  const char* hint = nullptr;
  switch (s.code()) {
    case absl::StatusCode::kResourceExhausted:  // ENOMEM
      hint = " (pinning guest memory counts against RLIMIT_MEMLOCK: raise it, e.g. ulimit -l)";
      break;
    case absl::StatusCode::kAlreadyExists:  // EEXIST
      hint = " (the range overlaps an existing mapping)";
      break;
    case absl::StatusCode::kFailedPrecondition:  // EBUSY
      hint = " (the container is busy: is an IOMMU model set and a group attached?)";
      break;
    default:
      return s;
  }
  return absl::Status(s.code(), absl::StrCat(s.message(), hint));
}

}  // namespace

absl::StatusOr<std::unique_ptr<VfioContainer>> VfioContainer::Open(VfioSyscalls& sys,
                                                                   const std::string& path) {
  const int raw = sys.Open(path.c_str(), O_RDWR);
  if (raw < 0) return ErrnoStatus(-raw, "open ", path);
  ScopedFd fd(raw);
  ASSIGN_OR_RETURN(int version,
                   VfioIoctl(sys, fd.get(), VFIO_GET_API_VERSION, 0, "VFIO_GET_API_VERSION"));
  if (version != internal::kVfioApiVersion) {
    return absl::FailedPreconditionError(absl::StrCat("VFIO_GET_API_VERSION returned ", version,
                                                      "; vmmkit requires ",
                                                      internal::kVfioApiVersion));
  }
  return std::unique_ptr<VfioContainer>(new VfioContainer(sys, std::move(fd)));
}

absl::StatusOr<bool> VfioContainer::CheckExtension(uint32_t extension) const {
  ASSIGN_OR_RETURN(int r, VfioIoctl(sys_, fd_.get(), VFIO_CHECK_EXTENSION, extension,
                                    "VFIO_CHECK_EXTENSION ext=", extension));
  return r > 0;
}

absl::StatusOr<IommuType> VfioContainer::SetType1Iommu() {
  for (IommuType type : {IommuType::kType1v2, IommuType::kType1}) {
    const uint32_t t = static_cast<uint32_t>(type);
    ASSIGN_OR_RETURN(bool supported, CheckExtension(t));
    if (!supported) continue;
    RETURN_IF_ERROR(WithHint(
        VfioIoctl(sys_, fd_.get(), VFIO_SET_IOMMU, t, "VFIO_SET_IOMMU type=", t).status()));
    return type;
  }
  return absl::FailedPreconditionError(
      "VFIO_SET_IOMMU: the kernel offers neither Type1v2 nor Type1 (is vfio_iommu_type1 loaded?)");
}

absl::StatusOr<IommuInfo> VfioContainer::GetIommuInfo() const {
  // First with the fixed part only: the kernel answers with the argsz it needs for capabilities.
  vfio_iommu_type1_info probe{};
  probe.argsz = sizeof(probe);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_GET_INFO,
                            reinterpret_cast<uintptr_t>(&probe), "VFIO_IOMMU_GET_INFO")
                      .status());
  std::vector<uint64_t> buf((std::max<size_t>(probe.argsz, sizeof(probe)) + 7) / 8);
  auto* info = reinterpret_cast<vfio_iommu_type1_info*>(buf.data());
  info->argsz = static_cast<uint32_t>(buf.size() * 8);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_GET_INFO, reinterpret_cast<uintptr_t>(info),
                            "VFIO_IOMMU_GET_INFO argsz=", info->argsz)
                      .status());
  IommuInfo out;
  if (info->flags & VFIO_IOMMU_INFO_PGSIZES) out.page_sizes = info->iova_pgsizes;
  if (!(info->flags & VFIO_IOMMU_INFO_CAPS)) return out;
  // Walk the capability chain defensively: every header and payload must lie inside the buffer,
  // and offsets must increase (so a malformed chain cannot loop).
  const size_t size = buf.size() * 8;
  const auto* bytes = reinterpret_cast<const uint8_t*>(buf.data());
  auto bad = [](const std::string& why) {
    return absl::InternalError(
        absl::StrCat("VFIO_IOMMU_GET_INFO: malformed capability chain: ", why));
  };
  size_t last_offset = 0;
  for (size_t off = info->cap_offset; off != 0;) {
    if (off <= last_offset || off + sizeof(vfio_info_cap_header) > size) {
      return bad(absl::StrCat("capability at offset ", off));
    }
    vfio_info_cap_header hdr;
    std::memcpy(&hdr, bytes + off, sizeof(hdr));
    if (hdr.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      vfio_iommu_type1_info_cap_iova_range r;
      if (off + sizeof(r) > size) return bad("truncated IOVA range capability");
      std::memcpy(&r, bytes + off, sizeof(r));
      const size_t ranges_at = off + sizeof(r);
      if (r.nr_iovas > (size - ranges_at) / sizeof(vfio_iova_range)) {
        return bad(absl::StrCat(r.nr_iovas, " IOVA ranges do not fit"));
      }
      for (uint32_t i = 0; i < r.nr_iovas; ++i) {
        vfio_iova_range range;
        std::memcpy(&range, bytes + ranges_at + i * sizeof(range), sizeof(range));
        out.valid_iovas.push_back({Iova(range.start), Iova(range.end)});
      }
    } else if (hdr.id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      vfio_iommu_type1_info_dma_avail a;
      if (off + sizeof(a) > size) return bad("truncated DMA-available capability");
      std::memcpy(&a, bytes + off, sizeof(a));
      out.dma_mappings_available = a.avail;
    }
    last_offset = off;
    off = hdr.next;
  }
  return out;
}

absl::Status VfioContainer::MapDma(Iova iova, const GuestRegion& region, uint64_t offset,
                                   uint64_t size, bool writable) {
  const std::string what = absl::StrCat("VFIO_IOMMU_MAP_DMA ", Range(iova, size));
  if (size == 0 || !iova.IsAligned(kPage) || offset % kPage != 0 || size % kPage != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " offset=", Hex(offset), ": must be non-empty and 4 KiB aligned"));
  }
  if (!RangeLast(iova.raw(), size)) {
    return absl::OutOfRangeError(absl::StrCat(what, ": wraps past 2^64"));
  }
  if (offset > region.size() || size > region.size() - offset) {
    return absl::OutOfRangeError(absl::StrCat(what, " offset=", Hex(offset), ": outside the ",
                                              Hex(region.size()), "-byte region"));
  }
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof(map);
  map.flags = VFIO_DMA_MAP_FLAG_READ | (writable ? VFIO_DMA_MAP_FLAG_WRITE : 0u);
  map.vaddr = reinterpret_cast<uintptr_t>(region.host_address() + offset);
  map.iova = iova.raw();
  map.size = size;
  return WithHint(
      VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_MAP_DMA, reinterpret_cast<uintptr_t>(&map), what)
          .status());
}

absl::Status VfioContainer::UnmapDma(Iova iova, uint64_t size) {
  const std::string what = absl::StrCat("VFIO_IOMMU_UNMAP_DMA ", Range(iova, size));
  if (size == 0 || !iova.IsAligned(kPage) || size % kPage != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": must be non-empty and 4 KiB aligned"));
  }
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof(unmap);
  unmap.iova = iova.raw();
  unmap.size = size;
  RETURN_IF_ERROR(WithHint(
      VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_UNMAP_DMA, reinterpret_cast<uintptr_t>(&unmap), what)
          .status()));
  // The kernel reports how much it unmapped; nothing means nothing was mapped there.
  if (unmap.size == 0) return absl::NotFoundError(absl::StrCat(what, ": nothing is mapped there"));
  return absl::OkStatus();
}

}  // namespace vmmkit::vfio
