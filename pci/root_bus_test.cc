#include "pci/root_bus.h"

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::pci {
namespace {

class FakeFunction : public PciDevice {
 public:
  uint32_t ConfigRead(uint16_t reg) override { return reg == 0 ? 0x11e81234 : regs[reg / 4]; }
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t mask) override {
    uint32_t bytes = 0;
    for (uint32_t i = 0; i < 4; ++i) bytes |= (mask >> i & 1) ? 0xffu << (8 * i) : 0;
    regs[reg / 4] = (regs[reg / 4] & ~bytes) | (value & bytes);
  }
  uint32_t regs[1024] = {};
};

uint32_t Read32(devices::BusDevice& d, uint64_t off) {
  uint8_t b[4];
  d.Read(off, absl::MakeSpan(b, 4));
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}
void Write32(devices::BusDevice& d, uint64_t off, uint32_t v) {
  uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                  static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
  d.Write(off, absl::MakeSpan(b, 4));
}
uint32_t Address(uint32_t slot, uint32_t reg) { return 0x80000000u | (slot << 11) | reg; }

TEST(PciTest, HostBridgeAndEmptySlotsThroughPortIo) {
  auto root = std::make_shared<PciRootBus>();
  PciConfigIo io(root);
  Write32(io, 0, Address(0, 0));
  EXPECT_EQ(Read32(io, 0), Address(0, 0));
  EXPECT_EQ(Read32(io, 4), 0x00081b36u);
  Write32(io, 0, Address(0, 8));
  EXPECT_EQ(Read32(io, 4) >> 8, 0x060000u) << "class: host bridge";
  Write32(io, 0, Address(5, 0));
  EXPECT_EQ(Read32(io, 4), 0xffffffffu) << "empty slot";
  Write32(io, 0, 0x00000000);  // Enable bit clear: data port reads all-ones.
  EXPECT_EQ(Read32(io, 4), 0xffffffffu);
}

TEST(PciTest, PartialAccessesAndEcam) {
  auto root = std::make_shared<PciRootBus>();
  auto fn = std::make_shared<FakeFunction>();
  ASSERT_OK(root->AddDevice(3, fn));
  EXPECT_THAT(root->AddDevice(3, fn), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(root->AddDevice(40, fn), StatusIs(absl::StatusCode::kInvalidArgument));
  PciConfigIo io(root);
  Write32(io, 0, Address(3, 0x10));
  uint8_t b = 0xab;
  io.Write(4 + 2, absl::MakeSpan(&b, 1));  // Byte 2 of register 0x10 via port 0xcfe.
  EXPECT_EQ(fn->regs[4], 0x00ab0000u);
  PciConfigMmio ecam(root);
  EXPECT_EQ(Read32(ecam, (3 << 15) | 0), 0x11e81234u);
  Write32(ecam, (3 << 15) | 0x10, 0xfeedf00d);
  EXPECT_EQ(fn->regs[4], 0xfeedf00du);
  uint8_t wide[8];
  ecam.Read((3 << 15) | 0x0e, absl::MakeSpan(wide, 4));  // Crosses a dword: not delivered.
  EXPECT_EQ(wide[0], 0xff);
  EXPECT_EQ(Read32(ecam, (1u << 20) | (3 << 15)), 0xffffffffu) << "bus 1 does not exist";
  EXPECT_EQ(root->FreeSlot(), 1);
  EXPECT_TRUE(root->Occupied(0)) << "the host bridge";
  EXPECT_TRUE(root->Occupied(3));
  EXPECT_FALSE(root->Occupied(4));
  EXPECT_TRUE(root->Occupied(32)) << "no such slot";
  ASSERT_OK(root->RemoveDevice(3));
  EXPECT_FALSE(root->Occupied(3));
  EXPECT_THAT(root->RemoveDevice(3), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(root->RemoveDevice(0), StatusIs(absl::StatusCode::kNotFound)) << "host bridge stays";
}

}  // namespace
}  // namespace vmmkit::pci
