// File: tests/lab/vfio/own_container.h
// -----------------------------------------------------------------------------
// For the lab's own tools (not vmm): a device bound to vfio-pci, opened through vfio/ in a
// container of its own with the type1 IOMMU (its group added, the model set, the device fd open).
//
//   ASSIGN_OR_RETURN(OwnContainerDevice edu, OpenInOwnContainer("0000:01:00.0"));
//   RETURN_IF_ERROR(edu.container->MapDma(...));

#ifndef VMMKIT_TESTS_LAB_VFIO_OWN_CONTAINER_H_
#define VMMKIT_TESTS_LAB_VFIO_OWN_CONTAINER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/group.h"

namespace vmmkit::vfio {

struct OwnContainerDevice {
  std::shared_ptr<VfioContainer> container;
  std::shared_ptr<VfioGroup> group;
  std::unique_ptr<VfioDevice> device;  // Last, so that it closes first.
};

absl::StatusOr<OwnContainerDevice> OpenInOwnContainer(const std::string& bdf);

}  // namespace vmmkit::vfio

#endif  // VMMKIT_TESTS_LAB_VFIO_OWN_CONTAINER_H_
