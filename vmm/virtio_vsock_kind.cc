#include "vmm/virtio_vsock_kind.h"

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/status_macros.h"
#include "virtio_pci/transport.h"
#include "virtio_vsock/vsock_device.h"
#include "vmm/virtio_function.h"

namespace vmmkit::vmm {

PciFunctionKind VirtioVsockKind(Machine& machine) {
  // By requester id; the device manager serializes the hooks.
  auto devices = std::make_shared<std::map<uint16_t, std::shared_ptr<virtio_vsock::VsockDevice>>>();
  PciFunctionKind kind;
  kind.summary_kind = DeviceSummary::Kind::kVirtioVsock;
  // One device per CID in this VM (the host refuses a CID another VM holds).
  kind.exclusive = [](const AddDeviceSpec& spec) {
    return absl::StrCat("vsock cid ", spec.vsock_cid);
  };
  kind.create = [&machine, devices](const AddDeviceSpec& spec, const PciSlot& slot,
                                    StepTimer& timer) -> absl::StatusOr<NewPciFunction> {
    absl::StatusOr<std::shared_ptr<virtio_vsock::VsockDevice>> device =
        virtio_vsock::VsockDevice::Create(spec.vsock_cid, machine.memory());
    RETURN_IF_ERROR(Prefixed(device.status(), "create the device"));
    std::shared_ptr<virtio_vsock::VsockDevice> vsock = *device;
    absl::StatusOr<std::shared_ptr<virtio_pci::VirtioPciFunction>> transport =
        virtio_pci::VirtioPciFunction::Create(
            vsock, [&machine, sid = slot.requester_id](uint64_t address, uint32_t data) {
              machine.SignalMsi({.address = address, .data = data}, sid);
            });
    RETURN_IF_ERROR(Prefixed(transport.status(), "create the transport"));
    std::vector<const EventFd*> notifiers;
    for (uint16_t q = 0; q < vsock->num_queues(); ++q) notifiers.push_back(&vsock->notifier(q));
    auto function =
        std::make_shared<MachineVirtioFunction>(machine, *transport, std::move(notifiers), spec.id);
    timer.Step("device");
    (*devices)[slot.requester_id] = vsock;
    return NewPciFunction{function, [devices, sid = slot.requester_id](
                                        const std::function<void()>& destroy, StepTimer& steps) {
                            // Closing the vhost-vsock device gives its CID back.
                            devices->erase(sid);
                            destroy();
                            steps.Step("device gone");
                          }};
  };
  kind.summarize = [devices](uint16_t sid, DeviceSummary& s) {
    auto it = devices->find(sid);
    if (it == devices->end()) return;
    s.vsock = VsockSummary{.cid = it->second->cid(),
                           .rx_interrupts = it->second->interrupts(0),
                           .tx_interrupts = it->second->interrupts(1)};
  };
  return kind;
}

}  // namespace vmmkit::vmm
