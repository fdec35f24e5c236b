#include "irq/ioapic.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "irq/testing/recording_ioapic_sink.h"

namespace vmmkit::irq {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using FakeSink = testing::RecordingIoapicSink;

constexpr uint64_t kLevel = uint64_t{1} << 15;
constexpr uint64_t kMask = uint64_t{1} << 16;
constexpr uint64_t kRemoteIrr = uint64_t{1} << 14;

class IoapicTest : public ::testing::Test {
 protected:
  void Write32(uint64_t offset, uint32_t value) {
    uint8_t b[4];
    std::memcpy(b, &value, 4);
    ioapic_.Write(offset, b);
  }
  uint32_t Read32(uint64_t offset) {
    uint8_t b[4];
    ioapic_.Read(offset, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
  }
  uint32_t ReadRegister(uint32_t index) {
    Write32(0x00, index);
    return Read32(0x10);
  }
  void WriteRte(uint32_t pin, uint64_t rte) {
    // High half first, as Linux does, so the entry is never live with a stale destination.
    Write32(0x00, 0x10 + 2 * pin + 1);
    Write32(0x10, static_cast<uint32_t>(rte >> 32));
    Write32(0x00, 0x10 + 2 * pin);
    Write32(0x10, static_cast<uint32_t>(rte));
  }
  uint64_t ReadRte(uint32_t pin) {
    return ReadRegister(0x10 + 2 * pin) | (uint64_t{ReadRegister(0x11 + 2 * pin)} << 32);
  }

  FakeSink sink_;
  Ioapic ioapic_{sink_, 2};
};

TEST_F(IoapicTest, ResetStateIdVersionAndMaskedPins) {
  EXPECT_EQ(ReadRegister(0x00), 2u << 24);
  EXPECT_EQ(ReadRegister(0x01), 0x00170020u);  // 24 entries, version 0x20.
  EXPECT_EQ(ReadRegister(0x02), 2u << 24);
  for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin) EXPECT_EQ(ReadRte(pin), kMask) << pin;
  EXPECT_EQ(ReadRegister(0x10 + 2 * Ioapic::kPins), ~0u);  // Past the table.
  ioapic_.SetLevel(4, true);
  EXPECT_THAT(sink_.raised, IsEmpty());
}

TEST_F(IoapicTest, UnmaskingRoutesTheCompatibilityMessage) {
  // Vector 0x31, fixed, physical destination APIC 3, edge.
  WriteRte(4, (uint64_t{3} << 56) | 0x31);
  ASSERT_TRUE(sink_.routes.contains(4));
  EXPECT_EQ(sink_.routes[4], (MsiMessage{.address = 0xfee03000, .data = 0x31}));
  // Logical destination, lowest priority, level.
  WriteRte(9, (uint64_t{0x0f} << 56) | kLevel | (1u << 11) | (1u << 8) | 0x41);
  EXPECT_EQ(sink_.routes[9], (MsiMessage{.address = 0xfee0f004, .data = 0x8141}));
  // Masking keeps the route (KVM reports an in-service vector's EOI through it); nothing raises it.
  WriteRte(4, kMask | 0x35);
  EXPECT_EQ(sink_.routes[4], (MsiMessage{.address = 0xfee00000, .data = 0x31}));
  ioapic_.SetLevel(4, true);
  EXPECT_THAT(sink_.raised, IsEmpty());
}

TEST_F(IoapicTest, EdgePinsDeliverOncePerRisingEdge) {
  WriteRte(4, 0x31);
  ioapic_.SetLevel(4, true);
  ioapic_.SetLevel(4, true);  // Still high: no new edge.
  ioapic_.SetLevel(4, false);
  ioapic_.SetLevel(4, true);
  EXPECT_THAT(sink_.raised, ElementsAre(4, 4));
  EXPECT_EQ(ReadRte(4) & kRemoteIrr, 0u);
}

TEST_F(IoapicTest, AnEdgeWhileMaskedIsDeliveredAtUnmask) {
  WriteRte(4, kMask | 0x31);
  ioapic_.SetLevel(4, true);
  ioapic_.SetLevel(4, false);
  EXPECT_THAT(sink_.raised, IsEmpty());
  WriteRte(4, 0x31);
  EXPECT_THAT(sink_.raised, ElementsAre(4));
  WriteRte(4, 0x32);  // Reprogramming does not deliver the same edge twice.
  EXPECT_THAT(sink_.raised, ElementsAre(4));
}

TEST_F(IoapicTest, LevelPinsWaitForTheEoiOfTheirVector) {
  WriteRte(16, kLevel | 0x51);
  ioapic_.SetLevel(16, true);
  EXPECT_THAT(sink_.raised, ElementsAre(16));
  EXPECT_NE(ReadRte(16) & kRemoteIrr, 0u);
  ioapic_.SetLevel(16, true);
  ioapic_.Eoi(0x52);  // Another vector: nothing.
  EXPECT_THAT(sink_.raised, ElementsAre(16));
  ioapic_.Eoi(0x51);  // Still asserted: delivered again.
  EXPECT_THAT(sink_.raised, ElementsAre(16, 16));
  ioapic_.SetLevel(16, false);
  ioapic_.Eoi(0x51);
  EXPECT_THAT(sink_.raised, ElementsAre(16, 16));
  EXPECT_EQ(ReadRte(16) & kRemoteIrr, 0u);
  EXPECT_EQ(ioapic_.stats().delivered, 2u);
}

TEST_F(IoapicTest, TheEoiRegisterEndsALevelInterruptToo) {
  WriteRte(16, kLevel | 0x51);
  ioapic_.SetLevel(16, true);
  ioapic_.SetLevel(16, false);
  Write32(0x40, 0x51);
  EXPECT_EQ(ReadRte(16) & kRemoteIrr, 0u);
}

TEST_F(IoapicTest, TheEoiHandlerResamplesTheInput) {
  int calls = 0;
  bool still_asserted = false;
  ioapic_.SetEoiHandler(17, [&] {
    ++calls;
    return still_asserted;
  });
  WriteRte(17, kLevel | 0x61);
  ioapic_.SetLevel(17, true);
  ioapic_.Eoi(0x61);  // The handler says the device let go: no redelivery.
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(sink_.raised, ElementsAre(17));
  ioapic_.SetLevel(17, true);
  still_asserted = true;
  ioapic_.Eoi(0x61);
  EXPECT_THAT(sink_.raised, ElementsAre(17, 17, 17));
  EXPECT_EQ(calls, 2);
  ioapic_.Eoi(0x61);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(sink_.raised.size(), 4u);
  WriteRte(17, 0x61);  // Edge: remote IRR is gone, EOIs do nothing.
  ioapic_.Eoi(0x61);
  EXPECT_EQ(calls, 3);
}

TEST_F(IoapicTest, TheGuestCannotSetTheChipsOwnBits) {
  WriteRte(16, kLevel | kRemoteIrr | (1u << 12) | 0x51);
  EXPECT_EQ(ReadRte(16), kLevel | 0x51);
  ioapic_.SetLevel(16, true);
  WriteRte(16, kLevel | 0x51);  // Rewriting keeps the chip's remote IRR.
  EXPECT_NE(ReadRte(16) & kRemoteIrr, 0u);
  EXPECT_THAT(sink_.raised, ElementsAre(16));
}

TEST_F(IoapicTest, RemappableEntriesCarryTheirIndex) {
  // Index 0x8123: bits 63:49 hold 0x123, bit 11 index[15]; bit 48 is the format.
  const uint64_t rte = (uint64_t{0x123} << 49) | (uint64_t{1} << 48) | (1u << 11) | kLevel | 0x71;
  WriteRte(2, rte);
  const MsiMessage m = sink_.routes[2];
  EXPECT_TRUE(IsRemappableFormat(m));
  EXPECT_EQ(((m.address >> 5) & 0x7fff) | (((m.address >> 2) & 1) << 15), 0x8123u);
  EXPECT_EQ((m.address >> 3) & 1, 0u);  // SHV clear.
  EXPECT_EQ(m.data, 0x8071u);           // Vector kept for EOI matching.
}

TEST_F(IoapicTest, AnUnroutablePinDeliversNothingUntilReprogrammed) {
  sink_.fail_routes = true;
  WriteRte(16, kLevel | 0x51);
  ioapic_.SetLevel(16, true);
  EXPECT_THAT(sink_.raised, IsEmpty());
  EXPECT_EQ(ReadRte(16) & kRemoteIrr, 0u);
  EXPECT_EQ(ioapic_.stats().route_errors, 1u);
  sink_.fail_routes = false;
  WriteRte(16, kLevel | 0x52);
  EXPECT_THAT(sink_.raised, ElementsAre(16));  // Still asserted: delivered once routable.
}

TEST_F(IoapicTest, RerouteDeliversWhatBecameRoutable) {
  sink_.fail_routes = true;
  WriteRte(16, kLevel | 0x51);
  ioapic_.SetLevel(16, true);
  ioapic_.Reroute();
  EXPECT_THAT(sink_.raised, IsEmpty());
  sink_.fail_routes = false;  // The remapping entry became valid.
  ioapic_.Reroute();
  EXPECT_THAT(sink_.raised, ElementsAre(16));
  EXPECT_FALSE(sink_.routes.contains(3)) << "pins never programmed are left alone";
}

TEST_F(IoapicTest, OddAccessesAreHarmless) {
  uint8_t b8[8];
  ioapic_.Read(0x10, b8);
  EXPECT_EQ(b8[7], 0xff);
  uint8_t b1[1] = {0x10};
  ioapic_.Write(0x00, b1);  // Not a 32-bit access: ignored.
  EXPECT_EQ(Read32(0x00), 0u);
  Write32(0x00, 0xff);
  Write32(0x10, 0x12345678);  // No such register.
  EXPECT_EQ(Read32(0x10), ~0u);
  Write32(0x20, 1);  // No register at 0x20.
  ioapic_.SetLevel(24, true);
  ioapic_.SetLevel(~0u, true);
  ioapic_.SetEoiHandler(99, [] { return true; });
  EXPECT_EQ(ioapic_.rte(99), 0u);
  Write32(0x00, 0x00);
  Write32(0x10, 0xffffffff);  // Only the 4-bit ID is kept.
  EXPECT_EQ(ReadRegister(0x00), 0x0f000000u);
}

}  // namespace
}  // namespace vmmkit::irq
