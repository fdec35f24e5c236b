// File: vfio/internal/vfio_abi.h
// -----------------------------------------------------------------------------
// The VFIO ABI vfio/ is built against (include/uapi/linux/vfio.h, x86-64), pinned so that a header
// change breaks the build. VFIO ioctls are _IO() numbers that do not encode a struct size, so
// unlike KVM's they do not depend on how C++ lays out the uapi structs; the sizes are pinned all
// the same, because argsz must be the kernel's.

#ifndef VMMKIT_VFIO_INTERNAL_VFIO_ABI_H_
#define VMMKIT_VFIO_INTERNAL_VFIO_ABI_H_

#include <linux/vfio.h>

namespace vmmkit::vfio::internal {

inline constexpr int kVfioApiVersion = 0;

static_assert(VFIO_GET_API_VERSION == 0x3b64);
static_assert(VFIO_CHECK_EXTENSION == 0x3b65);
static_assert(VFIO_SET_IOMMU == 0x3b66);
static_assert(VFIO_GROUP_GET_STATUS == 0x3b67);
static_assert(VFIO_GROUP_SET_CONTAINER == 0x3b68);
static_assert(VFIO_GROUP_UNSET_CONTAINER == 0x3b69);
static_assert(VFIO_GROUP_GET_DEVICE_FD == 0x3b6a);
static_assert(VFIO_DEVICE_GET_INFO == 0x3b6b);
static_assert(VFIO_DEVICE_GET_REGION_INFO == 0x3b6c);
static_assert(VFIO_DEVICE_GET_IRQ_INFO == 0x3b6d);
static_assert(VFIO_DEVICE_SET_IRQS == 0x3b6e);
static_assert(VFIO_DEVICE_RESET == 0x3b6f);
static_assert(VFIO_IOMMU_GET_INFO == 0x3b70);
static_assert(VFIO_IOMMU_MAP_DMA == 0x3b71);
static_assert(VFIO_IOMMU_UNMAP_DMA == 0x3b72);
static_assert(VFIO_IOMMU_ENABLE == 0x3b73);
static_assert(VFIO_IOMMU_SPAPR_REGISTER_MEMORY == 0x3b75);
static_assert(VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY == 0x3b76);
static_assert(VFIO_IOMMU_SPAPR_TCE_CREATE == 0x3b77);
static_assert(VFIO_IOMMU_SPAPR_TCE_REMOVE == 0x3b78);
static_assert(VFIO_TYPE1_IOMMU == 1);
static_assert(VFIO_TYPE1v2_IOMMU == 3);
static_assert(VFIO_SPAPR_TCE_v2_IOMMU == 7);

static_assert(sizeof(vfio_iommu_type1_info) == 24);
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32);
static_assert(sizeof(vfio_iommu_type1_dma_unmap) == 24);
static_assert(sizeof(vfio_group_status) == 8);
static_assert(sizeof(vfio_device_info) == 20);
static_assert(sizeof(vfio_region_info) == 32);
static_assert(sizeof(vfio_irq_info) == 16);
static_assert(sizeof(vfio_irq_set) == 20);
static_assert(sizeof(vfio_info_cap_header) == 8);
static_assert(sizeof(vfio_iommu_type1_info_cap_iova_range) == 16);
static_assert(sizeof(vfio_iova_range) == 16);
static_assert(sizeof(vfio_iommu_type1_info_dma_avail) == 12);

}  // namespace vmmkit::vfio::internal

#endif  // VMMKIT_VFIO_INTERNAL_VFIO_ABI_H_
