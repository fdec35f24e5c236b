#include "virtio_net/control.h"

#include <cstring>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {
namespace {

constexpr MacAddress kMac = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
constexpr uint64_t kAll = kFeatureCtrlVq | kFeatureCtrlRx | kFeatureCtrlMacAddr | kFeatureMq |
                          kFeatureCtrlGuestOffloads | kFeatureGuestCsum | kFeatureGuestTso4;

std::vector<uint8_t> Frame(const MacAddress& dst) {
  std::vector<uint8_t> f(60, 0);
  std::memcpy(f.data(), dst.data(), 6);
  return f;
}

template <typename T>
std::vector<uint8_t> Bytes(T v) {
  std::vector<uint8_t> b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

ControlCommand Cmd(uint8_t cls, uint8_t cmd, std::vector<uint8_t> data) {
  return {.cls = cls, .cmd = cmd, .data = std::move(data), .ack = Iova(0)};
}

// MAC_TABLE_SET's data: the unicast table, then the multicast one.
std::vector<uint8_t> Tables(const std::vector<MacAddress>& uni,
                            const std::vector<MacAddress>& multi) {
  std::vector<uint8_t> d;
  for (const auto* t : {&uni, &multi}) {
    const std::vector<uint8_t> n = Bytes(static_cast<uint32_t>(t->size()));
    d.insert(d.end(), n.begin(), n.end());
    for (const MacAddress& m : *t) d.insert(d.end(), m.begin(), m.end());
  }
  return d;
}

TEST(RxFilterTest, PromiscuousUntilTheDriverSaysOtherwise) {
  RxFilter f(kMac);
  EXPECT_TRUE(f.promiscuous());
  EXPECT_TRUE(f.Accepts(Frame({2, 0, 0, 0, 0, 9})));
  EXPECT_FALSE(f.Accepts(std::vector<uint8_t>(5, 0)));  // Shorter than an address.
}

TEST(RxFilterTest, FiltersByAddressOncePromiscuousIsOff) {
  RxFilter f(kMac);
  ASSERT_EQ(ApplyControl(Cmd(kCtrlRx, kCtrlRxPromisc, {0}), kAll, 1, f).ack, kCtrlOk);
  const MacAddress multicast = {0x33, 0x33, 0, 0, 0, 1};
  const MacAddress other = {0x52, 0x54, 0, 0, 0, 2};
  EXPECT_TRUE(f.Accepts(Frame(kMac)));
  EXPECT_TRUE(f.Accepts(Frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));
  EXPECT_FALSE(f.Accepts(Frame(other)));
  EXPECT_FALSE(f.Accepts(Frame(multicast)));

  ASSERT_EQ(
      ApplyControl(Cmd(kCtrlMac, kCtrlMacTableSet, Tables({other}, {multicast})), kAll, 1, f).ack,
      kCtrlOk);
  EXPECT_TRUE(f.Accepts(Frame(other)));
  EXPECT_TRUE(f.Accepts(Frame(multicast)));
  EXPECT_FALSE(f.Accepts(Frame({0x01, 0, 0x5e, 0, 0, 1})));

  ASSERT_EQ(ApplyControl(Cmd(kCtrlRx, kCtrlRxAllMulti, {1}), kAll, 1, f).ack, kCtrlOk);
  EXPECT_TRUE(f.Accepts(Frame({0x01, 0, 0x5e, 0, 0, 1})));

  const MacAddress moved = {0x52, 0x54, 0, 0, 0, 7};
  ASSERT_EQ(
      ApplyControl(Cmd(kCtrlMac, kCtrlMacAddrSet, {moved.begin(), moved.end()}), kAll, 1, f).ack,
      kCtrlOk);
  EXPECT_EQ(f.mac(), moved);
  EXPECT_TRUE(f.Accepts(Frame(moved)));
  EXPECT_FALSE(f.Accepts(Frame(kMac)));
}

TEST(RxFilterTest, TooManyAddressesMeanAllOfThatKind) {
  RxFilter f(kMac);
  ASSERT_EQ(ApplyControl(Cmd(kCtrlRx, kCtrlRxPromisc, {0}), kAll, 1, f).ack, kCtrlOk);
  std::vector<MacAddress> many(RxFilter::kTableEntries + 1, MacAddress{0x52, 0, 0, 0, 0, 1});
  std::vector<MacAddress> many_multi(RxFilter::kTableEntries + 1, MacAddress{0x33, 0, 0, 0, 0, 1});
  ASSERT_EQ(ApplyControl(Cmd(kCtrlMac, kCtrlMacTableSet, Tables(many, many_multi)), kAll, 1, f).ack,
            kCtrlOk);
  EXPECT_TRUE(f.Accepts(Frame({0x52, 9, 9, 9, 9, 9})));
  EXPECT_TRUE(f.Accepts(Frame({0x33, 9, 9, 9, 9, 9})));
  EXPECT_TRUE(f.all_multicast());
}

TEST(ApplyControlTest, RefusesWhatWasNotOfferedOrIsMalformed) {
  RxFilter f(kMac);
  const struct {
    ControlCommand c;
    uint64_t features;
  } bad[] = {
      {Cmd(kCtrlRx, kCtrlRxPromisc, {0}), kFeatureCtrlVq},  // CTRL_RX not negotiated.
      {Cmd(kCtrlRx, kCtrlRxPromisc, {0, 0}), kAll},         // Wrong length.
      {Cmd(kCtrlRx, 2, {1}), kAll},                         // ALLUNI: CTRL_RX_EXTRA.
      {Cmd(2, 0, Bytes(uint16_t{1})), kAll},                // VLAN: not offered.
      {Cmd(kCtrlMac, kCtrlMacAddrSet, {1, 2, 3, 4, 5}), kAll},
      {Cmd(kCtrlMac, kCtrlMacAddrSet, {2, 2, 3, 4, 5, 6}), kAll & ~kFeatureCtrlMacAddr},
      // A table count larger than its data; a trailing byte.
      {Cmd(kCtrlMac, kCtrlMacTableSet, {2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0}), kAll},
      {Cmd(kCtrlMac, kCtrlMacTableSet, {0, 0, 0, 0, 0, 0, 0, 0, 9}), kAll},
      {Cmd(kCtrlMac, kCtrlMacTableSet, {0xff, 0xff, 0xff, 0xff}), kAll},
      {Cmd(kCtrlMq, kCtrlMqPairsSet, Bytes(uint16_t{0})), kAll},
      {Cmd(kCtrlMq, kCtrlMqPairsSet, Bytes(uint16_t{3})), kAll},
      {Cmd(kCtrlMq, kCtrlMqPairsSet, Bytes(uint16_t{1})), kAll & ~kFeatureMq},
      // An offload not negotiated (TSO6), a transmit one (CSUM is bit 0), a short value.
      {Cmd(kCtrlGuestOffloads, kCtrlGuestOffloadsSet, Bytes(kFeatureGuestTso6)), kAll},
      {Cmd(kCtrlGuestOffloads, kCtrlGuestOffloadsSet, Bytes(kFeatureCsum)), kAll},
      {Cmd(kCtrlGuestOffloads, kCtrlGuestOffloadsSet, Bytes(uint32_t{2})), kAll},
      {Cmd(200, 0, {}), kAll},
  };
  for (const auto& b : bad) {
    const ControlOutcome out = ApplyControl(b.c, b.features, 2, f);
    EXPECT_EQ(out.ack, kCtrlErr) << int{b.c.cls} << "/" << int{b.c.cmd};
    EXPECT_FALSE(out.offloads.has_value());
    EXPECT_FALSE(out.pairs.has_value());
  }
  // Nothing changed.
  EXPECT_TRUE(f.promiscuous());
  EXPECT_EQ(f.mac(), kMac);
}

TEST(ApplyControlTest, ReportsPairsAndOffloads) {
  RxFilter f(kMac);
  ControlOutcome out = ApplyControl(Cmd(kCtrlMq, kCtrlMqPairsSet, Bytes(uint16_t{2})), kAll, 2, f);
  EXPECT_EQ(out.ack, kCtrlOk);
  EXPECT_EQ(out.pairs, 2);
  out = ApplyControl(
      Cmd(kCtrlGuestOffloads, kCtrlGuestOffloadsSet, Bytes(kFeatureGuestCsum | kFeatureGuestTso4)),
      kAll, 2, f);
  EXPECT_EQ(out.ack, kCtrlOk);
  EXPECT_EQ(out.offloads, kFeatureGuestCsum | kFeatureGuestTso4);
}

TEST(ParseControlTest, ReadsAcrossBuffersAndChecksLengths) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 16);
  IdentityDmaSpace dma(memory);
  ASSERT_OK(memory.WriteObj(GuestAddress(0x100), uint16_t{0x0100}));  // class 0, command 1.
  ASSERT_OK(memory.WriteObj(GuestAddress(0x200), uint8_t{1}));
  virtio::DescriptorChain chain{.head = 3,
                                .readable = {{Iova(0x100), 2}, {Iova(0x200), 1}},
                                .writable = {{Iova(0x300), 0}, {Iova(0x400), 1}},
                                .readable_bytes = 3,
                                .writable_bytes = 1};
  ASSERT_OK_AND_ASSIGN(ControlCommand c, ParseControl(chain, dma));
  EXPECT_EQ(c.cls, 0);
  EXPECT_EQ(c.cmd, 1);
  EXPECT_EQ(c.data, std::vector<uint8_t>{1});
  EXPECT_EQ(c.ack.raw(), 0x400u);  // The first writable byte, past an empty buffer.

  virtio::DescriptorChain no_ack = chain;
  no_ack.writable = {};
  no_ack.writable_bytes = 0;
  EXPECT_THAT(ParseControl(no_ack, dma), StatusIs(absl::StatusCode::kInvalidArgument));
  virtio::DescriptorChain short_chain = chain;
  short_chain.readable = {{Iova(0x100), 1}};
  short_chain.readable_bytes = 1;
  EXPECT_THAT(ParseControl(short_chain, dma), StatusIs(absl::StatusCode::kInvalidArgument));
  virtio::DescriptorChain huge = chain;
  huge.readable = {{Iova(0), 2 + kMaxControlData + 1}};
  huge.readable_bytes = 2 + kMaxControlData + 1;
  EXPECT_THAT(ParseControl(huge, dma), StatusIs(absl::StatusCode::kInvalidArgument));
  virtio::DescriptorChain outside = chain;
  outside.readable = {{Iova(1 << 20), 3}};
  EXPECT_THAT(ParseControl(outside, dma), StatusIs(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace vmmkit::virtio_net
