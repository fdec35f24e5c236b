#include "vhost/vhost.h"

#include <fcntl.h>
// linux/vhost.h pulls in virtio_ring.h, whose legacy layout helpers are C that C++ refuses.
#define VIRTIO_RING_NO_LEGACY
#include <linux/vhost.h>

#include <cerrno>
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

absl::StatusOr<uint64_t> SetUp(const VhostDevice& device, const GuestMemory& memory,
                               uint64_t needed) {
  RETURN_IF_ERROR(device.SetOwner());
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

absl::Status StartVring(const VhostDevice& device, const GuestMemory& memory, uint32_t index,
                        const virtio::SplitQueue& queue, VringFds fds) {
  const virtio::QueueConfig& c = queue.config();
  const uint64_t size = c.size;
  const std::pair<const char*, absl::StatusOr<uint8_t*>> areas[] = {
      {"descriptor table", memory.Translate(GuestAddress(c.desc.raw()), 16 * size)},
      {"avail ring", memory.Translate(GuestAddress(c.avail.raw()), 6 + 2 * size)},
      {"used ring", memory.Translate(GuestAddress(c.used.raw()), 6 + 8 * size)}};
  for (const auto& [what, host] : areas) {
    if (!host.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ring ", index, "'s ", what, " is not in guest RAM"));
    }
  }
  RETURN_IF_ERROR(device.SetVringNum(index, c.size));
  RETURN_IF_ERROR(device.SetVringBase(index, queue.next_avail()));
  RETURN_IF_ERROR(device.SetVringAddr({.index = index,
                                       .desc = reinterpret_cast<uint64_t>(*areas[0].second),
                                       .avail = reinterpret_cast<uint64_t>(*areas[1].second),
                                       .used = reinterpret_cast<uint64_t>(*areas[2].second)}));
  RETURN_IF_ERROR(device.SetVringKick(index, fds.kick));
  RETURN_IF_ERROR(device.SetVringCall(index, fds.call));
  return device.SetVringErr(index, fds.err);
}

std::vector<uint32_t> RingIoctls() {
  return {VHOST_SET_FEATURES,    VHOST_SET_VRING_NUM,    VHOST_SET_VRING_BASE, VHOST_GET_VRING_BASE,
          VHOST_SET_VRING_ADDR,  VHOST_SET_VRING_KICK,   VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR,
          VHOST_NET_SET_BACKEND, VHOST_VSOCK_SET_RUNNING};
}

std::vector<uint32_t> SetupIoctls() {
  return {VHOST_SET_OWNER, VHOST_GET_FEATURES, VHOST_SET_MEM_TABLE, VHOST_VSOCK_SET_GUEST_CID};
}

}  // namespace vmmkit::vhost
