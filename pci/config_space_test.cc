#include "pci/config_space.h"

#include <linux/pci_regs.h>

#include <random>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::pci {
namespace {

ConfigSpace Virtio() {
  return ConfigSpace({.vendor = 0x1af4,
                      .device = 0x1042,
                      .class_code = 0x018000,
                      .revision = 1,
                      .subsystem_vendor = 0x1af4,
                      .subsystem = 0x1100,
                      .interrupt_pin = 1});
}

TEST(ConfigSpaceTest, TheHeaderReadsBackAndOnlyWritableBitsChange) {
  ConfigSpace cfg = Virtio();
  EXPECT_EQ(cfg.Read(PCI_VENDOR_ID), 0x10421af4u);
  EXPECT_EQ(cfg.Read(PCI_CLASS_REVISION), 0x01800001u);
  EXPECT_EQ(cfg.Read(PCI_SUBSYSTEM_VENDOR_ID), 0x11001af4u);
  EXPECT_EQ(cfg.Read(PCI_INTERRUPT_LINE) >> 8 & 0xff, 1u);  // The pin.
  cfg.Write(PCI_VENDOR_ID, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.Read(PCI_VENDOR_ID), 0x10421af4u) << "IDs are read-only";
  ConfigSpace::Change c = cfg.Write(PCI_COMMAND, 0xffff, 0x3);
  EXPECT_TRUE(c.command);
  EXPECT_EQ(cfg.command(), PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                               PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
  EXPECT_TRUE(cfg.memory_enabled() && cfg.io_enabled() && cfg.bus_master());
  EXPECT_FALSE(cfg.Write(PCI_COMMAND, 0xffff, 0x3).any()) << "nothing changed the second time";
  cfg.Write(PCI_INTERRUPT_LINE, 0x0b, 0x1);
  EXPECT_EQ(cfg.Read(PCI_INTERRUPT_LINE) & 0xff, 0x0bu);
}

TEST(ConfigSpaceTest, BarsAnswerTheSizeProbeAndKeepTheirTypeBits) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK(cfg.AddBar({.index = 0, .size = 0x1000}));
  ASSERT_OK(cfg.AddBar({.index = 1, .size = 0x100, .io = true}));
  ASSERT_OK(
      cfg.AddBar({.index = 2, .size = uint64_t{1} << 33, .is64 = true, .prefetchable = true}));
  // The probe: all-ones in, size back (the low type bits stay).
  cfg.Write(PCI_BASE_ADDRESS_0, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.Read(PCI_BASE_ADDRESS_0), 0xfffff000u);
  cfg.Write(PCI_BASE_ADDRESS_1, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.Read(PCI_BASE_ADDRESS_1), 0xffffff01u);
  cfg.Write(PCI_BASE_ADDRESS_2, 0xffffffff, 0xf);
  cfg.Write(PCI_BASE_ADDRESS_3, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.Read(PCI_BASE_ADDRESS_2), 0x0000000cu) << "8 GiB: no low address bits";
  EXPECT_EQ(cfg.Read(PCI_BASE_ADDRESS_3), 0xfffffffeu);
  // Placed: the address reads back, a 64-bit one across both dwords.
  cfg.SetBarAddress(0, 0xc0001000);
  EXPECT_FALSE(cfg.Write(PCI_BASE_ADDRESS_2, 0, 0xf).bars) << "no address bits below 8 GiB";
  EXPECT_TRUE(cfg.Write(PCI_BASE_ADDRESS_3, 0x4, 0xf).bars);
  EXPECT_EQ(cfg.BarAddress(0), 0xc0001000u);
  EXPECT_EQ(cfg.BarAddress(2), uint64_t{4} << 32);
  EXPECT_EQ(cfg.BarAddress(3), std::nullopt) << "the upper half is not a BAR of its own";
  // A partial write moves only the bytes written; an address below the size rounds down.
  cfg.Write(PCI_BASE_ADDRESS_0, 0xd0000000, 0x8);
  EXPECT_EQ(cfg.BarAddress(0), 0xd0001000u);
  cfg.Write(PCI_BASE_ADDRESS_0, 0xc0000fff, 0xf);
  EXPECT_EQ(cfg.BarAddress(0), 0xc0000000u);
  // No BAR 5: its register reads zero and ignores writes.
  cfg.Write(PCI_BASE_ADDRESS_5, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.Read(PCI_BASE_ADDRESS_5), 0u);
}

TEST(ConfigSpaceTest, BadBarsAreRefused) {
  ConfigSpace cfg = Virtio();
  EXPECT_THAT(cfg.AddBar({.index = 0, .size = 0x1800}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cfg.AddBar({.index = 0, .size = 8}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cfg.AddBar({.index = 0, .size = 0x1000, .io = true}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cfg.AddBar({.index = 5, .size = 0x1000, .is64 = true}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(cfg.AddBar({.index = 0, .size = 0x1000, .is64 = true}));
  EXPECT_THAT(cfg.AddBar({.index = 1, .size = 0x1000}), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(ConfigSpaceTest, CapabilitiesFormAListFromTheHeader) {
  ConfigSpace cfg = Virtio();
  EXPECT_EQ(cfg.Read(PCI_STATUS & ~3) >> 16 & PCI_STATUS_CAP_LIST, 0u);
  ASSERT_OK_AND_ASSIGN(uint8_t vendor, cfg.AddCapability(PCI_CAP_ID_VNDR, {0x10, 1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(uint8_t msix, cfg.AddMsix({4, 0, 0x2000, 0, 0x3000}));
  ASSERT_OK_AND_ASSIGN(uint8_t msi, cfg.AddMsi({.log2_vectors = 2}));
  EXPECT_NE(cfg.Read(PCI_COMMAND) >> 16 & PCI_STATUS_CAP_LIST, 0u);
  // Walk it as a guest does.
  std::vector<uint8_t> ids;
  for (uint8_t at = cfg.Read(PCI_CAPABILITY_LIST) & 0xff; at != 0;) {
    const uint32_t head = cfg.Read(at & ~3u) >> (8 * (at & 3));
    ids.push_back(head & 0xff);
    at = (head >> 8) & 0xff;
  }
  EXPECT_THAT(ids, ::testing::ElementsAre(PCI_CAP_ID_VNDR, PCI_CAP_ID_MSIX, PCI_CAP_ID_MSI));
  EXPECT_EQ(vendor, 0x40);
  EXPECT_GT(msix, vendor);
  EXPECT_GT(msi, msix);
  // A capability with no write mask is read-only.
  cfg.Write(vendor, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.Read(vendor) >> 16, 0x0110u);
}

TEST(ConfigSpaceTest, MsiStateFollowsTheGuestsWrites) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK_AND_ASSIGN(uint8_t msi, cfg.AddMsi({.log2_vectors = 2}));  // 4 vectors.
  ConfigSpace::Change c = cfg.Write(msi + PCI_MSI_ADDRESS_LO, 0xfee01003, 0xf);
  EXPECT_TRUE(c.msi);
  cfg.Write(msi + PCI_MSI_ADDRESS_HI, 0x1, 0xf);
  cfg.Write(msi + PCI_MSI_DATA_64, 0x4041, 0x3);
  cfg.Write(msi + PCI_MSI_MASK_64, 0xffffffff, 0xf);
  // Enable with 8 vectors asked (MME 3): the capability offers 4 (MMC 2), so 4 it is.
  cfg.Write(msi, uint32_t{PCI_MSI_FLAGS_ENABLE | (3 << 4)} << 16, 0x4);
  MsiConfig m = cfg.msi();
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(m.vectors, 4u);
  EXPECT_EQ(m.address, 0x1fee01000u) << "dword aligned";
  EXPECT_EQ(m.data, 0x4041);
  EXPECT_EQ(m.mask, 0xfu) << "one mask bit per vector offered";
  EXPECT_EQ(
      cfg.Read(msi) >> 16 & (PCI_MSI_FLAGS_QMASK | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT),
      uint32_t{PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1)})
      << "the capability's own bits are read-only";
}

TEST(ConfigSpaceTest, MsixEnableAndFunctionMaskAreTheOnlyWritableBits) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK_AND_ASSIGN(uint8_t msix, cfg.AddMsix({4, 1, 0x2000, 1, 0x3000}));
  EXPECT_EQ(cfg.Read(msix) >> 16, 3u) << "table size - 1";
  EXPECT_EQ(cfg.Read(msix + PCI_MSIX_TABLE), 0x2001u);
  EXPECT_EQ(cfg.Read(msix + PCI_MSIX_PBA), 0x3001u);
  ConfigSpace::Change c = cfg.Write(msix, 0xffffffff, 0xc);  // Everything in the control word.
  EXPECT_TRUE(c.msix);
  EXPECT_TRUE(cfg.msix_enabled());
  EXPECT_TRUE(cfg.msix_function_mask());
  EXPECT_EQ(cfg.Read(msix) >> 16, uint32_t{PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 3});
  cfg.Write(msix + PCI_MSIX_TABLE, 0, 0xf);
  EXPECT_EQ(cfg.Read(msix + PCI_MSIX_TABLE), 0x2001u) << "read-only";
  EXPECT_THAT(cfg.AddMsix({4, 0, 0x100, 0, 0x200}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cfg.AddMsix({2049, 0, 0, 0, 0x8000}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ConfigSpaceTest, AFullSpaceRefusesMoreCapabilities) {
  ConfigSpace cfg = Virtio();
  std::vector<uint8_t> body(60, 0);
  ASSERT_OK(cfg.AddCapability(PCI_CAP_ID_VNDR, body).status());
  ASSERT_OK(cfg.AddCapability(PCI_CAP_ID_VNDR, body).status());
  ASSERT_OK(cfg.AddCapability(PCI_CAP_ID_VNDR, body).status());
  EXPECT_THAT(cfg.AddCapability(PCI_CAP_ID_VNDR, body),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(ConfigSpaceTest, ACapabilityCanKeepAGivenOffset) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK_AND_ASSIGN(uint8_t pm, cfg.AddCapability(PCI_CAP_ID_PM, {3, 0, 0, 0, 0, 0}, {}, 0x60));
  EXPECT_EQ(pm, 0x60);
  ASSERT_OK_AND_ASSIGN(uint8_t msi, cfg.AddMsi({.log2_vectors = 0}, 0x48));
  EXPECT_EQ(msi, 0x48);
  // The list follows the order they were added in, not their offsets.
  EXPECT_EQ(cfg.Read(PCI_CAPABILITY_LIST) & 0xff, 0x60u);
  EXPECT_EQ(cfg.Read(0x60) >> 8 & 0xff, 0x48u);
  EXPECT_THAT(cfg.capabilities(), ::testing::ElementsAre(::testing::Pair(PCI_CAP_ID_PM, 0x60),
                                                         ::testing::Pair(PCI_CAP_ID_MSI, 0x48)));
  // Free space first: 0x40 (0x48 holds the MSI capability's 24 bytes up to 0x5f).
  ASSERT_OK_AND_ASSIGN(uint8_t vendor, cfg.AddCapability(PCI_CAP_ID_VNDR, {4, 0}));
  EXPECT_EQ(vendor, 0x40);
  ASSERT_OK_AND_ASSIGN(uint8_t next, cfg.AddCapability(PCI_CAP_ID_VNDR, {4, 0}));
  EXPECT_EQ(next, 0x44);
  EXPECT_THAT(cfg.AddCapability(PCI_CAP_ID_VNDR, {4, 0}, {}, 0x50),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("taken")));
  EXPECT_THAT(cfg.AddCapability(PCI_CAP_ID_VNDR, {4, 0}, {}, 0x3c),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cfg.AddCapability(PCI_CAP_ID_VNDR, {4, 0}, {}, 0x71),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cfg.AddCapability(PCI_CAP_ID_VNDR, std::vector<uint8_t>(20, 0), {}, 0xf0),
              StatusIs(absl::StatusCode::kInvalidArgument))
      << "past the end";
}

TEST(ConfigSpaceTest, A32BitMsiWithoutMaskingHasTheShortLayout) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK_AND_ASSIGN(uint8_t msi,
                       cfg.AddMsi({.log2_vectors = 0, .is64 = false, .maskable = false}));
  EXPECT_EQ(cfg.msi_pending_register(), std::nullopt);
  cfg.Write(msi + PCI_MSI_ADDRESS_LO, 0xfee00000, 0xf);
  cfg.Write(msi + PCI_MSI_DATA_32, 0x0031, 0x3);
  cfg.Write(msi, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  MsiConfig m = cfg.msi();
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(m.address, 0xfee00000u);
  EXPECT_EQ(m.data, 0x31);
  EXPECT_EQ(m.mask, 0u);
  // The next capability starts right after its 12 bytes (rounded to a dword).
  ASSERT_OK_AND_ASSIGN(uint8_t vendor, cfg.AddCapability(PCI_CAP_ID_VNDR, {4, 0}));
  EXPECT_EQ(vendor, msi + 12);
  ConfigSpace masked = Virtio();
  ASSERT_OK_AND_ASSIGN(uint8_t at, masked.AddMsi({.log2_vectors = 1, .is64 = false}));
  EXPECT_EQ(masked.msi_pending_register(), at + PCI_MSI_PENDING_32);
}

TEST(ConfigSpaceTest, ABarDecodesOnlyWhenEnabledPlacedAndNotBeingSized) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK(cfg.AddBar({.index = 0, .size = 0x1000}));
  ASSERT_OK(cfg.AddBar({.index = 1, .size = 0x20, .io = true}));
  ASSERT_OK(cfg.AddBar({.index = 2, .size = 0x4000, .is64 = true}));
  EXPECT_THAT(cfg.bars(), ::testing::SizeIs(3));
  cfg.SetBarAddress(0, 0xc0000000);
  cfg.SetBarAddress(1, 0x1000);
  cfg.SetBarAddress(2, uint64_t{8} << 32);
  EXPECT_EQ(cfg.DecodedBarAddress(0), std::nullopt) << "decoding is off";
  cfg.Write(PCI_COMMAND, PCI_COMMAND_MEMORY, 0x3);
  EXPECT_EQ(cfg.DecodedBarAddress(0), 0xc0000000u);
  EXPECT_EQ(cfg.DecodedBarAddress(2), uint64_t{8} << 32);
  EXPECT_EQ(cfg.DecodedBarAddress(1), std::nullopt) << "I/O decoding is off";
  cfg.Write(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 0x3);
  EXPECT_EQ(cfg.DecodedBarAddress(1), 0x1000u);
  cfg.Write(PCI_BASE_ADDRESS_0, 0xffffffff, 0xf);
  EXPECT_EQ(cfg.DecodedBarAddress(0), std::nullopt) << "being sized";
  cfg.Write(PCI_BASE_ADDRESS_1, 0xfffff0, 0xf);
  EXPECT_EQ(cfg.DecodedBarAddress(1), std::nullopt) << "past 64 KiB of I/O space";
  cfg.SetBarAddress(0, 0);
  EXPECT_EQ(cfg.DecodedBarAddress(0), std::nullopt) << "unplaced";
  EXPECT_EQ(cfg.DecodedBarAddress(3), std::nullopt) << "the upper half of BAR 2";
}

// A hostile guest writing anything anywhere: read-only bits never change, BARs stay aligned to
// their size, MSI never offers more vectors than the capability has, misaligned reads are zero.
TEST(ConfigSpaceTest, RandomWritesNeverChangeReadOnlyBits) {
  ConfigSpace cfg = Virtio();
  ASSERT_OK(cfg.AddBar({.index = 0, .size = 0x4000, .is64 = true}));
  ASSERT_OK(cfg.AddMsi({.log2_vectors = 1}).status());
  ASSERT_OK(cfg.AddMsix({8, 0, 0x2000, 0, 0x3000}).status());
  const uint32_t ids = cfg.Read(0), class_rev = cfg.Read(PCI_CLASS_REVISION);
  const uint32_t caps = cfg.Read(PCI_CAPABILITY_LIST);
  std::mt19937 rng(11);
  for (int i = 0; i < 100000; ++i) {
    const uint16_t reg = static_cast<uint16_t>(rng() % 300);
    cfg.Write(reg, static_cast<uint32_t>(rng()), static_cast<uint8_t>(rng()));
    ASSERT_EQ(cfg.Read(0), ids);
    ASSERT_EQ(cfg.Read(PCI_CLASS_REVISION), class_rev);
    ASSERT_EQ(cfg.Read(PCI_CAPABILITY_LIST), caps);
    ASSERT_EQ(cfg.BarAddress(0).value_or(1) % 0x4000, 0u);
    ASSERT_LE(cfg.msi().vectors, 2u);
    ASSERT_EQ(cfg.Read(reg | 1), 0u) << "misaligned reads are zero";
  }
}

}  // namespace
}  // namespace vmmkit::pci
