// File: virtio_vsock/vsock_device.h
// -----------------------------------------------------------------------------
// VsockDevice is virtio-vsock (device type 19), the device-type half of a
// virtio_pci::VirtioPciFunction, served by the kernel's vhost-vsock: the guest gets a socket
// address (its context id, CID) and talks to the host's ordinary AF_VSOCK sockets (CID 2) with no
// network configuration on either side, as Firecracker's and Cloud Hypervisor's guest agents do.
//
// Of the three queues (receive 0, transmit 1, event 2) the kernel serves the first two; the event
// queue keeps the guest's buffers (the device sends events only after a migration, which vmm
// does not do). A worker thread, started by Create on the creating thread, hands the rings to
// the kernel at DRIVER_OK, relays the kernel's interrupts to the guest and takes the rings back
// at reset. The kernel checks what the guest asks: every buffer must lie in the memory table
// (guest RAM), a packet's source must be the guest's own CID.
//
//   ASSIGN_OR_RETURN(auto vsock, VsockDevice::Create(/*cid=*/3, memory));
//   ASSIGN_OR_RETURN(auto fn, virtio_pci::VirtioPciFunction::Create(vsock, send_msi));
//
// Thread-safety: the VirtioDevice methods come from the transport (vCPU threads); the worker
// runs on its own and announces itself as ThreadStarted("virtio-vsock").

#ifndef VMMKIT_VIRTIO_VSOCK_VSOCK_DEVICE_H_
#define VMMKIT_VIRTIO_VSOCK_VSOCK_DEVICE_H_

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
#include "memory/guest_memory.h"
#include "vhost/vhost.h"
#include "virtio/queue.h"
#include "virtio/workers.h"
#include "virtio_pci/transport.h"

namespace vmmkit::virtio_vsock {

// The lowest and highest CID a guest may have (0, 1 and 2 are the hypervisor's, the local
// loopback's and the host's; 2^32 - 1 is "any").
inline constexpr uint64_t kMinGuestCid = 3;
inline constexpr uint64_t kMaxGuestCid = 0xfffffffe;

class VsockDevice : public virtio_pci::VirtioDevice {
 public:
  // INVALID_ARGUMENT for a CID out of range; NOT_FOUND where the host has no vhost-vsock;
  // ALREADY_EXISTS for a CID another VM on this host holds. `memory` must outlive the device.
  static absl::StatusOr<std::shared_ptr<VsockDevice>> Create(uint64_t cid,
                                                             const GuestMemory& memory);
  ~VsockDevice() override;  // Stops and joins the worker.

  uint16_t device_type() const override { return 19; }
  uint32_t class_code() const override { return 0x088000; }  // Other system peripheral.
  uint64_t device_features() const override { return features_; }
  uint16_t num_queues() const override { return 3; }
  uint16_t max_queue_size() const override { return 256; }
  uint32_t config_size() const override { return 8; }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override;
  absl::Status Activate(virtio_pci::Activation activation) override;
  void QueueNotify(uint16_t index) override;
  void Reset() override;

  const EventFd& notifier(uint16_t index) const { return notifiers_[index]; }
  uint64_t cid() const { return cid_; }
  // Interrupts relayed from the kernel, per queue (receive, transmit): a sign of traffic.
  uint64_t interrupts(uint16_t queue) const;

 private:
  using Queues = std::vector<std::optional<virtio::SplitQueue>>;
  // `fds`: 3 notifiers, 2 calls and the error eventfd.
  VsockDevice(uint64_t cid, const GuestMemory& memory, vhost::VhostVsock vhost,
              uint64_t vhost_features, std::vector<EventFd> fds);
  // Hands rings 0 and 1 to the kernel and starts it.
  absl::Status Start(Queues& queues);
  // The worker's service of the device, until `stop_fd` is readable.
  void Serve(Queues queues, int stop_fd);

  const uint64_t cid_;
  const GuestMemory& memory_;
  const vhost::VhostVsock vhost_;
  const uint64_t vhost_features_;
  const uint64_t features_;         // Offered: what the kernel serves of VIRTIO_VSOCK_F_SEQPACKET.
  std::vector<EventFd> notifiers_;  // Per queue (the event queue's is never read).
  std::vector<EventFd> calls_;      // Receive, transmit.
  EventFd error_;

  // Activate and Reset (as virtio_blk::BlockDevice's): what Activate sets before handing the
  // queues over, the worker reads without it (QueueWorkers orders the hand-over).
  Mutex activation_mu_;
  virtio_pci::Interrupt interrupt_;
  std::function<void()> needs_reset_;
  uint64_t negotiated_ = 0;
  std::atomic<uint64_t> interrupts_[2] = {0, 0};
  // Last: destroyed (joined) first, before anything it uses.
  virtio::QueueWorkers<Queues> worker_;
};

}  // namespace vmmkit::virtio_vsock

#endif  // VMMKIT_VIRTIO_VSOCK_VSOCK_DEVICE_H_
