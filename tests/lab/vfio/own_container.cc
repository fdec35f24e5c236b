#include "tests/lab/vfio/own_container.h"

#include "base/status_macros.h"

namespace vmmkit::vfio {

absl::StatusOr<OwnContainerDevice> OpenInOwnContainer(const std::string& bdf) {
  OwnContainerDevice d;
  ASSIGN_OR_RETURN(d.container, VfioContainer::Open());
  ASSIGN_OR_RETURN(int group_id, VfioGroup::GroupOfDevice(bdf));
  ASSIGN_OR_RETURN(d.group, VfioGroup::Open(group_id));
  RETURN_IF_ERROR(d.group->SetContainer(d.container));
  RETURN_IF_ERROR(d.container->SetType1Iommu().status());
  ASSIGN_OR_RETURN(d.device, d.group->GetDevice(bdf));
  return d;
}

}  // namespace vmmkit::vfio
