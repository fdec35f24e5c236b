#include "passthrough/vfio_host.h"

#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/alongside.h"
#include "base/status.h"

namespace vmmkit::passthrough {

VfioHost::VfioHost(AddressSpace& guest_memory, Mutex& machine_lock, VfioHostOptions options)
    : guest_memory_(guest_memory), machine_lock_(machine_lock), options_(std::move(options)) {}

VfioHost::~VfioHost() {
  // Normally empty (the caller closed every function); otherwise the listener must still leave
  // the address space it is registered with.
  if (dma_listener_ != nullptr) {
    MutexLock machine(machine_lock_);
    (void)guest_memory_.UnregisterListener(dma_listener_.get());
  }
}

vfio::VfioSyscalls& VfioHost::sys() const {
  return options_.syscalls != nullptr ? *options_.syscalls : vfio::RealVfioSyscalls();
}

absl::Status VfioHost::CheckBoundToVfioPci(const std::string& bdf) const {
  // Said plainly, before VFIO says it obscurely.
  const std::string dev = absl::StrCat(options_.sysfs, "/bus/pci/devices/", bdf);
  struct stat st;
  if (::stat(dev.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("no PCI device ", bdf, " on the host (", dev, ")"));
  }
  char target[256] = {};
  const ssize_t n = ::readlink((dev + "/driver").c_str(), target, sizeof(target) - 1);
  const std::string driver = n > 0 ? std::string(target, static_cast<size_t>(n)) : "";
  const std::string name = driver.substr(driver.find_last_of('/') + 1);
  if (name != "vfio-pci") {
    return absl::FailedPreconditionError(absl::StrCat(
        bdf, " is bound to ", name.empty() ? "no driver" : name, ", not vfio-pci (echo ", bdf,
        " > /sys/bus/pci/drivers/vfio-pci/bind, after a new_id)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VfioHost::Function> VfioHost::Open(const std::string& bdf, StepTimer* steps) {
  StepTimer unused;
  StepTimer& timer = steps != nullptr ? *steps : unused;
  // Every step below is undone, in reverse, if a later one fails.
  std::vector<std::function<void()>> undo;
  auto fail = [&](const char* step, const absl::Status& s) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return Prefixed(s, step);
  };
  if (container_ == nullptr) {
    absl::StatusOr<std::shared_ptr<vfio::VfioContainer>> container =
        vfio::VfioContainer::Open(sys());
    if (!container.ok()) {
      return fail("open the VFIO container",
                  absl::Status(container.status().code(),
                               absl::StrCat("VFIO unavailable (are the vfio and vfio-pci modules "
                                            "loaded?): ",
                                            container.status().message())));
    }
    container_ = *std::move(container);
    undo.push_back([this] { container_.reset(); });
  }
  if (absl::Status s = CheckBoundToVfioPci(bdf); !s.ok()) return fail("check the host device", s);
  absl::StatusOr<int> group_id = vfio::VfioGroup::GroupOfDevice(bdf, options_.sysfs);
  if (!group_id.ok()) return fail("find the IOMMU group", group_id.status());
  if (!groups_.count(*group_id)) {
    absl::StatusOr<std::shared_ptr<vfio::VfioGroup>> group =
        vfio::VfioGroup::Open(*group_id, sys());
    if (!group.ok()) return fail("open the IOMMU group", group.status());
    if (absl::Status s = (*group)->SetContainer(container_); !s.ok()) {
      return fail("add the group to the container", s);
    }
    groups_[*group_id] = {*group, 0};
    undo.push_back([this, id = *group_id] { groups_.erase(id); });
  }
  if (!container_->iommu_type()) {
    if (absl::Status s = container_->SetType1Iommu().status(); !s.ok()) {
      return fail("set the container's IOMMU model", s);
    }
  }
  timer.Step("VFIO container and group");
  vfio::VfioGroup& group = *groups_[*group_id].group;
  absl::StatusOr<std::unique_ptr<vfio::VfioDevice>> device = absl::InternalError("not opened");
  if (dma_listener_ == nullptr && options_.map_guest_ram) {
    // Guest RAM into the container: all of it, now (the listener replays the address space), on
    // a helper thread while this one opens the device. The open is when vfio-pci resets it, mostly
    // waiting on the hardware, and mapping is CPU work (pinning pages), so the two overlap. This
    // way round, not the other: a new thread starts behind the running ones in the scheduler's
    // queue, so a helper doing the open started its reset only once the map had run
    // (docs/hotplug.md).
    auto listener = std::make_unique<vfio::DmaMappingListener>(*container_);
    absl::Status s;
    absl::Duration map_time;  // Written by the helper; read after Join().
    Alongside mapper([&] {
      MutexLock machine(machine_lock_);
      const absl::Time start = absl::Now();
      s = guest_memory_.RegisterListener(listener.get());
      map_time = absl::Now() - start;
    });
    const absl::Time open_start = absl::Now();
    device = group.GetDevice(bdf);
    const absl::Duration open_time = absl::Now() - open_start;
    mapper.Join();
    // Each alone too: what the kernel takes for the two (the hotplug benchmark compares them with
    // its kernel_floor, the same calls with no VMM around them).
    timer.Step(absl::StrCat("DMA map ", absl::ToInt64Milliseconds(map_time), " ms with the open ",
                            absl::ToInt64Milliseconds(open_time), " ms alongside:"));
    if (!s.ok()) {
      device = absl::CancelledError("");  // Closed before its group goes.
      return fail("DMA-map guest RAM", s);
    }
    dma_listener_ = std::move(listener);
    undo.push_back([this] {
      MutexLock machine(machine_lock_);
      (void)guest_memory_.UnregisterListener(dma_listener_.get());
      dma_listener_.reset();
    });
  } else {
    device = group.GetDevice(bdf);
    timer.Step("open (vfio-pci resets it)");
  }
  if (!device.ok()) return fail("open the device", device.status());
  ++groups_[*group_id].functions;
  return Function{*std::move(device), *group_id};
}

void VfioHost::Close(int group_id, const std::function<void()>& close, StepTimer* steps) {
  StepTimer unused;
  StepTimer& timer = steps != nullptr ? *steps : unused;
  auto group = groups_.find(group_id);
  const bool last_of_group = group != groups_.end() && --group->second.functions <= 0;
  if (open_functions() > 0) {
    // The container keeps guest RAM mapped for the other functions.
    close();
    if (last_of_group) groups_.erase(group);
    return;
  }
  // The last one: guest RAM leaves the container while its groups still hold the IOMMU (no DMA
  // mapping outlives the functions); then groups and container go. The slow parts overlap: on a
  // helper thread the device closes (vfio-pci resets it, waiting on the hardware), while here
  // guest RAM is unmapped (CPU: unpinning pages), outside the machine lock so that the device's
  // detach can take it.
  std::vector<AddressSpaceRegion> mapped;
  if (dma_listener_ != nullptr) {
    MutexLock machine(machine_lock_);
    mapped = guest_memory_.RemoveListener(dma_listener_.get()).value_or(mapped);
  }
  Alongside closer(close);
  for (auto r = mapped.rbegin(); r != mapped.rend(); ++r) dma_listener_->RegionDel(*r);
  timer.Step("DMA unmap");
  closer.Join();
  timer.Step("then the detach, close and reset alongside");
  dma_listener_.reset();
  groups_.clear();
  container_.reset();
}

size_t VfioHost::open_functions() const {
  size_t n = 0;
  for (const auto& [id, ref] : groups_) n += static_cast<size_t>(ref.functions);
  return n;
}

std::vector<vfio::IovaRange> VfioHost::dma_mappings() const {
  return dma_listener_ != nullptr ? dma_listener_->mappings() : std::vector<vfio::IovaRange>{};
}

}  // namespace vmmkit::passthrough
