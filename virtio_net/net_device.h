// File: virtio_net/net_device.h
// -----------------------------------------------------------------------------
// NetDevice is virtio-net (device type 1) over a NetBackend (a tap), the device-type half of a
// virtio_pci::VirtioPciFunction, with its data path served by vmm: queue pairs (receive 2i,
// transmit 2i + 1; MQ with more than one pair, one per backend queue) and the control queue last.
// It offers the MAC address, link status, mergeable receive buffers, checksum and TCP
// segmentation offloads both ways (the tap does the work the guest leaves: TUNSETOFFLOAD follows
// what the guest accepts, at activation and through CTRL_GUEST_OFFLOADS), and the control
// queue's receive filter (promiscuous, all-multicast, MAC tables, MAC address).
//
// Each queue pair is served by a worker thread of its own (the first also serves the control
// queue), started by Create on the creating thread as virtio-blk's are (a thread inherits its
// creator's confinement), woken by the queues' notifiers (eventfds, KVM ioeventfds in a VMM) and
// by its backend fd. A worker moves transmit chains to the backend (writev straight from guest
// RAM where the DMA space can name it) and received packets into receive chains, interrupting the
// guest once per batch if it asked.
//
// A hostile or stalled guest: a malformed chain is returned unused and counted; a broken ring
// makes the device ask for a reset; a guest that posts no receive buffers leaves received frames
// in the tap (whose queue is bounded, and drops) rather than in vmm: a worker holds at most one
// packet and a queue's worth of chains; the fds never block.
//
//   ASSIGN_OR_RETURN(tap::Tap tap, tap::Tap::Open("vmtap0", 2));
//   ASSIGN_OR_RETURN(auto net, NetDevice::Create(std::make_unique<TapBackend>(std::move(tap)),
//                                                guest_physical_dma, {.mac = mac}));
//   ASSIGN_OR_RETURN(auto fn, virtio_pci::VirtioPciFunction::Create(net, send_msi));
//
// Thread-safety: the VirtioDevice methods come from the transport (vCPU threads), the workers
// run on their own; stats() from any thread. Workers announce themselves as
// ThreadStarted("virtio-net").

#ifndef VMMKIT_VIRTIO_NET_NET_DEVICE_H_
#define VMMKIT_VIRTIO_NET_NET_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/token_bucket.h"
#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "vhost/device_iotlb.h"
#include "vhost/vhost.h"
#include "virtio/queue.h"
#include "virtio/workers.h"
#include "virtio_net/backend.h"
#include "virtio_net/control.h"
#include "virtio_pci/transport.h"

namespace vmmkit::virtio_net {

// A rate limit, per second (0: none): a token bucket each for bytes and frames, holding a
// second's worth (base/token_bucket.h).
struct RateLimit {
  uint64_t bytes_per_second = 0;
  uint64_t packets_per_second = 0;
  bool unlimited() const { return bytes_per_second == 0 && packets_per_second == 0; }
};

struct NetOptions {
  MacAddress mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  uint16_t queue_size = 256;  // A power of two, 2 to 1024.
  // The data path. Null: vmm's workers move the frames. Otherwise the kernel's vhost-net does,
  // one /dev/vhost-net per queue pair, over this guest RAM (which must outlive the device): the
  // workers then only hand the rings over at activation, relay the kernel's interrupts (those a
  // VMM does not have KVM deliver: interrupt_fd) and serve the control queue.
  const GuestMemory* vhost_memory = nullptr;
  // vhost-net behind a guest IOMMU (with `platform_dma`): how the device's addresses translate.
  // The device then offers ACCESS_PLATFORM on the kernel's path too, and serves the kernel's
  // IOTLB (vhost/device_iotlb.h: the VMM forwards the IOMMU's unmaps for it to iotlb()).
  // Empty: ACCESS_PLATFORM only on vmm's path.
  vhost::DeviceIotlb::Translate vhost_translate;
  // What the guest may receive and send (vmm's data path only: the kernel's has no limiter).
  RateLimit rx_limit, tx_limit;
};

class NetDevice : public virtio_pci::VirtioDevice {
 public:
  // With vhost-net, the frames' counts and drops are the tap's (the backend's Statistics), and
  // rx_filtered is 0 (the kernel does not filter).
  struct Stats {
    uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
    // Received frames the guest had no room for (larger than its buffers) or did not want (the
    // receive filter); transmitted frames the backend refused.
    uint64_t rx_dropped = 0, rx_filtered = 0, tx_dropped = 0;
    uint64_t refused = 0;  // Malformed chains and control commands.
  };

  // `dma` reaches guest-physical memory; with `platform_dma` the device offers ACCESS_PLATFORM
  // (see virtio_blk::BlockDevice). INVALID_ARGUMENT for a null backend or `dma`, a backend of no
  // queue pairs or more than 16, a queue size out of range, a multicast MAC address, or rate
  // limits with vhost-net.
  static absl::StatusOr<std::shared_ptr<NetDevice>> Create(
      std::unique_ptr<NetBackend> backend, std::unique_ptr<DmaSpace> dma, NetOptions options,
      std::unique_ptr<DmaSpace> platform_dma = nullptr);
  ~NetDevice() override;  // Stops and joins the workers.

  uint16_t device_type() const override { return 1; }
  uint32_t class_code() const override { return 0x020000; }  // Ethernet controller.
  uint64_t device_features() const override;
  uint16_t num_queues() const override { return static_cast<uint16_t>(2 * pairs_ + 1); }
  uint16_t max_queue_size() const override { return options_.queue_size; }
  uint32_t config_size() const override;
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override;
  absl::Status Activate(virtio_pci::Activation activation) override;
  void QueueNotify(uint16_t index) override;
  void Reset() override;

  // The eventfd that wakes the worker of queue `index` (a VMM registers it as the ioeventfd of
  // the queue's notify address).
  const EventFd& notifier(uint16_t index) const { return notifiers_[index]; }
  // The eventfd the kernel raises queue `index`'s interrupt on: vhost-net's receive and transmit
  // rings; null for the control queue and on vmm's own path. A VMM may have KVM deliver it (an
  // irqfd); whatever it leaves unbound, the pair's worker relays through the transport.
  const EventFd* interrupt_fd(uint16_t index) const {
    return vhost() && index < 2 * pairs_ ? &calls_[index] : nullptr;
  }
  uint16_t queue_pairs() const { return pairs_; }
  const NetOptions& options() const { return options_; }
  // The address the guest uses now (MAC_ADDR_SET may change it).
  MacAddress mac() const;
  // Whether the kernel's vhost-net serves the queues (see NetOptions::vhost_memory).
  bool vhost() const { return !vhost_.empty(); }
  // The kernel's IOTLB service: the VMM calls its Unmap for whatever the guest IOMMU unmaps for
  // this device's requester id (from before the guest can use it until the device goes). Null
  // without NetOptions::vhost_translate.
  vhost::DeviceIotlb* iotlb() { return iotlb_.get(); }
  Stats stats() const;

 private:
  // What worker `pair` serves once the driver activated the device.
  struct Work {
    std::optional<virtio::SplitQueue> rx, tx, ctrl;
  };
  NetDevice(std::unique_ptr<NetBackend> backend, std::unique_ptr<DmaSpace> dma,
            std::unique_ptr<DmaSpace> platform, NetOptions options, std::vector<EventFd> notifiers);
  absl::Status OpenVhost(const GuestMemory& memory);
  // Worker `pair`'s service of its queues, until `stop_fd` is readable.
  void Serve(uint16_t pair, Work work, const DmaSpace& dma, int stop_fd);
  // One turn of each queue; true if it stopped with more to do.
  // A throttled queue sets `wait` to when its limit allows more.
  bool ServeTx(uint16_t pair, virtio::SplitQueue& tx, const DmaSpace& dma, bool& broken,
               absl::Duration& wait);
  void ServeControl(virtio::SplitQueue& ctrl, const DmaSpace& dma, bool& broken);
  // The vhost-net path's Serve: hands the pair's rings to the kernel, relays the interrupts KVM
  // does not deliver itself, answers the kernel's IOTLB misses.
  void ServeVhost(uint16_t pair, Work& work, const DmaSpace& dma, int stop_fd);
  absl::Status StartVhost(uint16_t pair, Work& work);
  struct RxState;
  bool ServeRx(uint16_t pair, virtio::SplitQueue& rx, const DmaSpace& dma, RxState& state,
               bool& broken, absl::Duration& wait);
  // A direction's limiter: whether a frame may go now (else how long until one may), and
  // charging one that went. No-ops when unlimited.
  struct Limiter {
    TokenBucket bytes, packets;
  };
  bool Admit(bool rx, absl::Duration& wait) ABSL_LOCKS_EXCLUDED(limit_mu_);
  void Charge(bool rx, uint64_t bytes) ABSL_LOCKS_EXCLUDED(limit_mu_);

  const std::unique_ptr<NetBackend> backend_;
  const std::unique_ptr<DmaSpace> dma_;
  const std::unique_ptr<DmaSpace> platform_dma_;
  const NetOptions options_;
  const uint16_t pairs_;
  std::vector<EventFd> notifiers_;
  // The vhost-net path: a device per pair (owned by this process since Create), what it serves,
  // and the eventfds it signals: per queue its interrupts, per pair a ring's error.
  std::vector<vhost::VhostNet> vhost_;
  uint64_t vhost_features_ = 0;
  std::vector<EventFd> calls_, errors_;
  std::unique_ptr<vhost::DeviceIotlb> iotlb_;  // Set before the workers start.

  // Activate and Reset (as virtio_blk::BlockDevice's): what Activate sets before handing the
  // queues over, the workers read without it (QueueWorkers orders the hand-over); Reset clears it
  // once they have stopped.
  Mutex activation_mu_;
  virtio_pci::Interrupt interrupt_;
  std::function<void()> needs_reset_;
  const DmaSpace* active_dma_ = nullptr;
  uint64_t features_ = 0;  // Negotiated.

  // The receive filter: the control queue's worker writes it, every worker reads it per frame.
  mutable Mutex filter_mu_;
  RxFilter filter_ ABSL_GUARDED_BY(filter_mu_);
  // Queue pairs the driver uses (VQ_PAIRS_SET); workers of the others leave their fd alone (a
  // detached tap queue reads as an error).
  std::atomic<uint16_t> enabled_pairs_{1};

  // Shared by the pairs' workers: the limits hold for the device.
  Mutex limit_mu_;
  Limiter rx_limiter_ ABSL_GUARDED_BY(limit_mu_);
  Limiter tx_limiter_ ABSL_GUARDED_BY(limit_mu_);

  std::atomic<uint64_t> rx_packets_{0}, rx_bytes_{0}, tx_packets_{0}, tx_bytes_{0}, rx_dropped_{0},
      rx_filtered_{0}, tx_dropped_{0}, refused_{0};
  // Last: destroyed (joined) first, before anything they use.
  virtio::QueueWorkers<Work> workers_;
};

}  // namespace vmmkit::virtio_net

#endif  // VMMKIT_VIRTIO_NET_NET_DEVICE_H_
