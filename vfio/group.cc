#include "vfio/group.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "vfio/device.h"
#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio {
namespace {

namespace fs = std::filesystem;

// Drivers that leave a group viable: vfio's own, and drivers that never do DMA for the device.
bool DriverKeepsViable(const std::string& driver) {
  return driver.empty() || driver == "vfio-pci" || driver == "pci-stub" || driver == "pcieport";
}

std::string LinkBase(const fs::path& link) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(link, ec);
  return ec ? "" : target.filename().string();
}

}  // namespace

std::string DevicesBlockingViability(int group_id, const std::string& sysfs) {
  const fs::path dir =
      fs::path(sysfs) / "kernel/iommu_groups" / std::to_string(group_id) / "devices";
  std::vector<std::string> blocking;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string driver = LinkBase(entry.path() / "driver");
    if (!DriverKeepsViable(driver)) {
      blocking.push_back(
          absl::StrCat(entry.path().filename().string(), " (bound to ", driver, ")"));
    }
  }
  std::sort(blocking.begin(), blocking.end());
  return absl::StrJoin(blocking, ", ");
}

absl::StatusOr<int> VfioGroup::GroupOfDevice(const std::string& bdf, const std::string& sysfs) {
  const fs::path dev = fs::path(sysfs) / "bus/pci/devices" / bdf;
  std::error_code ec;
  if (!fs::exists(dev, ec)) {
    return absl::NotFoundError(absl::StrCat("PCI device ", bdf, ": no ", dev.string()));
  }
  const std::string group = LinkBase(dev / "iommu_group");
  int id = 0;
  if (group.empty() || !absl::SimpleAtoi(group, &id) || id < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PCI device ", bdf, " has no IOMMU group (is the IOMMU enabled, e.g. intel_iommu=on?)"));
  }
  return id;
}

absl::StatusOr<std::shared_ptr<VfioGroup>> VfioGroup::Open(int group_id, VfioSyscalls& sys,
                                                           const VfioGroupPaths& paths) {
  if (group_id < 0) {
    return absl::InvalidArgumentError(absl::StrCat("VFIO group ", group_id, ": negative id"));
  }
  const std::string path = absl::StrCat(paths.dev_vfio, "/", group_id);
  const int raw = sys.Open(path.c_str(), O_RDWR);
  if (raw < 0) {
    return ErrnoStatus(-raw, "open ", path,
                       -raw == ENOENT ? " (is a device of the group bound to vfio-pci?)" : "");
  }
  std::shared_ptr<VfioGroup> group(new VfioGroup(sys, group_id, ScopedFd(raw)));
  ASSIGN_OR_RETURN(uint32_t flags, group->GetStatus());
  if (!(flags & VFIO_GROUP_FLAGS_VIABLE)) {
    std::string blocking = DevicesBlockingViability(group_id, paths.sysfs);
    return absl::FailedPreconditionError(absl::StrCat(
        "VFIO group ", group_id, " is not viable: every device in it must be bound to vfio-pci",
        blocking.empty() ? "" : "; in the way: ", blocking));
  }
  return group;
}

VfioGroup::~VfioGroup() {
  if (container_ == nullptr) return;
  if (absl::Status s = UnsetContainer(); !s.ok()) LogWarning(s.ToString());
}

absl::StatusOr<uint32_t> VfioGroup::GetStatus() const {
  vfio_group_status status{};
  status.argsz = sizeof(status);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_GROUP_GET_STATUS,
                            reinterpret_cast<uintptr_t>(&status),
                            "VFIO_GROUP_GET_STATUS group=", id_)
                      .status());
  return status.flags;
}

absl::Status VfioGroup::SetContainer(std::shared_ptr<VfioContainer> container) {
  if (container == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("VFIO_GROUP_SET_CONTAINER group=", id_, ": null container"));
  }
  if (container_ != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("VFIO_GROUP_SET_CONTAINER group=", id_,
                                                      ": the group is already in a container"));
  }
  int cfd = container->fd();
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_GROUP_SET_CONTAINER,
                            reinterpret_cast<uintptr_t>(&cfd),
                            "VFIO_GROUP_SET_CONTAINER group=", id_, " container_fd=", cfd)
                      .status());
  container_ = std::move(container);
  return absl::OkStatus();
}

absl::Status VfioGroup::UnsetContainer() {
  if (container_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("VFIO_GROUP_UNSET_CONTAINER group=", id_, ": the group is in no container"));
  }
  absl::Status s = VfioIoctl(sys_, fd_.get(), VFIO_GROUP_UNSET_CONTAINER, 0,
                             "VFIO_GROUP_UNSET_CONTAINER group=", id_)
                       .status();
  if (s.code() == absl::StatusCode::kFailedPrecondition) {  // EBUSY
    return absl::FailedPreconditionError(
        absl::StrCat(s.message(), " (close the group's devices first)"));
  }
  RETURN_IF_ERROR(s);
  container_.reset();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<VfioDevice>> VfioGroup::GetDevice(const std::string& name) {
  const std::string what = absl::StrCat("VFIO_GROUP_GET_DEVICE_FD group=", id_, " device=", name);
  if (container_ == nullptr || !container_->iommu_type()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": put the group in a container and set its IOMMU model before opening devices"));
  }
  ASSIGN_OR_RETURN(int raw, VfioIoctl(sys_, fd_.get(), VFIO_GROUP_GET_DEVICE_FD,
                                      reinterpret_cast<uintptr_t>(name.c_str()), what));
  ScopedFd fd(raw);  // Owned from here, whatever happens next.
  return VfioDevice::FromGroupFd(shared_from_this(), sys_, name, std::move(fd));
}

}  // namespace vmmkit::vfio
