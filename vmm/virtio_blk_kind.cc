#include "vmm/virtio_blk_kind.h"

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "virtio_blk/block_device.h"
#include "virtio_blk/disk_image.h"
#include "virtio_pci/transport.h"
#include "vmm/virtio_function.h"

namespace vmmkit::vmm {
namespace {

struct Disk {
  std::string path;
  std::shared_ptr<virtio_blk::BlockDevice> device;
};

}  // namespace

PciFunctionKind VirtioBlkKind(Machine& machine) {
  // By requester id; the device manager serializes the hooks.
  auto disks = std::make_shared<std::map<uint16_t, Disk>>();
  PciFunctionKind kind;
  kind.summary_kind = DeviceSummary::Kind::kVirtioBlk;
  // One writer per image: the image's flock says so across processes, this within vmm (where a
  // second open would take the same lock again).
  kind.exclusive = [](const AddDeviceSpec& spec) { return spec.disk_path; };
  kind.create = [&machine, disks](const AddDeviceSpec& spec, const PciSlot& slot,
                                  StepTimer& timer) -> absl::StatusOr<NewPciFunction> {
    absl::StatusOr<virtio_blk::DiskImage> image =
        virtio_blk::DiskImage::Open(spec.disk_path, {.read_only = spec.read_only});
    RETURN_IF_ERROR(Prefixed(image.status(), "open the image"));
    timer.Step("image");
    std::unique_ptr<DmaSpace> platform;
    if (machine.iommu() != nullptr) platform = machine.DmaFor(slot.requester_id);
    absl::StatusOr<std::shared_ptr<virtio_blk::BlockDevice>> device =
        virtio_blk::BlockDevice::Create(
            *std::move(image), std::make_unique<IdentityDmaSpace>(machine.memory()),
            {.id = spec.id, .queues = spec.queues, .engine = spec.engine}, std::move(platform));
    RETURN_IF_ERROR(Prefixed(device.status(), "create the device"));
    std::shared_ptr<virtio_blk::BlockDevice> blk = *device;
    absl::StatusOr<std::shared_ptr<virtio_pci::VirtioPciFunction>> transport =
        virtio_pci::VirtioPciFunction::Create(
            blk, [&machine, sid = slot.requester_id](uint64_t address, uint32_t data) {
              machine.SignalMsi({.address = address, .data = data}, sid);
            });
    RETURN_IF_ERROR(Prefixed(transport.status(), "create the transport"));
    std::vector<const EventFd*> notifiers;
    for (uint16_t q = 0; q < blk->num_queues(); ++q) notifiers.push_back(&blk->notifier(q));
    auto function =
        std::make_shared<MachineVirtioFunction>(machine, *transport, std::move(notifiers), spec.id);
    timer.Step("device");
    (*disks)[slot.requester_id] = Disk{spec.disk_path, blk};
    return NewPciFunction{function, [disks, sid = slot.requester_id](
                                        const std::function<void()>& destroy, StepTimer& steps) {
                            // The function's destruction joins the workers and closes the image,
                            // which drops its lock: the image can be given to another VM (or this
                            // one) once this returns.
                            disks->erase(sid);
                            destroy();
                            steps.Step("device gone");
                          }};
  };
  // Behind the VT-d unit, what the guest's IOMMU does for the disk (no host mappings: vmm itself
  // translates the disk's DMA through the guest's tables).
  kind.iommu_summary = [&machine, disks](uint16_t sid) -> std::optional<DeviceIommuSummary> {
    if (disks->count(sid) == 0) return std::nullopt;
    return GuestIommuSummary(machine, sid);
  };
  kind.summarize = [disks](uint16_t sid, DeviceSummary& s) {
    auto it = disks->find(sid);
    if (it == disks->end()) return;
    const virtio_blk::BlockDevice& d = *it->second.device;
    const virtio_blk::BlockDevice::Stats st = d.stats();
    s.disk = DiskSummary{.path = it->second.path,
                         .read_only = d.disk().read_only(),
                         .capacity_bytes = d.disk().size(),
                         .queues = d.num_queues(),
                         .reads = st.reads,
                         .writes = st.writes,
                         .flushes = st.flushes,
                         .discards = st.discards,
                         .write_zeroes = st.write_zeroes,
                         .bytes_read = st.bytes_read,
                         .bytes_written = st.bytes_written,
                         .refused = st.refused,
                         .engine = d.engine()};
  };
  return kind;
}

}  // namespace vmmkit::vmm
