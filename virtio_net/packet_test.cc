#include "virtio_net/packet.h"

#include <cstring>
#include <numeric>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {
namespace {

using ::testing::ElementsAre;

virtio::DescriptorChain Readable(std::vector<virtio::Buffer> bufs) {
  virtio::DescriptorChain c{.head = 0, .readable = std::move(bufs), .writable = {}};
  for (const auto& b : c.readable) c.readable_bytes += b.len;
  return c;
}

virtio::DescriptorChain Writable(uint16_t head, std::vector<virtio::Buffer> bufs) {
  virtio::DescriptorChain c{.head = head, .readable = {}, .writable = std::move(bufs)};
  for (const auto& b : c.writable) c.writable_bytes += b.len;
  return c;
}

TEST(ParseTxTest, NamesTheFrameAndLeavesEmptyBuffersOut) {
  ASSERT_OK_AND_ASSIGN(TxFrame tx,
                       ParseTx(Readable({{Iova(0x100), 12}, {Iova(0x200), 0}, {Iova(0x300), 60}})));
  EXPECT_EQ(tx.bytes, 72u);
  ASSERT_EQ(tx.ranges.size(), 2u);
  EXPECT_EQ(tx.ranges[1].iova.raw(), 0x300u);
}

TEST(ParseTxTest, RefusesMalformedChains) {
  EXPECT_THAT(ParseTx(Readable({{Iova(0), kHeaderSize + kEthHeaderSize - 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTx(Readable({{Iova(0), kMaxPacket}, {Iova(0), 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  virtio::DescriptorChain mixed = Readable({{Iova(0), 100}});
  mixed.writable = {{Iova(0x1000), 1}};
  mixed.writable_bytes = 1;
  EXPECT_THAT(ParseTx(mixed), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ChainsNeededTest, CountsMergeableBuffersOrOneWholeChain) {
  const std::vector<uint64_t> room = {1536, 1536, 1536};
  EXPECT_EQ(ChainsNeeded(1000, room, true), 1u);
  EXPECT_EQ(ChainsNeeded(1537, room, true), 2u);
  EXPECT_EQ(ChainsNeeded(5000, room, true), 0u);
  EXPECT_EQ(ChainsNeeded(1536, room, false), 1u);
  EXPECT_EQ(ChainsNeeded(1537, room, false), 0u);
  EXPECT_EQ(ChainsNeeded(10, {}, false), 0u);
}

TEST(WriteRxTest, SpreadsAPacketAndCountsItsBuffers) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 16);
  IdentityDmaSpace dma(memory);
  std::vector<uint8_t> packet(kHeaderSize + 100);
  std::iota(packet.begin(), packet.end(), 0);
  const std::vector<virtio::DescriptorChain> chains = {
      Writable(4, {{Iova(0x1000), 8}, {Iova(0x2000), 32}}), Writable(9, {{Iova(0x3000), 200}})};
  ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> written, WriteRx(absl::MakeSpan(packet), chains, dma));
  EXPECT_THAT(written, ElementsAre(40u, 72u));
  // num_buffers (bytes 10-11) is 2; the rest lands in order.
  std::vector<uint8_t> got(112);
  ASSERT_OK(memory.Read(GuestAddress(0x1000), absl::MakeSpan(got.data(), 8)));
  ASSERT_OK(memory.Read(GuestAddress(0x2000), absl::MakeSpan(got.data() + 8, 32)));
  ASSERT_OK(memory.Read(GuestAddress(0x3000), absl::MakeSpan(got.data() + 40, 72)));
  EXPECT_EQ(got[10], 2);
  EXPECT_EQ(got[11], 0);
  for (size_t i = 0; i < got.size(); ++i) {
    if (i != 10 && i != 11) ASSERT_EQ(got[i], static_cast<uint8_t>(i)) << i;
  }
}

TEST(WriteRxTest, RefusesChainsThatCannotHoldIt) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 16);
  IdentityDmaSpace dma(memory);
  std::vector<uint8_t> packet(kHeaderSize + 100);
  EXPECT_THAT(WriteRx(absl::MakeSpan(packet), {Writable(0, {{Iova(0x1000), 50}})}, dma),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WriteRx(absl::MakeSpan(packet),
                      {Writable(0, {{Iova(0x1000), 8}}), Writable(1, {{Iova(0x2000), 200}})}, dma),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WriteRx(absl::MakeSpan(packet), {Writable(0, {{Iova(1 << 20), 200}})}, dma),
              StatusIs(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace vmmkit::virtio_net
