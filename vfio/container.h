// File: vfio/container.h
// -----------------------------------------------------------------------------
// VfioContainer owns a legacy VFIO container fd (/dev/vfio/vfio): the IOMMU context that groups
// attach to and that DMA mappings are made in. This is the type1 (x86 and most platforms) backend;
// sPAPR TCE v2 and iommufd come with the backend-neutral interface (issue 5).
//
// The kernel's order matters: open the container, attach a group (VfioGroup::SetContainer), then
// choose the IOMMU model (SetType1Iommu), then map DMA.
//
//   ASSIGN_OR_RETURN(auto container, VfioContainer::Open());
//   ... group->SetContainer(*container) ...
//   ASSIGN_OR_RETURN(IommuType type, container->SetType1Iommu());
//   RETURN_IF_ERROR(container->MapDma(Iova(0x100000), *ram, /*offset=*/0, ram->size(), true));
//
// Thread-safety: the kernel serializes the ioctls; the object holds no mutable state.

#ifndef VMMKIT_VFIO_CONTAINER_H_
#define VMMKIT_VFIO_CONTAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "memory/address.h"
#include "memory/guest_region.h"
#include "vfio/syscalls.h"

namespace vmmkit::vfio {

enum class IommuType : uint32_t {
  kType1 = 1,       // VFIO_TYPE1_IOMMU
  kType1v2 = 3,     // VFIO_TYPE1v2_IOMMU: unmaps may split mappings; preferred.
  kSpaprTceV2 = 7,  // VFIO_SPAPR_TCE_v2_IOMMU
};

struct IovaRange {
  Iova start;
  Iova last;  // Inclusive.
};

// VFIO_IOMMU_GET_INFO, as data.
struct IommuInfo {
  uint64_t page_sizes = 0;             // Bitmap of supported IOMMU page sizes.
  std::vector<IovaRange> valid_iovas;  // Empty: the kernel did not report ranges.
  std::optional<uint32_t> dma_mappings_available;
};

class VfioContainer {
 public:
  // Opens `path` and checks VFIO_GET_API_VERSION (0).
  static absl::StatusOr<std::unique_ptr<VfioContainer>> Open(
      VfioSyscalls& sys = RealVfioSyscalls(), const std::string& path = "/dev/vfio/vfio");

  int fd() const { return fd_.get(); }

  // VFIO_CHECK_EXTENSION.
  absl::StatusOr<bool> CheckExtension(uint32_t extension) const;
  // VFIO_SET_IOMMU with Type1v2 if the kernel has it, else Type1. A group must be attached first.
  absl::StatusOr<IommuType> SetType1Iommu();
  // VFIO_IOMMU_GET_INFO with its capability chain (valid IOVA ranges, DMA mappings available).
  absl::StatusOr<IommuInfo> GetIommuInfo() const;

  // VFIO_IOMMU_MAP_DMA: makes [offset, offset + size) of `region` visible to devices at `iova`.
  // The caller keeps `region` alive until the matching UnmapDma. iova, offset and size must be
  // 4 KiB aligned and inside the region (INVALID_ARGUMENT / OUT_OF_RANGE before any ioctl).
  absl::Status MapDma(Iova iova, const GuestRegion& region, uint64_t offset, uint64_t size,
                      bool writable);
  // VFIO_IOMMU_UNMAP_DMA of [iova, iova + size). NOT_FOUND if nothing was mapped there.
  absl::Status UnmapDma(Iova iova, uint64_t size);

 private:
  VfioContainer(VfioSyscalls& sys, ScopedFd fd) : sys_(sys), fd_(std::move(fd)) {}
  VfioSyscalls& sys_;
  ScopedFd fd_;
};

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_CONTAINER_H_
