#include "vmm/layout.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

TEST(LayoutTest, SmallGuestsLiveBelowTheHole) {
  auto regions = RamRegions(512 << 20);
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].second, 512u << 20);
  auto e820 = E820Map(512 << 20);
  ASSERT_EQ(e820.size(), 5u);
  EXPECT_EQ(e820[3].address, 0x100000u);
  EXPECT_EQ(e820[3].address + e820[3].size, 512u << 20);
  EXPECT_EQ(e820[4].address, kEcamBase);
  EXPECT_EQ(e820[4].type, loader::E820Type::kReserved);
}

TEST(LayoutTest, LargeGuestsSplitAroundTheMmioHole) {
  const uint64_t mem = uint64_t{5} << 30;
  auto regions = RamRegions(mem);
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].second, kLowRamLimit);
  EXPECT_EQ(regions[1].first, GuestAddress(kHighRamStart));
  EXPECT_EQ(regions[0].second + regions[1].second, mem);
  auto e820 = E820Map(mem);
  EXPECT_EQ(e820.back().address, kHighRamStart);
  EXPECT_EQ(e820.back().size, mem - kLowRamLimit);
  // No RAM entry overlaps the PCI MMIO window, ECAM or the APICs.
  for (const auto& e : e820) {
    if (e.type != loader::E820Type::kRam) continue;
    EXPECT_TRUE(e.address + e.size <= kPciMmioStart || e.address >= kHighRamStart);
  }
}

}  // namespace
}  // namespace vmmkit::vmm
