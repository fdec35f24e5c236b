#include "vmm/layout.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "acpi/tables.h"
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

TEST(LayoutTest, The64BitMmioWindowStartsAboveTheHighRam) {
  EXPECT_EQ(PciMmio64Window(512 << 20).first, kHighRamStart);
  EXPECT_EQ(PciMmio64Window(uint64_t{5} << 30).first, uint64_t{6} << 30);
  // Rounded up to a GiB: 3 GiB + 1 MiB of RAM leaves 1 MiB above 4 GiB.
  EXPECT_EQ(PciMmio64Window((uint64_t{3} << 30) + (1 << 20)).first, uint64_t{5} << 30);
  EXPECT_EQ(PciMmio64Window(512 << 20).second, kPciMmio64Size);
}

TEST(LayoutTest, TheResetStubSitsInReservedRamAfterTheAcpiTables) {
  ASSERT_LE(kAcpiTables.raw() + kAcpiTablesSize, kResetStub.raw());
  bool reserved = false;
  for (const auto& e : E820Map(64 << 20)) {
    const bool covers =
        e.address <= kResetStub.raw() && kResetStub.raw() + 16 <= e.address + e.size;
    if (covers) reserved = e.type == loader::E820Type::kReserved;
  }
  EXPECT_TRUE(reserved) << "the guest's OS could overwrite the stub";
  absl::StatusOr<GuestMemory> memory = GuestMemory::CreateRam(RamRegions(64 << 20), {});
  ASSERT_TRUE(memory.ok()) << memory.status();
  ASSERT_TRUE(WriteResetStub(*memory).ok());
  uint8_t code[7] = {};
  ASSERT_TRUE(memory->Read(kResetStub, absl::MakeSpan(code)).ok());
  // out 0x64 with al = 0xfe: the i8042's reset command.
  EXPECT_THAT(code, ::testing::ElementsAre(0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd));
}

// ACPICA's disassembler reads the VMM's DSDT as Linux's interpreter will.
TEST(LayoutTest, IaslDecodesTheVmmDsdt) {
  if (std::system("command -v iasl > /dev/null") != 0) GTEST_SKIP() << "iasl not installed";
  const std::string dir = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::vector<uint8_t> dsdt = acpi::Dsdt(BuildDsdt(uint64_t{5} << 30));
  std::ofstream(dir + "/vmm-dsdt.dat", std::ios::binary)
      .write(reinterpret_cast<const char*>(dsdt.data()), static_cast<std::streamsize>(dsdt.size()));
  ASSERT_EQ(std::system(("cd " + dir + " && iasl -d vmm-dsdt.dat > iasl.log 2>&1").c_str()), 0);
  std::ifstream in(dir + "/vmm-dsdt.dsl");
  const std::string dsl((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // INTx routing: slot 1 pin A and slot 31 pin D, to GSIs 16 + slot % 8.
  EXPECT_THAT(dsl, ::testing::HasSubstr("Name (_PRT, Package (0x7C)"));
  EXPECT_THAT(dsl, ::testing::ContainsRegex("0x0001FFFF,[^}]*Zero,[^}]*Zero,[^}]*0x11"));
  EXPECT_THAT(dsl, ::testing::ContainsRegex("0x001FFFFF,[^}]*0x03,[^}]*Zero,[^}]*0x17"));
  // The power button and the generic event device that presses it.
  EXPECT_THAT(dsl, ::testing::HasSubstr("EisaId (\"PNP0C0C\")"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Name (_HID, \"ACPI0013\""));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Method (_EVT, 1, Serialized)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Notify (\\_SB.PWRB, 0x80)"));
  EXPECT_THAT(
      dsl, ::testing::HasSubstr("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )"));
  // ACPI PCI hotplug: the registers, a device per slot that can be ejected, the scan method,
  // and _EVT dispatching on the event status.
  EXPECT_THAT(dsl, ::testing::HasSubstr("OperationRegion (PHPR, SystemIO, 0x0A04, 0x0C)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("OperationRegion (GDST, SystemIO, 0x0A00, 0x04)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Device (S1F)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Method (_EJ0, 1, NotSerialized)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("PCEJ = 0x08"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Method (PSCN, 0, Serialized)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Local0 = PCIU"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Notify (S03, One)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("Notify (S03, 0x03)"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("\\_SB.PCI0.PSCN ()"));
  // Both MMIO windows of the root bridge: below 4 GiB, and for 64-bit BARs above the high RAM
  // (5 GiB of RAM: 2 GiB above 4 GiB, so the window starts at 6 GiB).
  EXPECT_THAT(dsl, ::testing::HasSubstr("0xC0000000,         // Range Minimum"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("0x0000000180000000, // Range Minimum"));
  EXPECT_THAT(dsl, ::testing::HasSubstr("0x000000097FFFFFFF, // Range Maximum"));
  EXPECT_THAT(dsl, ::testing::Not(::testing::HasSubstr("Error")));
}

}  // namespace
}  // namespace vmmkit::vmm
