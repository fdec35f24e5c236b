#include "vhost/vhost.h"

#include <fcntl.h>
// linux/vhost.h pulls in virtio_ring.h, whose legacy layout helpers are C that C++ refuses.
#define VIRTIO_RING_NO_LEGACY
#include <linux/vhost.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/ioctl.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::vhost {

absl::StatusOr<ScopedFd> VhostDevice::OpenNode(const char* path) {
  ScopedFd fd(::open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus(errno, "open ", path);
  return fd;
}

absl::Status VhostDevice::SetOwner() const {
  return Ioctl(fd_.get(), VHOST_SET_OWNER, nullptr, name_, ": VHOST_SET_OWNER").status();
}

absl::StatusOr<uint64_t> VhostDevice::GetFeatures() const {
  uint64_t features = 0;
  RETURN_IF_ERROR(
      Ioctl(fd_.get(), VHOST_GET_FEATURES, &features, name_, ": VHOST_GET_FEATURES").status());
  return features;
}

absl::Status VhostDevice::SetFeatures(uint64_t features) const {
  return Ioctl(fd_.get(), VHOST_SET_FEATURES, &features, name_, ": VHOST_SET_FEATURES 0x",
               absl::Hex(features))
      .status();
}

absl::Status VhostDevice::SetMemTable(absl::Span<const MemoryRegion> regions) const {
  // struct vhost_memory ends in a flexible array of regions.
  std::vector<uint8_t> buffer(sizeof(vhost_memory) + regions.size() * sizeof(vhost_memory_region));
  auto* table = reinterpret_cast<vhost_memory*>(buffer.data());
  table->nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    table->regions[i] = {.guest_phys_addr = regions[i].guest_phys_addr,
                         .memory_size = regions[i].size,
                         .userspace_addr = regions[i].userspace_addr,
                         .flags_padding = 0};
  }
  return Ioctl(fd_.get(), VHOST_SET_MEM_TABLE, table, name_, ": VHOST_SET_MEM_TABLE ",
               regions.size(), " regions")
      .status();
}

absl::Status VhostDevice::SetVringNum(uint32_t index, uint32_t num) const {
  vhost_vring_state s = {.index = index, .num = num};
  return Ioctl(fd_.get(), VHOST_SET_VRING_NUM, &s, name_, ": VHOST_SET_VRING_NUM ring ", index,
               " num ", num)
      .status();
}

absl::Status VhostDevice::SetVringBase(uint32_t index, uint32_t base) const {
  vhost_vring_state s = {.index = index, .num = base};
  return Ioctl(fd_.get(), VHOST_SET_VRING_BASE, &s, name_, ": VHOST_SET_VRING_BASE ring ", index,
               " base ", base)
      .status();
}

absl::StatusOr<uint32_t> VhostDevice::GetVringBase(uint32_t index) const {
  vhost_vring_state s = {.index = index, .num = 0};
  RETURN_IF_ERROR(
      Ioctl(fd_.get(), VHOST_GET_VRING_BASE, &s, name_, ": VHOST_GET_VRING_BASE ring ", index)
          .status());
  return s.num;
}

absl::Status VhostDevice::SetVringAddr(const VringAddr& addr) const {
  vhost_vring_addr a = {.index = addr.index,
                        .flags = 0,
                        .desc_user_addr = addr.desc,
                        .used_user_addr = addr.used,
                        .avail_user_addr = addr.avail,
                        .log_guest_addr = 0};
  return Ioctl(fd_.get(), VHOST_SET_VRING_ADDR, &a, name_, ": VHOST_SET_VRING_ADDR ring ",
               addr.index)
      .status();
}

absl::Status VhostDevice::SetVringFile(unsigned long request, const char* op, uint32_t index,
                                       int fd) const {
  vhost_vring_file f = {.index = index, .fd = fd};
  return Ioctl(fd_.get(), request, &f, name_, ": ", op, " ring ", index).status();
}

absl::Status VhostDevice::SetVringKick(uint32_t index, int fd) const {
  return SetVringFile(VHOST_SET_VRING_KICK, "VHOST_SET_VRING_KICK", index, fd);
}

absl::Status VhostDevice::SetVringCall(uint32_t index, int fd) const {
  return SetVringFile(VHOST_SET_VRING_CALL, "VHOST_SET_VRING_CALL", index, fd);
}

absl::Status VhostDevice::SetVringErr(uint32_t index, int fd) const {
  return SetVringFile(VHOST_SET_VRING_ERR, "VHOST_SET_VRING_ERR", index, fd);
}

absl::StatusOr<VhostNet> VhostNet::Open() {
  ASSIGN_OR_RETURN(ScopedFd fd, OpenNode("/dev/vhost-net"));
  return VhostNet(std::move(fd), "vhost-net");
}

absl::Status VhostNet::SetBackend(uint32_t index, int fd) const {
  vhost_vring_file f = {.index = index, .fd = fd};
  return Ioctl(this->fd(), VHOST_NET_SET_BACKEND, &f, name(), ": VHOST_NET_SET_BACKEND ring ",
               index, fd < 0 ? " (stop)" : "")
      .status();
}

absl::StatusOr<VhostVsock> VhostVsock::Open() {
  ASSIGN_OR_RETURN(ScopedFd fd, OpenNode("/dev/vhost-vsock"));
  return VhostVsock(std::move(fd), "vhost-vsock");
}

absl::Status VhostVsock::SetGuestCid(uint64_t cid) const {
  return Ioctl(fd(), VHOST_VSOCK_SET_GUEST_CID, &cid, name(), ": VHOST_VSOCK_SET_GUEST_CID ", cid)
      .status();
}

absl::Status VhostVsock::SetRunning(bool running) const {
  int value = running ? 1 : 0;
  return Ioctl(fd(), VHOST_VSOCK_SET_RUNNING, &value, name(), ": VHOST_VSOCK_SET_RUNNING ", value)
      .status();
}

absl::StatusOr<uint64_t> SetUp(VhostDevice& device, const GuestMemory& memory, uint64_t needed) {
  RETURN_IF_ERROR(device.SetOwner());
  // A kernel without backend features speaks the first version (the same layout).
  if (absl::StatusOr<uint64_t> backend = device.GetBackendFeatures();
      backend.ok() && (*backend & kBackendIotlbMsgV2) != 0) {
    RETURN_IF_ERROR(device.SetBackendFeatures(kBackendIotlbMsgV2));
  }
  ASSIGN_OR_RETURN(uint64_t features, device.GetFeatures());
  if ((features & needed) != needed) {
    return absl::FailedPreconditionError(
        absl::StrCat("the kernel's device lacks features 0x", absl::Hex(needed & ~features)));
  }
  std::vector<MemoryRegion> regions;
  for (const std::shared_ptr<GuestRegion>& r : memory.regions()) {
    regions.push_back({.guest_phys_addr = r->start().raw(),
                       .size = r->size(),
                       .userspace_addr = reinterpret_cast<uint64_t>(r->host_address())});
  }
  RETURN_IF_ERROR(device.SetMemTable(regions));
  return features;
}

absl::Status StartVring(const VhostDevice& device, const GuestMemory* memory, uint32_t index,
                        const virtio::SplitQueue& queue, VringFds fds) {
  const virtio::QueueConfig& c = queue.config();
  const uint64_t size = c.size;
  VringAddr addr = {
      .index = index, .desc = c.desc.raw(), .avail = c.avail.raw(), .used = c.used.raw()};
  if (memory != nullptr) {
    const std::pair<const char*, uint64_t*> areas[] = {
        {"descriptor table", &addr.desc}, {"avail ring", &addr.avail}, {"used ring", &addr.used}};
    const uint64_t lengths[] = {16 * size, 6 + 2 * size, 6 + 8 * size};
    for (size_t i = 0; i < 3; ++i) {
      absl::StatusOr<uint8_t*> host = memory->Translate(GuestAddress(*areas[i].second), lengths[i]);
      if (!host.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("ring ", index, "'s ", areas[i].first, " is not in guest RAM"));
      }
      *areas[i].second = reinterpret_cast<uint64_t>(*host);
    }
  }
  RETURN_IF_ERROR(device.SetVringNum(index, c.size));
  RETURN_IF_ERROR(device.SetVringBase(index, queue.next_avail()));
  RETURN_IF_ERROR(device.SetVringAddr(addr));
  RETURN_IF_ERROR(device.SetVringKick(index, fds.kick));
  RETURN_IF_ERROR(device.SetVringCall(index, fds.call));
  return device.SetVringErr(index, fds.err);
}

absl::StatusOr<uint64_t> VhostDevice::GetBackendFeatures() const {
  uint64_t features = 0;
  RETURN_IF_ERROR(
      Ioctl(fd_.get(), VHOST_GET_BACKEND_FEATURES, &features, name_, ": VHOST_GET_BACKEND_FEATURES")
          .status());
  return features;
}

absl::Status VhostDevice::SetBackendFeatures(uint64_t features) {
  RETURN_IF_ERROR(Ioctl(fd_.get(), VHOST_SET_BACKEND_FEATURES, &features, name_,
                        ": VHOST_SET_BACKEND_FEATURES 0x", absl::Hex(features))
                      .status());
  // The fd's messages are in the form the kernel now expects (it reads the flag per message).
  v2_ = (features & kBackendIotlbMsgV2) != 0;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<IotlbMessage>> VhostDevice::ReadIotlb() const {
  std::array<uint8_t, kIotlbWireSize> wire;
  const ssize_t n = ::read(fd_.get(), wire.data(), wire.size());
  if (n < 0 && errno == EAGAIN) return std::nullopt;
  if (n < 0) return ErrnoStatus(errno, name_, ": read an IOTLB message");
  if (n == 0) return std::nullopt;
  ASSIGN_OR_RETURN(IotlbMessage m,
                   DecodeIotlb(absl::MakeConstSpan(wire.data(), static_cast<size_t>(n))));
  return m;
}

absl::Status VhostDevice::WriteIotlb(const IotlbMessage& message) const {
  const std::array<uint8_t, kIotlbWireSize> wire = EncodeIotlb(message, v2_);
  const ssize_t n = ::write(fd_.get(), wire.data(), wire.size());
  if (n < 0) {
    return ErrnoStatus(errno, name_, ": IOTLB message ", int{message.type}, " iova 0x",
                       absl::Hex(message.iova), " size 0x", absl::Hex(message.size));
  }
  if (static_cast<size_t>(n) != wire.size()) {
    return absl::InternalError(absl::StrCat(name_, ": IOTLB message written short (", n, ")"));
  }
  return absl::OkStatus();
}

static_assert(sizeof(vhost_msg_v2) == kIotlbWireSize && sizeof(vhost_msg) == kIotlbWireSize);
static_assert(offsetof(vhost_msg_v2, iotlb) == 8 && offsetof(vhost_msg, iotlb) == 8);

std::array<uint8_t, kIotlbWireSize> EncodeIotlb(const IotlbMessage& message, bool v2) {
  vhost_msg_v2 m = {};
  m.type = v2 ? VHOST_IOTLB_MSG_V2 : VHOST_IOTLB_MSG;
  m.iotlb = {.iova = message.iova,
             .size = message.size,
             .uaddr = message.uaddr,
             .perm = message.perm,
             .type = message.type};
  std::array<uint8_t, kIotlbWireSize> wire;
  std::memcpy(wire.data(), &m, sizeof(m));
  return wire;
}

absl::StatusOr<IotlbMessage> DecodeIotlb(absl::Span<const uint8_t> wire) {
  if (wire.size() != kIotlbWireSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("vhost: an IOTLB message of ", wire.size(), " bytes"));
  }
  vhost_msg_v2 m;
  std::memcpy(&m, wire.data(), sizeof(m));
  // The first version's type is an int: its upper half is padding there, the asid in version 2.
  if (m.type != VHOST_IOTLB_MSG && m.type != VHOST_IOTLB_MSG_V2) {
    return absl::InvalidArgumentError(absl::StrCat("vhost: message kind ", m.type));
  }
  if (m.type == VHOST_IOTLB_MSG_V2 && m.asid != 0) {
    return absl::InvalidArgumentError(absl::StrCat("vhost: address space ", m.asid));
  }
  return IotlbMessage{.type = m.iotlb.type,
                      .iova = m.iotlb.iova,
                      .size = m.iotlb.size,
                      .uaddr = m.iotlb.uaddr,
                      .perm = m.iotlb.perm};
}

std::vector<uint32_t> RingIoctls() {
  return {VHOST_SET_FEATURES,    VHOST_SET_VRING_NUM,    VHOST_SET_VRING_BASE, VHOST_GET_VRING_BASE,
          VHOST_SET_VRING_ADDR,  VHOST_SET_VRING_KICK,   VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR,
          VHOST_NET_SET_BACKEND, VHOST_VSOCK_SET_RUNNING};
}

std::vector<uint32_t> SetupIoctls() {
  return {VHOST_SET_OWNER,           VHOST_GET_FEATURES,         VHOST_SET_MEM_TABLE,
          VHOST_VSOCK_SET_GUEST_CID, VHOST_GET_BACKEND_FEATURES, VHOST_SET_BACKEND_FEATURES};
}

}  // namespace vmmkit::vhost
