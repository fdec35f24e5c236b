#include "vfio/iommufd.h"

#include <fcntl.h>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "vfio/internal/dma_checks.h"
#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio {

using internal::CheckDmaArgs;
using internal::DmaRange;
using internal::WithDmaHint;

absl::StatusOr<std::shared_ptr<Iommufd>> Iommufd::Open(VfioSyscalls& sys, const std::string& path) {
  const int raw = sys.Open(path.c_str(), O_RDWR);
  if (raw < 0) {
    return ErrnoStatus(
        -raw, "open ", path,
        -raw == ENOENT ? " (the kernel has no iommufd: use the VFIO container)" : "");
  }
  return std::shared_ptr<Iommufd>(new Iommufd(sys, ScopedFd(raw)));
}

absl::StatusOr<uint32_t> Iommufd::AllocIoas() {
  internal::iommu_ioas_alloc alloc{};
  alloc.size = sizeof(alloc);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), internal::kIommuIoasAlloc,
                            reinterpret_cast<uintptr_t>(&alloc), "IOMMU_IOAS_ALLOC")
                      .status());
  return alloc.out_ioas_id;
}

absl::Status Iommufd::Destroy(uint32_t id) {
  internal::iommu_destroy destroy{};
  destroy.size = sizeof(destroy);
  destroy.id = id;
  return WithDmaHint(VfioIoctl(sys_, fd_.get(), internal::kIommuDestroy,
                               reinterpret_cast<uintptr_t>(&destroy), "IOMMU_DESTROY id=", id)
                         .status());
}

absl::StatusOr<std::vector<IovaRange>> Iommufd::IoasIovaRanges(uint32_t ioas_id,
                                                               uint64_t* alignment) const {
  // Ask with room for a few ranges; on EMSGSIZE the kernel says how many there are.
  std::vector<internal::iommu_iova_range> ranges(8);
  for (int attempt = 0; attempt < 4; ++attempt) {
    internal::iommu_ioas_iova_ranges q{};
    q.size = sizeof(q);
    q.ioas_id = ioas_id;
    q.num_iovas = static_cast<uint32_t>(ranges.size());
    q.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
    const int ret =
        sys_.Ioctl(fd_.get(), internal::kIommuIoasIovaRanges, reinterpret_cast<uintptr_t>(&q));
    if (ret == -EMSGSIZE && q.num_iovas > ranges.size() && q.num_iovas <= 4096) {
      ranges.resize(q.num_iovas);
      continue;
    }
    if (ret < 0) return ErrnoStatus(-ret, "IOMMU_IOAS_IOVA_RANGES ioas=", ioas_id);
    if (q.num_iovas > ranges.size()) {
      return absl::InternalError(absl::StrCat("IOMMU_IOAS_IOVA_RANGES ioas=", ioas_id,
                                              ": the kernel reported ", q.num_iovas,
                                              " ranges for a buffer of ", ranges.size()));
    }
    if (alignment != nullptr) *alignment = q.out_iova_alignment;
    std::vector<IovaRange> out;
    for (uint32_t i = 0; i < q.num_iovas; ++i) {
      out.push_back({Iova(ranges[i].start), Iova(ranges[i].last)});
    }
    return out;
  }
  return absl::InternalError(absl::StrCat("IOMMU_IOAS_IOVA_RANGES ioas=", ioas_id,
                                          ": the number of ranges kept changing"));
}

absl::Status Iommufd::IoasMap(uint32_t ioas_id, Iova iova, const GuestRegion& region,
                              uint64_t offset, uint64_t size, bool writable) {
  auto what = [&] {
    return absl::StrCat("IOMMU_IOAS_MAP ioas=", ioas_id, " ", DmaRange(iova, size));
  };
  RETURN_IF_ERROR(CheckDmaArgs(what, iova, &region, offset, size));
  internal::iommu_ioas_map map{};
  map.size = sizeof(map);
  map.flags = internal::kIommuIoasMapFixedIova | internal::kIommuIoasMapReadable |
              (writable ? internal::kIommuIoasMapWriteable : 0u);
  map.ioas_id = ioas_id;
  map.user_va = reinterpret_cast<uintptr_t>(region.host_address() + offset);
  map.length = size;
  map.iova = iova.raw();
  const int ret = sys_.Ioctl(fd_.get(), internal::kIommuIoasMap, reinterpret_cast<uintptr_t>(&map));
  if (ret < 0) [[unlikely]] {
    return WithDmaHint(ErrnoStatus(-ret, what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Iommufd::IoasUnmap(uint32_t ioas_id, Iova iova, uint64_t size) {
  auto what = [&] {
    return absl::StrCat("IOMMU_IOAS_UNMAP ioas=", ioas_id, " ", DmaRange(iova, size));
  };
  RETURN_IF_ERROR(CheckDmaArgs(what, iova, nullptr, 0, size));
  internal::iommu_ioas_unmap unmap{};
  unmap.size = sizeof(unmap);
  unmap.ioas_id = ioas_id;
  unmap.iova = iova.raw();
  unmap.length = size;
  const int ret =
      sys_.Ioctl(fd_.get(), internal::kIommuIoasUnmap, reinterpret_cast<uintptr_t>(&unmap));
  // iommufd says ENOENT where type1 reports zero bytes: both mean nothing was mapped there.
  if (ret == -ENOENT) return absl::NotFoundError(absl::StrCat(what(), ": nothing is mapped there"));
  if (ret < 0) return WithDmaHint(ErrnoStatus(-ret, what()));
  return unmap.length;
}

absl::StatusOr<std::unique_ptr<IommufdIoas>> IommufdIoas::Allocate(
    std::shared_ptr<Iommufd> iommufd) {
  if (iommufd == nullptr) return absl::InvalidArgumentError("IommufdIoas::Allocate: null iommufd");
  ASSIGN_OR_RETURN(uint32_t id, iommufd->AllocIoas());
  return std::unique_ptr<IommufdIoas>(new IommufdIoas(std::move(iommufd), id));
}

IommufdIoas::~IommufdIoas() {
  if (absl::Status s = iommufd_->Destroy(id_); !s.ok()) LogWarning(s.ToString());
}

std::string IommufdIoas::name() const { return absl::StrCat("iommufd IOAS ", id_); }

absl::StatusOr<IommuCapabilities> IommufdIoas::GetCapabilities() const {
  IommuCapabilities caps;
  uint64_t alignment = 0;
  ASSIGN_OR_RETURN(caps.valid_iovas, iommufd_->IoasIovaRanges(id_, &alignment));
  // iommufd reports an alignment, not a page-size bitmap: every multiple of it may be mapped.
  caps.page_sizes = alignment <= 1 ? 0x1000 : ~(alignment - 1);
  return caps;
}

absl::Status IommufdIoas::MapDma(Iova iova, const GuestRegion& region, uint64_t offset,
                                 uint64_t size, bool writable) {
  return iommufd_->IoasMap(id_, iova, region, offset, size, writable);
}

absl::Status IommufdIoas::UnmapDma(Iova iova, uint64_t size) {
  return iommufd_->IoasUnmap(id_, iova, size).status();
}

}  // namespace vmmkit::vfio
