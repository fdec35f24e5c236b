// File: virtio_net/protocol.h
// -----------------------------------------------------------------------------
// virtio-net's wire format (virtio 1.x, little-endian as on x86-64): feature bits, the header
// ahead of every frame, the configuration space and the control queue's commands.

#ifndef VMMKIT_VIRTIO_NET_PROTOCOL_H_
#define VMMKIT_VIRTIO_NET_PROTOCOL_H_

#include <cstdint>

namespace vmmkit::virtio_net {

inline constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// Feature bits.
inline constexpr uint64_t kFeatureCsum = Bit(0);       // The driver may leave TX checksums.
inline constexpr uint64_t kFeatureGuestCsum = Bit(1);  // RX frames may carry partial ones.
inline constexpr uint64_t kFeatureCtrlGuestOffloads = Bit(2);
inline constexpr uint64_t kFeatureMac = Bit(5);
inline constexpr uint64_t kFeatureGuestTso4 = Bit(7);
inline constexpr uint64_t kFeatureGuestTso6 = Bit(8);
inline constexpr uint64_t kFeatureGuestEcn = Bit(9);
inline constexpr uint64_t kFeatureGuestUfo = Bit(10);
inline constexpr uint64_t kFeatureHostTso4 = Bit(11);
inline constexpr uint64_t kFeatureHostTso6 = Bit(12);
inline constexpr uint64_t kFeatureHostEcn = Bit(13);
inline constexpr uint64_t kFeatureMrgRxbuf = Bit(15);
inline constexpr uint64_t kFeatureStatus = Bit(16);
inline constexpr uint64_t kFeatureCtrlVq = Bit(17);
inline constexpr uint64_t kFeatureCtrlRx = Bit(18);
inline constexpr uint64_t kFeatureMq = Bit(22);
inline constexpr uint64_t kFeatureCtrlMacAddr = Bit(23);
// The receive offloads a driver can turn on and off (CTRL_GUEST_OFFLOADS): the GUEST_* bits.
inline constexpr uint64_t kGuestOffloads =
    kFeatureGuestCsum | kFeatureGuestTso4 | kFeatureGuestTso6 | kFeatureGuestEcn | kFeatureGuestUfo;

// struct virtio_net_hdr_v1: ahead of every frame in both directions, with num_buffers (virtio
// 1.x has it whether MRG_RXBUF is negotiated or not).
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHdr) == 12);
inline constexpr uint32_t kHeaderSize = sizeof(VirtioNetHdr);
inline constexpr uint32_t kNumBuffersOffset = 10;

// The largest frame either way, header included: a 64 KiB GSO frame and its Ethernet and VLAN
// headers (as Firecracker and Cloud Hypervisor bound it).
inline constexpr uint32_t kMaxPacket = kHeaderSize + 65550;
// The shortest frame a device returns to the driver: an Ethernet header.
inline constexpr uint32_t kEthHeaderSize = 14;

// struct virtio_net_config: mac[6], status, max_virtqueue_pairs.
inline constexpr uint32_t kConfigMac = 0;
inline constexpr uint32_t kConfigStatus = 6;
inline constexpr uint32_t kConfigMaxPairs = 8;
inline constexpr uint32_t kConfigSize = 10;
inline constexpr uint16_t kStatusLinkUp = 1;

// Control queue: a chain of {class, command, data...} the device reads and one ack byte it writes.
inline constexpr uint8_t kCtrlOk = 0;
inline constexpr uint8_t kCtrlErr = 1;
inline constexpr uint8_t kCtrlRx = 0;
inline constexpr uint8_t kCtrlRxPromisc = 0;
inline constexpr uint8_t kCtrlRxAllMulti = 1;
inline constexpr uint8_t kCtrlMac = 1;
inline constexpr uint8_t kCtrlMacTableSet = 0;
inline constexpr uint8_t kCtrlMacAddrSet = 1;
inline constexpr uint8_t kCtrlMq = 4;
inline constexpr uint8_t kCtrlMqPairsSet = 0;
inline constexpr uint8_t kCtrlGuestOffloads = 5;
inline constexpr uint8_t kCtrlGuestOffloadsSet = 0;

}  // namespace vmmkit::virtio_net

#endif  // VMMKIT_VIRTIO_NET_PROTOCOL_H_
