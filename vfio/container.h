// File: vfio/container.h
// -----------------------------------------------------------------------------
// VfioContainer owns a legacy VFIO container fd (/dev/vfio/vfio): the IOMMU context that groups
// attach to and that DMA mappings are made in. It is a DmaBackend for two IOMMU models:
//   - Type1v2 (Type1 as a fallback): x86 and most platforms. Any IOVA in the valid ranges.
//   - sPAPR TCE v2 (POWER): guest memory is pre-registered (REGISTER_MEMORY pins it) before it is
//     mapped, and IOVAs must lie in a DMA window (the default 32-bit one, or windows made with
//     CreateDmaWindow). v2 does not use VFIO_IOMMU_ENABLE: that was v1's way to start accounting,
//     and pre-registration replaced it.
//
// The kernel's order matters: open the container, attach a group (VfioGroup::SetContainer), then
// choose the IOMMU model, then map DMA.
//
//   ASSIGN_OR_RETURN(auto container, VfioContainer::Open());
//   RETURN_IF_ERROR(group->SetContainer(container));
//   ASSIGN_OR_RETURN(IommuType type, container->SetType1Iommu());
//   RETURN_IF_ERROR(container->MapDma(Iova(0x100000), *ram, /*offset=*/0, ram->size(), true));
//
// Thread-safety: not thread-safe (sPAPR bookkeeping); use from one thread or under a lock.

#ifndef VMMKIT_VFIO_CONTAINER_H_
#define VMMKIT_VFIO_CONTAINER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "memory/address.h"
#include "memory/guest_region.h"
#include "vfio/dma_backend.h"
#include "vfio/syscalls.h"

namespace vmmkit::vfio {

enum class IommuType : uint32_t {
  kType1 = 1,       // VFIO_TYPE1_IOMMU
  kType1v2 = 3,     // VFIO_TYPE1v2_IOMMU: unmaps never silently bisect a mapping; preferred.
  kSpaprTceV2 = 7,  // VFIO_SPAPR_TCE_v2_IOMMU
};
const char* IommuTypeName(IommuType type);

// VFIO_IOMMU_SPAPR_TCE_GET_INFO, as data.
struct SpaprTceInfo {
  IovaRange dma32_window;  // The default window every group starts with.
  // Dynamic DMA windows (DDW), if the platform has them.
  bool has_ddw = false;
  uint64_t ddw_page_sizes = 0;
  uint32_t max_dynamic_windows = 0;
  uint32_t max_levels = 0;
};

class VfioContainer : public DmaBackend {
 public:
  // Opens `path` and checks VFIO_GET_API_VERSION (0).
  static absl::StatusOr<std::shared_ptr<VfioContainer>> Open(
      VfioSyscalls& sys = RealVfioSyscalls(), const std::string& path = "/dev/vfio/vfio");

  int fd() const { return fd_.get(); }
  // The model chosen by SetIommu, if any.
  std::optional<IommuType> iommu_type() const { return type_; }

  // VFIO_CHECK_EXTENSION.
  absl::StatusOr<bool> CheckExtension(uint32_t extension) const;
  // VFIO_SET_IOMMU. A group must be attached first; the model is set once per container.
  absl::Status SetIommu(IommuType type);
  // SetIommu with Type1v2 if the kernel has it, else Type1.
  absl::StatusOr<IommuType> SetType1Iommu();

  // VFIO_IOMMU_GET_INFO (type1) with its capability chain (valid IOVA ranges, DMA mappings
  // available), defensively parsed.
  absl::StatusOr<IommuCapabilities> GetType1Info() const;
  // VFIO_IOMMU_SPAPR_TCE_GET_INFO.
  absl::StatusOr<SpaprTceInfo> GetSpaprInfo() const;
  // VFIO_IOMMU_SPAPR_TCE_CREATE: a DMA window of `window_size` bytes of 2^page_shift pages in a
  // table of `levels` levels; returns its bus address. VFIO_IOMMU_SPAPR_TCE_REMOVE removes it.
  absl::StatusOr<Iova> CreateDmaWindow(uint32_t page_shift, uint64_t window_size, uint32_t levels);
  absl::Status RemoveDmaWindow(Iova start);

  // DmaBackend.
  std::string name() const override;
  absl::StatusOr<IommuCapabilities> GetCapabilities() const override;
  bool needs_pre_registration() const override { return type_ == IommuType::kSpaprTceV2; }
  // VFIO_IOMMU_SPAPR_REGISTER_MEMORY / UNREGISTER_MEMORY (sPAPR v2; other models: checks only).
  absl::Status RegisterMemory(const GuestRegion& region, uint64_t offset, uint64_t size) override;
  absl::Status UnregisterMemory(const GuestRegion& region, uint64_t offset, uint64_t size) override;
  // VFIO_IOMMU_MAP_DMA. sPAPR: the memory must be registered and the range inside a window
  // (FAILED_PRECONDITION / OUT_OF_RANGE before the ioctl).
  absl::Status MapDma(Iova iova, const GuestRegion& region, uint64_t offset, uint64_t size,
                      bool writable) override;
  // VFIO_IOMMU_UNMAP_DMA. NOT_FOUND if nothing was mapped there.
  absl::Status UnmapDma(Iova iova, uint64_t size) override;

 private:
  VfioContainer(VfioSyscalls& sys, ScopedFd fd) : sys_(sys), fd_(std::move(fd)) {}
  absl::Status CheckSpaprMap(const std::string& what, Iova iova, const GuestRegion& region,
                             uint64_t offset, uint64_t size) const;

  VfioSyscalls& sys_;
  ScopedFd fd_;
  std::optional<IommuType> type_;
  // sPAPR bookkeeping, so that a map of unregistered memory or outside every window gets a clear
  // error instead of the kernel's bare EINVAL/EPERM.
  std::map<uint64_t, uint64_t> registered_;  // Host address -> size.
  std::map<uint64_t, uint64_t> windows_;     // Bus address -> size.
};

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_CONTAINER_H_
