#include "virtio_net/packet.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {

absl::StatusOr<TxFrame> ParseTx(const virtio::DescriptorChain& chain) {
  if (!chain.writable.empty()) {
    return absl::InvalidArgumentError("virtio-net: transmit chain with device-writable buffers");
  }
  if (chain.readable_bytes < kHeaderSize + kEthHeaderSize || chain.readable_bytes > kMaxPacket) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-net: transmit chain of ", chain.readable_bytes, " bytes (",
                     kHeaderSize + kEthHeaderSize, " to ", kMaxPacket, ")"));
  }
  TxFrame tx;
  tx.bytes = static_cast<uint32_t>(chain.readable_bytes);
  for (const virtio::Buffer& b : chain.readable) {
    if (b.len > 0) tx.ranges.push_back({b.addr, b.len});
  }
  return tx;
}

size_t ChainsNeeded(uint64_t packet_bytes, absl::Span<const uint64_t> writable, bool mergeable) {
  if (!mergeable) return !writable.empty() && writable[0] >= packet_bytes ? 1 : 0;
  uint64_t room = 0;
  for (size_t i = 0; i < writable.size(); ++i) {
    room += writable[i];
    if (room >= packet_bytes) return i + 1;
  }
  return 0;
}

absl::StatusOr<std::vector<uint32_t>> WriteRx(absl::Span<uint8_t> packet,
                                              absl::Span<const virtio::DescriptorChain> chains,
                                              const DmaSpace& dma) {
  if (packet.size() < kHeaderSize || chains.empty() || chains.size() > 0xffff ||
      chains[0].writable_bytes < kHeaderSize) {
    return absl::InvalidArgumentError("virtio-net: receive chains too small for a header");
  }
  uint64_t room = 0;
  for (const virtio::DescriptorChain& c : chains) room += c.writable_bytes;
  if (room < packet.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-net: ", packet.size(), "-byte packet, ", room, " bytes of buffers"));
  }
  const uint16_t buffers = static_cast<uint16_t>(chains.size());
  std::memcpy(packet.data() + kNumBuffersOffset, &buffers, sizeof(buffers));
  std::vector<uint32_t> written(chains.size(), 0);
  size_t at = 0;
  for (size_t i = 0; i < chains.size() && at < packet.size(); ++i) {
    for (const virtio::Buffer& b : chains[i].writable) {
      if (at == packet.size()) break;
      const size_t len = std::min<size_t>(b.len, packet.size() - at);
      if (absl::Status s = dma.Write(b.addr, packet.subspan(at, len)); !s.ok()) return s;
      written[i] += static_cast<uint32_t>(len);
      at += len;
    }
  }
  return written;
}

}  // namespace vmmkit::virtio_net
