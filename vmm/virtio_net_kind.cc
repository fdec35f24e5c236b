#include "vmm/virtio_net_kind.h"

#include <unistd.h>

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/mutex.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "iommu/iommu.h"
#include "iommu/types.h"
#include "iommu/vtd/unit.h"
#include "tap/tap.h"
#include "vhost/device_iotlb.h"
#include "virtio_net/backend.h"
#include "virtio_net/net_device.h"
#include "virtio_pci/transport.h"
#include "vmm/virtio_function.h"

namespace vmmkit::vmm {
namespace {

// Forwards each range the guest invalidates for a vhost-net NIC to its kernel IOTLB (vhost/
// knows no IOMMU; no MAPs are needed: the kernel asks on a miss).
class IotlbUnmaps : public iommu::IommuNotifier {
 public:
  explicit IotlbUnmaps(vhost::DeviceIotlb* iotlb) : iotlb_(iotlb) {}
  absl::Status Notify(absl::Span<const iommu::IommuEvent> events) override {
    for (const iommu::IommuEvent& e : events) {
      if (e.type == iommu::IommuEventType::kUnmap)
        iotlb_->Unmap(e.mapping.iova.raw(), e.mapping.size);
    }
    return absl::OkStatus();
  }

 private:
  vhost::DeviceIotlb* const iotlb_;
};

struct Nic {
  std::string tap;
  std::shared_ptr<virtio_net::NetDevice> device;
};

std::string MacText(const std::array<uint8_t, 6>& m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

}  // namespace

PciFunctionKind VirtioNetKind(Machine& machine) {
  // By requester id; the device manager serializes the hooks.
  auto nics = std::make_shared<std::map<uint16_t, Nic>>();
  PciFunctionKind kind;
  kind.summary_kind = DeviceSummary::Kind::kVirtioNet;
  // One interface per tap: two would take each other's frames.
  kind.exclusive = [](const AddDeviceSpec& spec) {
    return spec.tap.empty() ? std::string() : absl::StrCat("tap ", spec.tap);
  };
  kind.create = [&machine, nics](const AddDeviceSpec& spec, const PciSlot& slot,
                                 StepTimer& timer) -> absl::StatusOr<NewPciFunction> {
    std::array<uint8_t, 6> mac = spec.mac;
    if (mac == std::array<uint8_t, 6>{}) {
      mac = {0x52,
             0x54,
             0x00,
             0xab,
             static_cast<uint8_t>(slot.requester_id >> 8),
             static_cast<uint8_t>(slot.requester_id)};
    }
    for (const auto& [sid, nic] : *nics) {
      if (nic.device->options().mac == mac) {
        return absl::AlreadyExistsError(
            absl::StrCat("MAC address ", MacText(mac), " is already used in this VM"));
      }
    }
    absl::StatusOr<tap::Tap> tap = absl::InternalError("no tap");
    if (!spec.tap_fds.empty()) {
      std::vector<ScopedFd> fds;
      for (int fd : spec.tap_fds) fds.emplace_back(::dup(fd));
      tap = tap::Tap::Adopt(std::move(fds));
    } else {
      tap = tap::Tap::Open(spec.tap, spec.queue_pairs);
    }
    RETURN_IF_ERROR(Prefixed(tap.status(), "open the tap"));
    const std::string tap_name = tap->name();
    timer.Step("tap");
    std::unique_ptr<DmaSpace> platform;
    if (machine.iommu() != nullptr) platform = machine.DmaFor(slot.requester_id);
    absl::StatusOr<std::shared_ptr<virtio_net::NetDevice>> device = virtio_net::NetDevice::Create(
        std::make_unique<virtio_net::TapBackend>(*std::move(tap)),
        std::make_unique<IdentityDmaSpace>(machine.memory()),
        {.mac = mac,
         .vhost_memory = spec.vhost ? &machine.memory() : nullptr,
         .vhost_translate =
             spec.vhost && machine.iommu() != nullptr
                 ? vhost::DeviceIotlb::Translate(
                       [unit = machine.iommu(), sid = slot.requester_id](
                           uint64_t iova, uint8_t access) -> absl::StatusOr<vhost::IommuPage> {
                         // vhost's permission bits are VT-d's (read 1, write 2).
                         ASSIGN_OR_RETURN(
                             iommu::IotlbEntry e,
                             unit->TranslateDma(sid, Iova(iova),
                                                static_cast<iommu::IommuAccess>(access)));
                         return vhost::IommuPage{.iova = e.iova.raw(),
                                                 .size = e.size(),
                                                 .gpa = e.translated,
                                                 .perm = static_cast<uint8_t>(e.perm)};
                       })
                 : nullptr,
         .rx_limit = {.bytes_per_second = spec.net_limits.rx_bytes,
                      .packets_per_second = spec.net_limits.rx_packets},
         .tx_limit = {.bytes_per_second = spec.net_limits.tx_bytes,
                      .packets_per_second = spec.net_limits.tx_packets}},
        std::move(platform));
    RETURN_IF_ERROR(Prefixed(device.status(), "create the device"));
    std::shared_ptr<virtio_net::NetDevice> net = *device;
    // vhost-net behind the vIOMMU: the kernel's IOTLB hears of every range the guest invalidates
    // for this requester (an UNMAP-only notifier: it needs no tracking, and works without caching
    // mode), registered before the guest can reach the device, gone before it is.
    // (The notifier holds the IOTLB by a plain pointer: the destroy hook must not keep the device
    // alive.)
    std::shared_ptr<IotlbUnmaps> unmaps;
    if (net->iotlb() != nullptr) unmaps = std::make_shared<IotlbUnmaps>(net->iotlb());
    auto unregister = [&machine, unmaps, sid = slot.requester_id] {
      if (unmaps == nullptr) return;
      MutexLock lock(machine.lock());
      (void)machine.iommu()->UnregisterNotifier(sid, unmaps.get());
    };
    if (unmaps != nullptr) {
      MutexLock lock(machine.lock());
      RETURN_IF_ERROR(Prefixed(
          machine.iommu()->RegisterNotifier(slot.requester_id, unmaps.get(), iommu::kUnmapEvents),
          "register the vhost IOTLB with the vIOMMU"));
    }
    absl::StatusOr<std::shared_ptr<virtio_pci::VirtioPciFunction>> transport =
        virtio_pci::VirtioPciFunction::Create(
            net, [&machine, sid = slot.requester_id](uint64_t address, uint32_t data) {
              machine.SignalMsi({.address = address, .data = data}, sid);
            });
    if (!transport.ok()) unregister();
    RETURN_IF_ERROR(Prefixed(transport.status(), "create the transport"));
    std::vector<const EventFd*> notifiers;
    DirectInterrupts direct{.device_number = slot.device_number, .requester_id = slot.requester_id};
    for (uint16_t q = 0; q < net->num_queues(); ++q) {
      notifiers.push_back(&net->notifier(q));
      if (net->vhost()) direct.fds.push_back(net->interrupt_fd(q));
    }
    auto function = std::make_shared<MachineVirtioFunction>(
        machine, *transport, std::move(notifiers), spec.id, std::move(direct));
    timer.Step("device");
    (*nics)[slot.requester_id] = Nic{tap_name, net};
    return NewPciFunction{function, [nics, sid = slot.requester_id, unregister](
                                        const std::function<void()>& destroy, StepTimer& steps) {
                            // Destroying the function joins the workers and closes the tap's
                            // queues: the tap can be given to another VM once this returns.
                            nics->erase(sid);
                            unregister();
                            destroy();
                            steps.Step("device gone");
                          }};
  };
  kind.iommu_summary = [&machine, nics](uint16_t sid) -> std::optional<DeviceIommuSummary> {
    if (nics->count(sid) == 0) return std::nullopt;
    return GuestIommuSummary(machine, sid);
  };
  kind.summarize = [nics](uint16_t sid, DeviceSummary& s) {
    auto it = nics->find(sid);
    if (it == nics->end()) return;
    const virtio_net::NetDevice& d = *it->second.device;
    const virtio_net::NetDevice::Stats st = d.stats();
    s.net = NetSummary{.tap = it->second.tap,
                       .mac = d.mac(),
                       .queue_pairs = d.queue_pairs(),
                       .vhost = d.vhost(),
                       .rx_packets = st.rx_packets,
                       .rx_bytes = st.rx_bytes,
                       .tx_packets = st.tx_packets,
                       .tx_bytes = st.tx_bytes,
                       .rx_dropped = st.rx_dropped,
                       .rx_filtered = st.rx_filtered,
                       .tx_dropped = st.tx_dropped,
                       .refused = st.refused};
  };
  return kind;
}

}  // namespace vmmkit::vmm
