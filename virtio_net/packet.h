// File: virtio_net/packet.h
// -----------------------------------------------------------------------------
// Frames between virtqueue chains and the backend. ParseTx checks a transmit chain (the driver's
// header and frame, device-readable only, within size) and names its bytes as bus-address
// ranges; WriteRx lays a received packet (header and frame, as the backend gave it) into one or
// more receive chains, setting num_buffers, and says how much each chain got.
//
//   ASSIGN_OR_RETURN(TxFrame tx, ParseTx(chain));       // then gather tx.ranges and send
//   ASSIGN_OR_RETURN(std::vector<uint32_t> written, WriteRx(packet, chains, dma));
//
// Both run on what the guest controls: buffer addresses and sizes are the ring's (already checked
// by SplitQueue not to wrap), and every access goes through the DmaSpace.

#ifndef VMMKIT_VIRTIO_NET_PACKET_H_
#define VMMKIT_VIRTIO_NET_PACKET_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/dma_space.h"
#include "virtio/queue.h"

namespace vmmkit::virtio_net {

struct TxFrame {
  std::vector<DmaRange> ranges;  // The chain's readable buffers, empty ones left out.
  uint32_t bytes = 0;            // Header and frame.
};

// INVALID_ARGUMENT for a chain with device-writable buffers, fewer bytes than a header and an
// Ethernet header, or more than kMaxPacket.
absl::StatusOr<TxFrame> ParseTx(const virtio::DescriptorChain& chain);

// How many receive chains `packet` needs, given the first chains' writable sizes: the fewest whose
// sizes add up to it (mergeable buffers), or one chain that holds it all (without). 0 if
// `writable` is not enough yet (more chains are needed, or without mergeable buffers the first
// one is too small: see FitsOneChain).
size_t ChainsNeeded(uint64_t packet_bytes, absl::Span<const uint64_t> writable, bool mergeable);

// Sets `packet`'s num_buffers (it is a virtio_net_hdr, then the frame) to chains.size() and writes
// it across `chains` in order. Returns the bytes written to each. INVALID_ARGUMENT if
// the chains cannot hold it or the first cannot hold the header; the DMA
// space's error for a buffer it cannot write (the chains then hold part of the packet).
absl::StatusOr<std::vector<uint32_t>> WriteRx(absl::Span<uint8_t> packet,
                                              absl::Span<const virtio::DescriptorChain> chains,
                                              const DmaSpace& dma);

}  // namespace vmmkit::virtio_net

#endif  // VMMKIT_VIRTIO_NET_PACKET_H_
