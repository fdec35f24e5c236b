// File: vfio/iommufd.h
// -----------------------------------------------------------------------------
// iommufd (/dev/iommu, Linux 6.2+): the successor of the VFIO container. An Iommufd holds IO
// address spaces (IOAS); devices opened through their VFIO cdev (/dev/vfio/devices/vfioN) bind to
// the iommufd and attach to an IOAS (VfioDevice::BindIommufd / AttachIoas). An IommufdIoas is a
// DmaBackend, so the DMA listeners and iommu/ work on it unchanged.
//
//   ASSIGN_OR_RETURN(auto iommufd, Iommufd::Open());
//   ASSIGN_OR_RETURN(auto ioas, IommufdIoas::Allocate(iommufd));
//   ASSIGN_OR_RETURN(auto device, VfioDevice::OpenCdev("/dev/vfio/devices/vfio0"));
//   RETURN_IF_ERROR(device->BindIommufd(*iommufd));
//   RETURN_IF_ERROR(device->AttachIoas(*ioas));
//   RETURN_IF_ERROR(ioas->MapDma(Iova(0x100000), *ram, 0, ram->size(), true));
//
// Debian 12's kernel has no iommufd; this backend is tested against the fake kernel.
// Thread-safety: the kernel serializes the ioctls; neither class holds mutable state.

#ifndef VMMKIT_VFIO_IOMMUFD_H_
#define VMMKIT_VFIO_IOMMUFD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "memory/address.h"
#include "memory/guest_region.h"
#include "vfio/dma_backend.h"
#include "vfio/syscalls.h"

namespace vmmkit::vfio {

class Iommufd {
 public:
  static absl::StatusOr<std::shared_ptr<Iommufd>> Open(VfioSyscalls& sys = RealVfioSyscalls(),
                                                       const std::string& path = "/dev/iommu");
  int fd() const { return fd_.get(); }
  VfioSyscalls& sys() const { return sys_; }

  // IOMMU_IOAS_ALLOC: a new, empty IO address space; returns its id.
  absl::StatusOr<uint32_t> AllocIoas();
  // IOMMU_DESTROY of any object id.
  absl::Status Destroy(uint32_t id);
  // IOMMU_IOAS_IOVA_RANGES: the IOVAs the IOAS may map now (narrowed by attached devices), and
  // the required IOVA alignment.
  absl::StatusOr<std::vector<IovaRange>> IoasIovaRanges(uint32_t ioas_id,
                                                        uint64_t* alignment = nullptr) const;
  // IOMMU_IOAS_MAP with a fixed IOVA. The caller keeps `region` alive until the unmap.
  absl::Status IoasMap(uint32_t ioas_id, Iova iova, const GuestRegion& region, uint64_t offset,
                       uint64_t size, bool writable);
  // IOMMU_IOAS_UNMAP; returns the bytes unmapped.
  absl::StatusOr<uint64_t> IoasUnmap(uint32_t ioas_id, Iova iova, uint64_t size);

 private:
  Iommufd(VfioSyscalls& sys, ScopedFd fd) : sys_(sys), fd_(std::move(fd)) {}
  VfioSyscalls& sys_;
  ScopedFd fd_;
};

// One IOAS, destroyed with this object (after every device has detached: the kernel refuses to
// destroy an IOAS in use, so devices go first, as with the container).
class IommufdIoas : public DmaBackend {
 public:
  static absl::StatusOr<std::unique_ptr<IommufdIoas>> Allocate(std::shared_ptr<Iommufd> iommufd);
  ~IommufdIoas() override;
  IommufdIoas(const IommufdIoas&) = delete;
  IommufdIoas& operator=(const IommufdIoas&) = delete;

  uint32_t id() const { return id_; }
  Iommufd& iommufd() const { return *iommufd_; }

  // DmaBackend.
  std::string name() const override;
  absl::StatusOr<IommuCapabilities> GetCapabilities() const override;
  absl::Status MapDma(Iova iova, const GuestRegion& region, uint64_t offset, uint64_t size,
                      bool writable) override;
  absl::Status UnmapDma(Iova iova, uint64_t size) override;

 private:
  IommufdIoas(std::shared_ptr<Iommufd> iommufd, uint32_t id)
      : iommufd_(std::move(iommufd)), id_(id) {}
  std::shared_ptr<Iommufd> iommufd_;
  uint32_t id_;
};

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_IOMMUFD_H_
