// File: virtio_net/backend.h
// -----------------------------------------------------------------------------
// NetBackend is where a virtio-net device's frames go and come from: one fd per queue pair, each
// read taking one packet (a 12-byte virtio_net_hdr, then an Ethernet frame) and each write giving
// one. A tap interface in a VMM (TapBackend), a SOCK_SEQPACKET socket pair in tests.
//
// Thread-safety: the fds are read and written from the device's workers, one per queue pair;
// SetOffloads and EnableQueues from one thread at a time (the device's activation and its
// control queue, which never run at once).

#ifndef VMMKIT_VIRTIO_NET_BACKEND_H_
#define VMMKIT_VIRTIO_NET_BACKEND_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "tap/tap.h"

namespace vmmkit::virtio_net {

class NetBackend {
 public:
  virtual ~NetBackend() = default;
  virtual uint16_t queue_pairs() const = 0;
  // Queue pair `index`'s fd (non-blocking).
  virtual int fd(uint16_t index) const = 0;
  // The receive offloads the guest takes (virtio-net GUEST_* feature bits): the backend hands over
  // frames with partial checksums or unsegmented only as far as these allow.
  virtual absl::Status SetOffloads(uint64_t guest_offloads) = 0;
  // Received frames go to the first `pairs` queue pairs only (the guest serves no others).
  virtual absl::Status EnableQueues(uint16_t pairs) = 0;
  // The host side's counters, where the backend has them (what vhost-net moved, which vmm does
  // not see). UNIMPLEMENTED by default.
  virtual absl::StatusOr<tap::TapStatistics> Statistics() const {
    return absl::UnimplementedError("no statistics");
  }
};

// A tap interface's queues as a backend.
class TapBackend : public NetBackend {
 public:
  explicit TapBackend(tap::Tap tap);
  uint16_t queue_pairs() const override { return tap_.num_queues(); }
  int fd(uint16_t index) const override { return tap_.queue(index).fd(); }
  // TUNSETOFFLOAD with the matching TUN_F_* flags (none without a checksum offload: the tap
  // segments only frames whose checksum it may leave).
  absl::Status SetOffloads(uint64_t guest_offloads) override;
  // TUNSETQUEUE on each queue of a multi-queue tap; nothing for one queue.
  absl::Status EnableQueues(uint16_t pairs) override;
  // Since the backend was made (a persistent tap's counters go back to its creation).
  absl::StatusOr<tap::TapStatistics> Statistics() const override;
  const tap::Tap& tap() const { return tap_; }

 private:
  tap::Tap tap_;
  tap::TapStatistics baseline_;
};

}  // namespace vmmkit::virtio_net

#endif  // VMMKIT_VIRTIO_NET_BACKEND_H_
