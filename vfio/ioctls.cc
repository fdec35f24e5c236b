#include "vfio/ioctls.h"

#include <linux/vfio.h>

#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio {

std::vector<uint32_t> RuntimeIoctls() {
  return std::vector<uint32_t>{
      VFIO_IOMMU_MAP_DMA,
      VFIO_IOMMU_UNMAP_DMA,
      VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
      VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
      internal::kIommuIoasMap,
      internal::kIommuIoasUnmap,
      VFIO_DEVICE_SET_IRQS,
      VFIO_DEVICE_RESET,
      VFIO_DEVICE_GET_INFO,
      VFIO_DEVICE_GET_REGION_INFO,
      VFIO_DEVICE_GET_IRQ_INFO,
      VFIO_GROUP_UNSET_CONTAINER,
      internal::kVfioDeviceDetachIommufdPt,
      internal::kIommuDestroy,
  };
}

std::vector<uint32_t> AllIoctls() {
  std::vector<uint32_t> all = RuntimeIoctls();
  for (uint32_t r : std::initializer_list<uint32_t>{
           VFIO_GET_API_VERSION,
           VFIO_CHECK_EXTENSION,
           VFIO_SET_IOMMU,
           VFIO_IOMMU_GET_INFO,  // = VFIO_IOMMU_SPAPR_TCE_GET_INFO.
           VFIO_IOMMU_ENABLE,
           VFIO_IOMMU_SPAPR_TCE_CREATE,
           VFIO_IOMMU_SPAPR_TCE_REMOVE,
           VFIO_GROUP_GET_STATUS,
           VFIO_GROUP_SET_CONTAINER,
           VFIO_GROUP_GET_DEVICE_FD,
           VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
           VFIO_DEVICE_PCI_HOT_RESET,
           internal::kVfioDeviceBindIommufd,
           internal::kVfioDeviceAttachIommufdPt,
           internal::kIommuIoasAlloc,
           internal::kIommuIoasIovaRanges,
       }) {
    all.push_back(r);
  }
  return all;
}

}  // namespace vmmkit::vfio
