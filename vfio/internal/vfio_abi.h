// File: vfio/internal/vfio_abi.h
// -----------------------------------------------------------------------------
// The VFIO ABI vfio/ is built against (include/uapi/linux/vfio.h, x86-64), pinned so that a header
// change breaks the build. VFIO ioctls are _IO() numbers that do not encode a struct size, so
// unlike KVM's they do not depend on how C++ lays out the uapi structs; the sizes are pinned all
// the same, because argsz must be the kernel's.
//
// Debian 12's headers (Linux 6.1) predate iommufd (6.2) and the VFIO device cdev (6.6), so their
// structs and numbers are defined here from the kernel's uapi and pinned the same way.

#ifndef VMMKIT_VFIO_INTERNAL_VFIO_ABI_H_
#define VMMKIT_VFIO_INTERNAL_VFIO_ABI_H_

#include <linux/ioctl.h>
#include <linux/vfio.h>

#include <cstdint>

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
static_assert(VFIO_IOMMU_SPAPR_TCE_GET_INFO == 0x3b70);  // Same number as type1's GET_INFO.
static_assert(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO == 0x3b70);
static_assert(VFIO_DEVICE_PCI_HOT_RESET == 0x3b71);
static_assert(sizeof(vfio_iommu_spapr_tce_info) == 32);
static_assert(sizeof(vfio_iommu_spapr_register_memory) == 24);
static_assert(sizeof(vfio_iommu_spapr_tce_create) == 40);
static_assert(sizeof(vfio_iommu_spapr_tce_remove) == 16);
static_assert(sizeof(vfio_region_info_cap_sparse_mmap) == 16);
static_assert(sizeof(vfio_region_sparse_mmap_area) == 16);
static_assert(sizeof(vfio_region_info_cap_type) == 16);
static_assert(sizeof(vfio_pci_hot_reset_info) == 12);
static_assert(sizeof(vfio_pci_dependent_device) == 8);
static_assert(sizeof(vfio_pci_hot_reset) == 12);

// VFIO device cdev (/dev/vfio/devices/vfioN, Linux 6.6): bind to an iommufd, attach to an IOAS.
struct vfio_device_bind_iommufd {
  uint32_t argsz;
  uint32_t flags;
  int32_t iommufd;
  uint32_t out_devid;
};
struct vfio_device_attach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pt_id;
};
struct vfio_device_detach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
};
inline constexpr unsigned long kVfioDeviceBindIommufd = _IO(VFIO_TYPE, VFIO_BASE + 18);
inline constexpr unsigned long kVfioDeviceAttachIommufdPt = _IO(VFIO_TYPE, VFIO_BASE + 19);
inline constexpr unsigned long kVfioDeviceDetachIommufdPt = _IO(VFIO_TYPE, VFIO_BASE + 20);
static_assert(kVfioDeviceBindIommufd == 0x3b76);
static_assert(kVfioDeviceAttachIommufdPt == 0x3b77);
static_assert(kVfioDeviceDetachIommufdPt == 0x3b78);
static_assert(sizeof(vfio_device_bind_iommufd) == 16);
static_assert(sizeof(vfio_device_attach_iommufd_pt) == 12);
static_assert(sizeof(vfio_device_detach_iommufd_pt) == 8);

// iommufd (/dev/iommu, include/uapi/linux/iommufd.h, Linux 6.2+).
inline constexpr unsigned kIommufdType = ';';
struct iommu_destroy {
  uint32_t size;
  uint32_t id;
};
struct iommu_ioas_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t out_ioas_id;
};
struct iommu_iova_range {
  uint64_t start;
  uint64_t last;  // Inclusive.
};
struct iommu_ioas_iova_ranges {
  uint32_t size;
  uint32_t ioas_id;
  uint32_t num_iovas;
  uint32_t reserved;
  uint64_t allowed_iovas;  // User pointer to iommu_iova_range[num_iovas].
  uint64_t out_iova_alignment;
};
inline constexpr uint32_t kIommuIoasMapFixedIova = 1u << 0;
inline constexpr uint32_t kIommuIoasMapWriteable = 1u << 1;
inline constexpr uint32_t kIommuIoasMapReadable = 1u << 2;
struct iommu_ioas_map {
  uint32_t size;
  uint32_t flags;
  uint32_t ioas_id;
  uint32_t reserved;
  uint64_t user_va;
  uint64_t length;
  uint64_t iova;
};
struct iommu_ioas_unmap {
  uint32_t size;
  uint32_t ioas_id;
  uint64_t iova;
  uint64_t length;  // In: bytes to unmap; out: bytes unmapped.
};
inline constexpr unsigned long kIommuDestroy = _IO(kIommufdType, 0x80);
inline constexpr unsigned long kIommuIoasAlloc = _IO(kIommufdType, 0x81);
inline constexpr unsigned long kIommuIoasIovaRanges = _IO(kIommufdType, 0x84);
inline constexpr unsigned long kIommuIoasMap = _IO(kIommufdType, 0x85);
inline constexpr unsigned long kIommuIoasUnmap = _IO(kIommufdType, 0x86);
static_assert(kIommuDestroy == 0x3b80);
static_assert(kIommuIoasMap == 0x3b85);
static_assert(sizeof(iommu_destroy) == 8);
static_assert(sizeof(iommu_ioas_alloc) == 12);
static_assert(sizeof(iommu_iova_range) == 16);
static_assert(sizeof(iommu_ioas_iova_ranges) == 32);
static_assert(sizeof(iommu_ioas_map) == 40);
static_assert(sizeof(iommu_ioas_unmap) == 24);

}  // namespace vmmkit::vfio::internal

#endif  // VMMKIT_VFIO_INTERNAL_VFIO_ABI_H_
