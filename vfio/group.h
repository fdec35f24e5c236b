// File: vfio/group.h
// -----------------------------------------------------------------------------
// VfioGroup owns an IOMMU group fd (/dev/vfio/<N>): the unit of isolation the host IOMMU can
// guarantee. A group is usable only when it is viable (every device in it bound to vfio-pci, or to
// a driver that does no DMA); then it joins a container, and its devices can be opened.
//
//   ASSIGN_OR_RETURN(int id, VfioGroup::GroupOfDevice("0000:00:03.0"));
//   ASSIGN_OR_RETURN(auto group, VfioGroup::Open(id));    // FAILED_PRECONDITION if not viable,
//                                                         // naming the devices in the way
//   RETURN_IF_ERROR(group->SetContainer(container));
//   ASSIGN_OR_RETURN(auto device, group->GetDevice("0000:00:03.0"));
//
// Teardown order (the kernel answers EBUSY otherwise): device fds close before their group leaves
// the container, and the group before the container closes. Ownership enforces it: a VfioDevice
// holds its group, and a group holds its container while attached.
//
// Thread-safety: not thread-safe; use from one thread or under a lock.

#ifndef VMMKIT_VFIO_GROUP_H_
#define VMMKIT_VFIO_GROUP_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "vfio/container.h"
#include "vfio/syscalls.h"

namespace vmmkit::vfio {

class VfioDevice;

// Where the group nodes and sysfs are (tests point these at a temporary tree).
struct VfioGroupPaths {
  std::string dev_vfio = "/dev/vfio";
  std::string sysfs = "/sys";  // For naming the devices that keep a group from being viable.
};

class VfioGroup : public std::enable_shared_from_this<VfioGroup> {
 public:
  // Opens the group and checks VFIO_GROUP_GET_STATUS: FAILED_PRECONDITION if it is not viable,
  // naming each device of the group that is bound to another driver.
  static absl::StatusOr<std::shared_ptr<VfioGroup>> Open(int group_id,
                                                         VfioSyscalls& sys = RealVfioSyscalls(),
                                                         const VfioGroupPaths& paths = {});
  // The IOMMU group of a PCI device ("0000:00:03.0"), from sysfs.
  static absl::StatusOr<int> GroupOfDevice(const std::string& bdf,
                                           const std::string& sysfs = "/sys");

  ~VfioGroup();
  VfioGroup(const VfioGroup&) = delete;
  VfioGroup& operator=(const VfioGroup&) = delete;

  int id() const { return id_; }
  int fd() const { return fd_.get(); }
  const std::shared_ptr<VfioContainer>& container() const { return container_; }

  // VFIO_GROUP_GET_STATUS flags (VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_CONTAINER_SET).
  absl::StatusOr<uint32_t> GetStatus() const;
  // VFIO_GROUP_SET_CONTAINER. The group keeps the container alive until UnsetContainer.
  absl::Status SetContainer(std::shared_ptr<VfioContainer> container);
  // VFIO_GROUP_UNSET_CONTAINER. Every device of the group must be closed first.
  absl::Status UnsetContainer();
  // VFIO_GROUP_GET_DEVICE_FD for `name` (a PCI address for vfio-pci). The group must be in a
  // container whose IOMMU model is set.
  absl::StatusOr<std::unique_ptr<VfioDevice>> GetDevice(const std::string& name);

 private:
  VfioGroup(VfioSyscalls& sys, int id, ScopedFd fd) : sys_(sys), id_(id), fd_(std::move(fd)) {}
  VfioSyscalls& sys_;
  int id_;
  std::shared_ptr<VfioContainer> container_;  // Declared before fd_: the group fd closes first.
  ScopedFd fd_;
};

// "0000:00:04.0 (bound to e1000e), 0000:00:04.1 (bound to snd_hda_intel)": the devices of IOMMU
// group `group_id` whose driver keeps the group from being viable; empty if none.
std::string DevicesBlockingViability(int group_id, const std::string& sysfs = "/sys");

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_GROUP_H_
