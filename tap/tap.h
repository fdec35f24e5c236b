// File: tap/tap.h
// -----------------------------------------------------------------------------
// TapQueue is one open file of a Linux tap interface (/dev/net/tun attached with TUNSETIFF): a
// queue of it, from which each read takes one Ethernet frame and to which each write gives one,
// every frame preceded by a virtio_net_hdr (IFF_VNET_HDR) so that checksum and segmentation
// offloads pass between the guest and the host's stack. One method per ioctl.
//
// Tap is the interface's queues, opened together by name (IFF_MULTI_QUEUE when more than one),
// or adopted as fds a VMM's parent opened (a VMM without CAP_NET_ADMIN, or one handed a tap in
// another network namespace).
//
//   ASSIGN_OR_RETURN(tap::Tap tap, tap::Tap::Open("vmtap0", /*queues=*/2));
//   RETURN_IF_ERROR(tap.queue(0).SetOffload(TUN_F_CSUM | TUN_F_TSO4));
//   ssize_t n = ::read(tap.queue(1).fd(), frame, sizeof(frame));  // non-blocking
//
// Attaching to an existing interface needs CAP_NET_ADMIN or the interface's owner (ip tuntap add
// ... user U); creating one needs CAP_NET_ADMIN. Every fd is non-blocking and close-on-exec.
//
// Thread-safety: a TapQueue's reads and writes from any thread (the kernel's); the ioctls change
// the interface for every queue, so a VMM makes them from one thread at a time.

#ifndef VMMKIT_TAP_TAP_H_
#define VMMKIT_TAP_TAP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"

namespace vmmkit::tap {

// The virtio_net_hdr the tap reads and writes ahead of each frame (with num_buffers: virtio 1.x).
inline constexpr int kVnetHeaderSize = 12;
// At most this many queues (the kernel's MAX_TAP_QUEUES is 256; a VMM needs one per vCPU).
inline constexpr uint16_t kMaxQueues = 16;

class TapQueue {
 public:
  // Opens /dev/net/tun and attaches it to the tap `name` (creating it if it does not exist, as
  // the kernel does), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, plus IFF_MULTI_QUEUE if `multi_queue`.
  // INVALID_ARGUMENT for an empty name or one of IFNAMSIZ or more bytes; the kernel's error
  // naming TUNSETIFF otherwise (PERMISSION_DENIED without the right; INVALID_ARGUMENT for an
  // interface that is not a tap, or whose multi-queue flag differs).
  static absl::StatusOr<TapQueue> Open(const std::string& name, bool multi_queue);
  // Adopts an fd already attached to a tap. FAILED_PRECONDITION for an fd that is not a tap
  // (TUNGETIFF) or whose interface lacks IFF_VNET_HDR or has IFF_NO_PI unset.
  static absl::StatusOr<TapQueue> Adopt(ScopedFd fd);

  TapQueue(TapQueue&&) = default;
  TapQueue& operator=(TapQueue&&) = default;

  int fd() const { return fd_.get(); }
  // The interface's name.
  const std::string& name() const { return name_; }
  // TUNGETIFF: the interface's IFF_* flags.
  absl::StatusOr<uint32_t> Flags() const;

  // TUNSETOFFLOAD: the offloads (TUN_F_CSUM, TUN_F_TSO4, ...) the reader accepts in the frames it
  // reads: what the kernel may leave to it (partial checksums, segmentation). 0: none, every
  // frame read is whole and checksummed.
  absl::Status SetOffload(uint32_t tun_flags) const;
  // TUNSETVNETHDRSZ: the header's size in bytes (10, or 12 with num_buffers).
  absl::Status SetVnetHeaderSize(int bytes) const;
  // TUNSETSNDBUF: how many bytes of written frames the host's stack may hold before writes fail
  // with EAGAIN (or vhost-net waits).
  absl::Status SetSendBuffer(int bytes) const;
  // TUNSETQUEUE: attaches (IFF_ATTACH_QUEUE) or detaches (IFF_DETACH_QUEUE) this queue; the kernel
  // delivers frames only to attached queues. Multi-queue taps only.
  absl::Status SetQueueEnabled(bool enabled) const;

 private:
  TapQueue(ScopedFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  ScopedFd fd_;
  std::string name_;
};

// The interface's counters as the host's stack sees them: what the tap received is what the
// guest sent.
struct TapStatistics {
  uint64_t rx_packets = 0, rx_bytes = 0, rx_dropped = 0;
  uint64_t tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
};

class Tap {
 public:
  // Opens `queues` (1..kMaxQueues) queues of the tap `name`, each set up as Configure says.
  static absl::StatusOr<Tap> Open(const std::string& name, uint16_t queues);
  // Adopts fds opened by someone else, one per queue, all attached to the same tap (a
  // multi-queue one if more than one), each set up as Configure says. INVALID_ARGUMENT for no fd,
  // more than kMaxQueues, or fds of different interfaces.
  static absl::StatusOr<Tap> Adopt(std::vector<ScopedFd> fds);

  Tap(Tap&&) = default;
  Tap& operator=(Tap&&) = default;

  uint16_t num_queues() const { return static_cast<uint16_t>(queues_.size()); }
  const TapQueue& queue(uint16_t index) const { return queues_[index]; }
  const std::string& name() const { return queues_.front().name(); }
  // /sys/class/net/NAME/statistics. The error of the first counter that cannot be read.
  absl::StatusOr<TapStatistics> Statistics() const;

 private:
  explicit Tap(std::vector<TapQueue> queues) : queues_(std::move(queues)) {}
  // The header size (kVnetHeaderSize), no offloads until a reader asks for some, and an unbounded
  // send buffer (as QEMU's): the kernel's default (net.core.wmem_default, about 200 KiB) makes
  // writers wait on the host's receivers, a guest's bulk sends stall behind them.
  static absl::Status Configure(const TapQueue& q);
  std::vector<TapQueue> queues_;
};

}  // namespace vmmkit::tap

#endif  // VMMKIT_TAP_TAP_H_
