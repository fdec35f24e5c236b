// File: vhost/vhost.h
// -----------------------------------------------------------------------------
// The kernel's vhost devices, which serve a virtio device's queues inside the kernel: VhostNet
// (/dev/vhost-net: a virtio-net queue pair's data path between guest RAM and a tap) and
// VhostVsock (/dev/vhost-vsock: virtio-vsock's data path to the host's AF_VSOCK sockets). One
// class per kind of fd, one method per ioctl; VhostDevice has the ioctls both share.
//
//   ASSIGN_OR_RETURN(vhost::VhostNet net, vhost::VhostNet::Open());
//   RETURN_IF_ERROR(net.SetOwner());
//   RETURN_IF_ERROR(net.SetFeatures(negotiated & net_features));
//   RETURN_IF_ERROR(net.SetMemTable(regions));               // guest RAM -> vmm's addresses
//   RETURN_IF_ERROR(net.SetVringNum(0, 256)); ... SetVringBase, SetVringAddr, SetVringKick/Call
//   RETURN_IF_ERROR(net.SetBackend(0, tap_fd));             // the kernel serves ring 0 now
//
// What the kernel checks: every buffer a guest's descriptor names must lie in the memory table (a
// ring naming anything else stops, raising the error eventfd), ring addresses are vmm's own
// (host virtual) addresses, and only the process that called SetOwner may drive the device.
//
// Thread-safety: the kernel's; a VMM drives one device from one thread at a time.

#ifndef VMMKIT_VHOST_VHOST_H_
#define VMMKIT_VHOST_VHOST_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/scoped_fd.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace vmmkit::vhost {

// Guest RAM as the kernel reaches it: [guest_phys_addr, + size) is vmm's [userspace_addr, + size).
struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t size;
  uint64_t userspace_addr;
};

// Where ring `index`'s three areas are in vmm's address space.
struct VringAddr {
  uint32_t index;
  uint64_t desc;
  uint64_t avail;
  uint64_t used;
};

// VHOST_F_LOG_ALL and the bit vhost-net reads as "it adds the virtio-net header" (27): a VMM with a
// tap that carries the header (IFF_VNET_HDR) leaves both off.
inline constexpr uint64_t kFeatureLogAll = uint64_t{1} << 26;
inline constexpr uint64_t kFeatureNetVirtioNetHdr = uint64_t{1} << 27;
// VIRTIO_F_ACCESS_PLATFORM set with SetFeatures turns on the device's IOTLB: ring and buffer
// addresses are then I/O virtual addresses, which the kernel asks the VMM to translate (a MISS
// message on the fd) and the VMM answers (UPDATE), or takes back (INVALIDATE). Once on, it stays
// on for the fd's life (6.1 has no way back).
inline constexpr uint64_t kFeatureAccessPlatform = uint64_t{1} << 33;
// The backend feature (VHOST_SET_BACKEND_FEATURES, a mask of bit numbers) for version 2 messages.
inline constexpr uint64_t kBackendIotlbMsgV2 = uint64_t{1} << 1;

// One IOTLB message (struct vhost_iotlb_msg). Types as the kernel's: kMiss (the kernel asks; iova
// is the address it missed, perm the access), kUpdate (iova..iova+size is vmm's uaddr.., with
// perm), kInvalidate (drop whatever overlaps iova..iova+size).
struct IotlbMessage {
  enum Type : uint8_t { kMiss = 1, kUpdate = 2, kInvalidate = 3, kAccessFail = 4 };
  enum Perm : uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3 };
  uint8_t type = 0;
  uint64_t iova = 0, size = 0, uaddr = 0;
  uint8_t perm = 0;
  friend bool operator==(const IotlbMessage&, const IotlbMessage&) = default;
};
// The wire form: struct vhost_msg_v2 (72 bytes), or the first version's struct vhost_msg (the
// same size; the payload at the same offset).
inline constexpr size_t kIotlbWireSize = 72;
std::array<uint8_t, kIotlbWireSize> EncodeIotlb(const IotlbMessage& message, bool v2);
// INVALID_ARGUMENT for a buffer of another size, another message kind, or an address space
// (asid) other than 0.
absl::StatusOr<IotlbMessage> DecodeIotlb(absl::Span<const uint8_t> wire);

class VhostDevice {
 public:
  VhostDevice(VhostDevice&&) = default;
  VhostDevice& operator=(VhostDevice&&) = default;

  int fd() const { return fd_.get(); }

  // VHOST_SET_OWNER: this process drives the device (the kernel starts its worker thread).
  absl::Status SetOwner() const;
  // VHOST_GET_FEATURES / VHOST_SET_FEATURES: the virtio features the device serves; setting one it
  // lacks is refused (EOPNOTSUPP).
  absl::StatusOr<uint64_t> GetFeatures() const;
  absl::Status SetFeatures(uint64_t features) const;
  // VHOST_SET_MEM_TABLE: at most 64 regions (the vhost module's default max_mem_regions).
  absl::Status SetMemTable(absl::Span<const MemoryRegion> regions) const;
  // VHOST_SET_VRING_NUM, _BASE (the next avail index to serve), _ADDR.
  absl::Status SetVringNum(uint32_t index, uint32_t num) const;
  absl::Status SetVringBase(uint32_t index, uint32_t base) const;
  // VHOST_GET_VRING_BASE: the next avail index it would serve (after the ring is stopped).
  absl::StatusOr<uint32_t> GetVringBase(uint32_t index) const;
  absl::Status SetVringAddr(const VringAddr& addr) const;
  // VHOST_SET_VRING_KICK / _CALL / _ERR: eventfds (-1 to unbind) the guest's notifications come
  // in on, the device's interrupts go out on, and a ring's errors are signalled on.
  absl::Status SetVringKick(uint32_t index, int fd) const;
  absl::Status SetVringCall(uint32_t index, int fd) const;
  absl::Status SetVringErr(uint32_t index, int fd) const;
  // VHOST_GET_BACKEND_FEATURES / VHOST_SET_BACKEND_FEATURES (kBackendIotlbMsgV2).
  absl::StatusOr<uint64_t> GetBackendFeatures() const;
  absl::Status SetBackendFeatures(uint64_t features);
  // The fd's IOTLB messages: one read (nullopt when none is queued) and one write, in the
  // version SetBackendFeatures chose (the first without it).
  absl::StatusOr<std::optional<IotlbMessage>> ReadIotlb() const;
  absl::Status WriteIotlb(const IotlbMessage& message) const;

 protected:
  // Opens `path` (a vhost device node). NOT_FOUND where the kernel has no such device.
  static absl::StatusOr<ScopedFd> OpenNode(const char* path);
  VhostDevice(ScopedFd fd, const char* name) : fd_(std::move(fd)), name_(name) {}
  const char* name() const { return name_; }

 private:
  absl::Status SetVringFile(unsigned long request, const char* op, uint32_t index, int fd) const;
  ScopedFd fd_;
  const char* name_;
  bool v2_ = false;  // SetBackendFeatures turned version 2 messages on.
};

class VhostNet : public VhostDevice {
 public:
  static absl::StatusOr<VhostNet> Open();
  // VHOST_NET_SET_BACKEND: ring `index` (0 receive, 1 transmit) moves frames to and from `fd` (a
  // tap queue); -1 stops the ring (the kernel returns what it held to the tap).
  absl::Status SetBackend(uint32_t index, int fd) const;

 private:
  using VhostDevice::VhostDevice;
};

class VhostVsock : public VhostDevice {
 public:
  static absl::StatusOr<VhostVsock> Open();
  // VHOST_VSOCK_SET_GUEST_CID: the guest's address (3 to 2^32 - 2); EADDRINUSE (ALREADY_EXISTS)
  // for one another VM on this host holds.
  absl::Status SetGuestCid(uint64_t cid) const;
  // VHOST_VSOCK_SET_RUNNING: start or stop serving both rings.
  absl::Status SetRunning(bool running) const;

 private:
  using VhostDevice::VhostDevice;
};

// Takes `device` for this process (SetOwner), checks that it serves the `needed` features
// (FAILED_PRECONDITION naming the ones it lacks), has it speak version 2 IOTLB messages where it
// can, and gives it `memory` as its memory table (which the kernel wants even when the IOTLB
// translates). Returns every feature the device serves.
absl::StatusOr<uint64_t> SetUp(VhostDevice& device, const GuestMemory& memory, uint64_t needed);

// The eventfds the kernel serves a ring with: the guest's notifications come in on `kick`, the
// device's interrupts go out on `call`, the ring's errors on `err`.
struct VringFds {
  int kick, call, err;
};

// Hands `queue` (a virtqueue the driver set up in guest RAM) to `device` as ring `index`: its size,
// next avail index, areas and eventfds. Without ACCESS_PLATFORM (`memory`) the areas are
// guest-physical and go as vmm's addresses (each whole area must lie in `memory`, else
// INVALID_ARGUMENT naming it); with it (null `memory`: the device's IOTLB is on) they go as the
// driver wrote them, I/O virtual addresses the kernel translates through the IOTLB.
absl::Status StartVring(const VhostDevice& device, const GuestMemory* memory, uint32_t index,
                        const virtio::SplitQueue& queue, VringFds fds);

// For seccomp allow-lists: the ioctls that hand rings to the kernel and take them back (a
// device's activation and reset), and those that set a device up (open, owner, memory table).
std::vector<uint32_t> RingIoctls();
std::vector<uint32_t> SetupIoctls();

}  // namespace vmmkit::vhost

#endif  // VMMKIT_VHOST_VHOST_H_
