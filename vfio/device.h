// File: vfio/device.h
// -----------------------------------------------------------------------------
// VfioDevice owns a VFIO device fd: from VfioGroup::GetDevice (legacy container) or from the
// device's cdev bound to an iommufd (OpenCdev + BindIommufd + AttachIoas). One method per ioctl:
// device info, region info with capabilities, region access (config space through pread/pwrite,
// BARs through MappedRegion, which honours sparse mmap areas), IRQ info, VFIO_DEVICE_SET_IRQS for
// INTx/MSI/MSI-X with eventfds, and reset.
//
//   ASSIGN_OR_RETURN(auto dev, group->GetDevice("0000:00:03.0"));
//   ASSIGN_OR_RETURN(MappedRegion bar0, dev->MapRegion(VFIO_PCI_BAR0_REGION_INDEX));
//   ASSIGN_OR_RETURN(uint32_t id, bar0.Read32(0));
//   RETURN_IF_ERROR(dev->EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, {irq.fd()}));
//
// Teardown: the device fd closes before the group it came from is released (member order), and
// MappedRegions may outlive the device (the kernel keeps an mmap valid after close).
// Thread-safety: the kernel serializes the ioctls and region accesses; the object's cached info is
// immutable, so concurrent calls are safe.

#ifndef VMMKIT_VFIO_DEVICE_H_
#define VMMKIT_VFIO_DEVICE_H_

#include <linux/vfio.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/scoped_fd.h"
#include "vfio/group.h"
#include "vfio/iommufd.h"
#include "vfio/syscalls.h"

namespace vmmkit::vfio {

// VFIO_DEVICE_GET_INFO.
struct DeviceInfo {
  uint32_t flags = 0;
  uint32_t num_regions = 0;
  uint32_t num_irqs = 0;
  bool is_pci() const { return flags & VFIO_DEVICE_FLAGS_PCI; }
  bool can_reset() const { return flags & VFIO_DEVICE_FLAGS_RESET; }
};

// VFIO_DEVICE_GET_REGION_INFO with its capabilities.
struct RegionInfo {
  struct Area {
    uint64_t offset;  // From the start of the region.
    uint64_t size;
  };
  uint32_t index = 0;
  uint32_t flags = 0;
  uint64_t size = 0;
  uint64_t offset = 0;  // Of the region in the device fd.
  // VFIO_REGION_INFO_CAP_SPARSE_MMAP: only these parts may be mmapped (e.g. a BAR around an MSI-X
  // table the kernel traps). Absent: the whole region, if mmappable.
  std::optional<std::vector<Area>> sparse_areas;
  bool msix_mappable = false;                         // VFIO_REGION_INFO_CAP_MSIX_MAPPABLE.
  std::optional<std::pair<uint32_t, uint32_t>> type;  // VFIO_REGION_INFO_CAP_TYPE (type, subtype).

  bool readable() const { return flags & VFIO_REGION_INFO_FLAG_READ; }
  bool writable() const { return flags & VFIO_REGION_INFO_FLAG_WRITE; }
  bool mmappable() const { return flags & VFIO_REGION_INFO_FLAG_MMAP; }
  // The parts that MapRegion maps.
  std::vector<Area> MmapAreas() const;
};

// VFIO_DEVICE_GET_IRQ_INFO.
struct IrqInfo {
  uint32_t index = 0;
  uint32_t flags = 0;
  uint32_t count = 0;
  bool eventfd() const { return flags & VFIO_IRQ_INFO_EVENTFD; }
  bool maskable() const { return flags & VFIO_IRQ_INFO_MASKABLE; }
  bool automasked() const { return flags & VFIO_IRQ_INFO_AUTOMASKED; }
};

// A device that VFIO_DEVICE_PCI_HOT_RESET would reset along with this one.
struct PciDependentDevice {
  uint32_t group_id;
  std::string bdf;  // "0000:00:03.0".
};

// The mmapped parts of one region; unmapped on destruction. Accessors bounds-check against the
// mapped areas, so an offset from a guest cannot reach outside them.
class MappedRegion {
 public:
  struct Area {
    uint64_t offset;  // From the start of the region.
    uint64_t size;
    uint8_t* host;
  };
  MappedRegion(MappedRegion&& other) noexcept;
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  ~MappedRegion();

  uint32_t index() const { return index_; }
  const std::vector<Area>& areas() const { return areas_; }
  // Host address of [offset, offset + size) if it lies inside one mapped area, else null.
  uint8_t* HostAddress(uint64_t offset, uint64_t size) const;
  // Single-access (volatile) reads and writes of naturally aligned values: OUT_OF_RANGE outside
  // the mapped areas, INVALID_ARGUMENT if misaligned.
  absl::StatusOr<uint32_t> Read32(uint64_t offset) const;
  absl::StatusOr<uint64_t> Read64(uint64_t offset) const;
  absl::Status Write32(uint64_t offset, uint32_t value) const;
  absl::Status Write64(uint64_t offset, uint64_t value) const;

 private:
  friend class VfioDevice;
  MappedRegion(VfioSyscalls* sys, uint32_t index) : sys_(sys), index_(index) {}
  template <typename T>
  absl::StatusOr<volatile T*> At(uint64_t offset) const;
  void Release();
  VfioSyscalls* sys_;
  uint32_t index_;
  std::vector<Area> areas_;
};

class VfioDevice {
 public:
  // Opens a VFIO device cdev (/dev/vfio/devices/vfioN, Linux 6.6+). It must be bound to an
  // iommufd (BindIommufd) before anything else.
  static absl::StatusOr<std::unique_ptr<VfioDevice>> OpenCdev(
      const std::string& path, VfioSyscalls& sys = RealVfioSyscalls());
  // Adopts a device fd from VFIO_GROUP_GET_DEVICE_FD and reads its info. Used by VfioGroup.
  static absl::StatusOr<std::unique_ptr<VfioDevice>> FromGroupFd(std::shared_ptr<VfioGroup> group,
                                                                 VfioSyscalls& sys,
                                                                 const std::string& name,
                                                                 ScopedFd fd);
  VfioDevice(const VfioDevice&) = delete;
  VfioDevice& operator=(const VfioDevice&) = delete;

  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }
  // The group the device was opened through; null for cdev devices.
  const std::shared_ptr<VfioGroup>& group() const { return group_; }
  // Valid after construction (group devices) or BindIommufd (cdev devices).
  const DeviceInfo& info() const { return info_; }

  // VFIO_DEVICE_BIND_IOMMUFD (cdev only); returns the iommufd device id. Reads the device info.
  absl::StatusOr<uint32_t> BindIommufd(std::shared_ptr<Iommufd> iommufd);
  // VFIO_DEVICE_ATTACH_IOMMUFD_PT / VFIO_DEVICE_DETACH_IOMMUFD_PT.
  absl::Status AttachIoas(const IommufdIoas& ioas);
  absl::Status DetachIoas();

  // VFIO_DEVICE_GET_REGION_INFO.
  absl::StatusOr<RegionInfo> GetRegionInfo(uint32_t index) const;
  // pread/pwrite of a region (full transfers or an error). OUT_OF_RANGE outside the region. The
  // region layouts are read once when the device is opened.
  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) const;
  absl::Status WriteRegion(uint32_t index, uint64_t offset, absl::Span<const uint8_t> data) const;
  // PCI config space (region VFIO_PCI_CONFIG_REGION_INDEX), 1/2/4 bytes, naturally aligned.
  absl::StatusOr<uint32_t> ReadConfig(uint64_t offset, uint32_t size) const;
  absl::Status WriteConfig(uint64_t offset, uint32_t size, uint32_t value) const;
  // mmaps the region's mappable parts (sparse areas if the kernel lists them).
  absl::StatusOr<MappedRegion> MapRegion(uint32_t index) const;

  // VFIO_DEVICE_GET_IRQ_INFO.
  absl::StatusOr<IrqInfo> GetIrqInfo(uint32_t index) const;
  // VFIO_DEVICE_SET_IRQS, ACTION_TRIGGER with eventfds for vectors [start, start + fds.size()).
  // -1 leaves a vector without an eventfd. With MSI-X enabled, a call for some vectors updates
  // just those (per-vector update); changing the number of MSI vectors needs DisableIrqs first.
  absl::Status EnableIrqs(uint32_t index, uint32_t start, absl::Span<const int> eventfds) const;
  // VFIO_DEVICE_SET_IRQS, ACTION_TRIGGER with no data and count 0: all vectors of `index` off.
  absl::Status DisableIrqs(uint32_t index) const;
  // INTx: VFIO_IRQ_SET_ACTION_MASK / UNMASK. The kernel masks INTx when it fires (automasked);
  // after the guest (or test) has serviced the device, UnmaskIntx lets the next one through.
  absl::Status MaskIntx() const;
  absl::Status UnmaskIntx() const;
  // INTx resample: a write to `eventfd` unmasks INTx in the kernel, without a syscall into the VMM
  // (paired with KVM's resample irqfd). -1 removes it.
  absl::Status SetIntxUnmaskEventfd(int eventfd) const;

  // VFIO_DEVICE_RESET (function-level reset, or a bus reset the kernel can do for this device
  // alone). FAILED_PRECONDITION if the device has no such reset (see HotReset).
  absl::Status Reset() const;
  // VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the devices a bus reset would affect.
  absl::StatusOr<std::vector<PciDependentDevice>> GetHotResetInfo() const;
  // VFIO_DEVICE_PCI_HOT_RESET with the fds of `groups`, which must own every affected device
  // (FAILED_PRECONDITION naming the ones missing otherwise).
  absl::Status HotReset(absl::Span<const VfioGroup* const> groups) const;

 private:
  VfioDevice(VfioSyscalls& sys, std::shared_ptr<VfioGroup> group, std::string name, ScopedFd fd)
      : sys_(sys), group_(std::move(group)), name_(std::move(name)), fd_(std::move(fd)) {}
  absl::Status ReadInfo();
  // pread/pwrite of `len` bytes of a cached region; describe() names the access in errors.
  template <typename Describe>
  absl::Status Access(bool write, uint32_t index, uint64_t offset, void* buf, size_t len,
                      const Describe& what) const;
  absl::Status SetIrqs(uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
                       absl::Span<const int> eventfds, const std::string& what) const;
  std::string Name(const char* op) const;

  VfioSyscalls& sys_;
  // Declared before fd_ so that the device fd closes first (the kernel refuses to release a group
  // or IOAS that still has open devices).
  std::shared_ptr<VfioGroup> group_;  // Null for cdev devices.
  std::shared_ptr<Iommufd> iommufd_;  // Set by BindIommufd.
  std::optional<uint32_t> attached_ioas_;
  std::string name_;
  DeviceInfo info_;
  static constexpr uint32_t kMaxCachedRegions = 64;  // vfio-pci has 9 (+ device-specific ones).
  std::vector<RegionInfo> regions_;                  // Read once at open (ReadInfo).
  ScopedFd fd_;
};

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_DEVICE_H_
