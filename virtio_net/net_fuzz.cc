// Fuzzes what a hostile driver hands virtio-net: transmit chains of any shape, control commands
// of any class, command, length and table counts, and receive chains of any sizes for packets of
// any length. Checked against the rules: an accepted transmit frame is within size and is the
// chain's readable bytes; a command's outcome is kCtrlOk only for offered features, pairs within
// range and offloads negotiated; a refused command changes nothing; a received packet lands whole,
// with num_buffers naming the chains it used, and no chain is written past its buffers.
#include <cstdint>
#include <cstring>
#include <vector>

#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "tools/testing/fuzz_input.h"
#include "virtio/queue.h"
#include "virtio/testing/driver_queue.h"
#include "virtio_net/control.h"
#include "virtio_net/packet.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {
namespace {

using fuzzing::Require;

constexpr uint64_t kRam = 256 << 10;

virtio::DescriptorChain TakeChain(fuzzing::FuzzInput& in, bool writable_only) {
  virtio::DescriptorChain chain{.head = in.Take<uint8_t>(), .readable = {}, .writable = {}};
  for (int i = 0, n = in.Take<uint8_t>() % 8; i < n; ++i) {
    const uint8_t kind = in.Take<uint8_t>();
    const uint64_t addr = kind < 0xf0 ? in.Take<uint16_t>() : in.Take<uint32_t>();
    const uint32_t len = (kind & 0x40) ? in.Take<uint16_t>() : in.Take<uint8_t>() % 40;
    if ((kind & 1) || writable_only) {
      chain.writable.push_back({Iova(addr), len});
      chain.writable_bytes += len;
    } else if (chain.writable.empty()) {
      chain.readable.push_back({Iova(addr), len});
      chain.readable_bytes += len;
    }
  }
  return chain;
}

void Run(const uint8_t* data, size_t size) {
  static const GuestMemory* memory = new GuestMemory(virtio::testing::TestGuestMemory(kRam));
  IdentityDmaSpace dma(*memory);
  fuzzing::FuzzInput in(data, size);
  for (int i = 0, n = in.Take<uint8_t>() % 8; i < n; ++i) {
    const uint64_t at = in.Take<uint16_t>() & 0xfff8;
    Require(memory->WriteObj(GuestAddress(at), in.Take<uint64_t>()).ok(), "guest write");
  }
  const uint8_t what = in.Take<uint8_t>() % 3;
  if (what == 0) {
    const virtio::DescriptorChain chain = TakeChain(in, false);
    absl::StatusOr<TxFrame> tx = ParseTx(chain);
    if (!tx.ok()) return;
    Require(chain.writable.empty(), "a transmit chain with writable buffers");
    Require(tx->bytes >= kHeaderSize + kEthHeaderSize && tx->bytes <= kMaxPacket, "frame size");
    uint64_t sum = 0;
    for (const DmaRange& r : tx->ranges) sum += r.len;
    Require(sum == tx->bytes && tx->bytes == chain.readable_bytes, "ranges do not add up");
  } else if (what == 1) {
    const virtio::DescriptorChain chain = TakeChain(in, false);
    absl::StatusOr<ControlCommand> c = ParseControl(chain, dma);
    if (!c.ok()) return;
    Require(c->data.size() + 2 == chain.readable_bytes, "command data length");
    const uint64_t features = in.Take<uint64_t>();
    const uint16_t max_pairs = static_cast<uint16_t>(1 + in.Take<uint8_t>() % 16);
    RxFilter filter({0x52, 0x54, 0, 1, 2, 3});
    if (in.Take<uint8_t>() & 1) {
      ApplyControl({.cls = kCtrlRx, .cmd = kCtrlRxPromisc, .data = {0}, .ack = Iova(0)},
                   kFeatureCtrlRx, 1, filter);
    }
    const RxFilter before = filter;
    const ControlOutcome out = ApplyControl(*c, features, max_pairs, filter);
    if (out.ack != kCtrlOk) {
      Require(!out.offloads && !out.pairs, "a refused command with effects");
      Require(filter.mac() == before.mac() && filter.promiscuous() == before.promiscuous() &&
                  filter.all_multicast() == before.all_multicast(),
              "a refused command changed the filter");
      return;
    }
    if (out.pairs) {
      Require((features & kFeatureMq) && *out.pairs >= 1 && *out.pairs <= max_pairs, "pairs");
    }
    if (out.offloads) {
      Require((features & kFeatureCtrlGuestOffloads) &&
                  (*out.offloads & ~(features & kGuestOffloads)) == 0,
              "offloads not negotiated");
    }
    if (c->cls == kCtrlRx) Require((features & kFeatureCtrlRx) != 0, "CTRL_RX not negotiated");
    // The filter never crashes on any frame.
    std::vector<uint8_t> frame(in.Take<uint8_t>() % 16);
    for (uint8_t& b : frame) b = in.Take<uint8_t>();
    (void)filter.Accepts(frame);
  } else {
    std::vector<virtio::DescriptorChain> chains;
    std::vector<uint64_t> room;
    for (int i = 0, n = 1 + in.Take<uint8_t>() % 6; i < n; ++i) {
      chains.push_back(TakeChain(in, true));
      room.push_back(chains.back().writable_bytes);
    }
    std::vector<uint8_t> packet(kHeaderSize + in.Take<uint16_t>() % 9000, 0xab);
    const bool mergeable = in.Take<uint8_t>() & 1;
    const size_t needed = ChainsNeeded(packet.size(), room, mergeable);
    if (needed == 0) return;
    Require(!mergeable ? needed == 1 && room[0] >= packet.size() : true, "one chain without MRG");
    uint64_t have = 0;
    for (size_t i = 0; i < needed; ++i) have += room[i];
    Require(have >= packet.size(), "chains too small");
    absl::StatusOr<std::vector<uint32_t>> written =
        WriteRx(absl::MakeSpan(packet), absl::MakeConstSpan(chains.data(), needed), dma);
    if (!written.ok()) return;
    uint64_t total = 0;
    for (size_t i = 0; i < needed; ++i) {
      Require((*written)[i] <= chains[i].writable_bytes, "a chain written past its buffers");
      total += (*written)[i];
    }
    Require(total == packet.size(), "the packet did not land whole");
    uint16_t buffers;
    std::memcpy(&buffers, packet.data() + kNumBuffersOffset, 2);
    Require(buffers == needed, "num_buffers");
  }
}

}  // namespace
}  // namespace vmmkit::virtio_net

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::virtio_net::Run(data, size);
  return 0;
}
