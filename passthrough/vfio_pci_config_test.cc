// VfioPciConfig against a fake vfio-pci device whose config space is laid out below.
#include "passthrough/vfio_pci_config.h"

#include <linux/pci_regs.h>

#include <cstring>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::passthrough {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using vfio::testing::FakeVfioKernel;

void Put32(std::vector<uint8_t>& c, size_t off, uint32_t v) { std::memcpy(&c[off], &v, 4); }
void Put16(std::vector<uint8_t>& c, size_t off, uint16_t v) { std::memcpy(&c[off], &v, 2); }

class VfioPciConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_.groups[5] = {};
    FakeVfioKernel::Device d = FakeVfioKernel::PciDevice(5);
    std::vector<uint8_t> c(256, 0);
    Put16(c, 0x00, 0x1234);
    Put16(c, 0x02, 0x11e8);
    Put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
    Put32(c, PCI_BASE_ADDRESS_0, 0xfea00000);  // 32-bit memory, 1 MiB.
    Put32(c, PCI_BASE_ADDRESS_2, 0x0000000c);  // 64-bit prefetchable, 16 KiB...
    Put32(c, PCI_BASE_ADDRESS_3, 0x00000001);  // ...at 0x1_00000000 on the host.
    Put32(c, PCI_BASE_ADDRESS_4, 0x0000c001);  // I/O, 32 bytes.
    Put32(c, PCI_ROM_ADDRESS, 0xfeb00001);
    c[PCI_CAPABILITY_LIST] = 0x40;
    c[0x40] = PCI_CAP_ID_PM, c[0x41] = 0x50;
    c[0x50] = PCI_CAP_ID_MSI, c[0x51] = 0x68;
    Put16(c, 0x52, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (3 << 1));  // 8 vectors.
    c[0x68] = PCI_CAP_ID_VNDR, c[0x69] = 0x70, c[0x6a] = 0xaa;
    c[0x70] = PCI_CAP_ID_MSIX, c[0x71] = 0x00;
    Put16(c, 0x72, 7);           // 8 vectors.
    Put32(c, 0x74, 0x2000 | 0);  // Table in BAR 0 at 0x2000.
    Put32(c, 0x78, 0x3000 | 0);  // PBA in BAR 0 at 0x3000.
    d.regions[VFIO_PCI_CONFIG_REGION_INDEX].data = c;
    const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    d.regions[2] = {false, rw | VFIO_REGION_INFO_FLAG_MMAP, 0x4000, {}, false, {}};
    d.regions[4] = {false, rw, 0x20, {}, false, {}};
    kernel_.devices["0000:00:03.0"] = d;
    auto container = vfio::VfioContainer::Open(kernel_);
    ASSERT_OK(container.status());
    auto group = vfio::VfioGroup::Open(5, kernel_);
    ASSERT_OK(group.status());
    ASSERT_OK((*group)->SetContainer(*container));
    ASSERT_OK((*container)->SetType1Iommu().status());
    auto dev = (*group)->GetDevice("0000:00:03.0");
    ASSERT_OK(dev.status());
    device_ = std::move(dev).value();
    auto config = VfioPciConfig::Create(*device_, Callbacks());
    ASSERT_OK(config.status());
    config_ = *config;
  }
  VfioPciConfig::Callbacks Callbacks() {
    return {
        [this](const VirtualBar& bar, std::optional<uint64_t> from, std::optional<uint64_t> to) {
          moves_.push_back({bar.index, from, to});
        },
        [this](const MsiState& s) { msi_.push_back(s); },
        [this](bool enabled, bool mask) {
          msix_.push_back({enabled, mask});
        }};
  }
  uint8_t DeviceConfigByte(size_t off) {
    return kernel_.devices["0000:00:03.0"].regions[VFIO_PCI_CONFIG_REGION_INDEX].data[off];
  }
  void Write(uint16_t reg, uint32_t value, uint8_t mask = 0xf) {
    config_->ConfigWrite(reg, value, mask);
  }
  uint32_t Read(uint16_t reg) { return config_->ConfigRead(reg); }

  struct Move {
    uint32_t bar;
    std::optional<uint64_t> from, to;
    friend bool operator==(const Move&, const Move&) = default;
  };
  FakeVfioKernel kernel_;
  std::unique_ptr<vfio::VfioDevice> device_;
  std::shared_ptr<VfioPciConfig> config_;
  std::vector<Move> moves_;
  std::vector<MsiState> msi_;
  std::vector<std::pair<bool, bool>> msix_;
};

TEST_F(VfioPciConfigTest, TheGuestSeesEmulatedBarsAndOnlySupportedCapabilities) {
  EXPECT_EQ(Read(0), 0x11e81234u);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_0), 0u) << "host BAR addresses never show";
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_2), 0xcu);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_4), 0x1u);
  EXPECT_EQ(Read(PCI_ROM_ADDRESS), 0u);
  EXPECT_TRUE((Read(PCI_COMMAND) >> 16) & PCI_STATUS_CAP_LIST);
  EXPECT_EQ(Read(PCI_CAPABILITY_LIST) & 0xff, 0x40u);
  EXPECT_EQ((Read(0x40) >> 8) & 0xff, 0x50u);
  EXPECT_EQ((Read(0x50) >> 8) & 0xff, 0x70u) << "the vendor-specific capability is skipped";
  EXPECT_EQ(Read(0x68), 0u);
  EXPECT_EQ((Read(0x70) >> 8) & 0xff, 0u);
  EXPECT_EQ(Read(0x100), 0u) << "no extended capabilities";
  EXPECT_THAT(config_->visible_capabilities(),
              ElementsAre(Pair(PCI_CAP_ID_PM, 0x40), Pair(PCI_CAP_ID_MSI, 0x50),
                          Pair(PCI_CAP_ID_MSIX, 0x70)));
  ASSERT_TRUE(config_->msix().has_value());
  EXPECT_EQ(config_->msix()->vectors, 8);
  EXPECT_EQ(config_->msix()->table_offset, 0x2000u);
  EXPECT_EQ(config_->msix()->pba_offset, 0x3000u);
  EXPECT_EQ(config_->bars().size(), 3u);
}

TEST_F(VfioPciConfigTest, BarsAreSizedTheStandardWay) {
  Write(PCI_BASE_ADDRESS_0, 0xffffffff);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_0), 0xfff00000u);
  Write(PCI_BASE_ADDRESS_2, 0xffffffff);
  Write(PCI_BASE_ADDRESS_3, 0xffffffff);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_2), 0xffffc00cu);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_3), 0xffffffffu);
  Write(PCI_BASE_ADDRESS_4, 0xffffffff);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_4), 0xffffffe1u);
  Write(PCI_BASE_ADDRESS_1, 0xffffffff);
  EXPECT_EQ(Read(PCI_BASE_ADDRESS_1), 0u) << "an absent BAR stays zero";
}

TEST_F(VfioPciConfigTest, BarsAppearMoveAndDisappearWithDecoding) {
  Write(PCI_BASE_ADDRESS_0, 0xc0000000);
  Write(PCI_BASE_ADDRESS_2, 0x00000000);
  Write(PCI_BASE_ADDRESS_3, 0x00000008);  // 0x8_00000000.
  EXPECT_TRUE(moves_.empty()) << "no decoding yet";
  Write(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0x3);
  EXPECT_THAT(moves_,
              ElementsAre(Move{0, std::nullopt, 0xc0000000}, Move{2, std::nullopt, 0x800000000}));
  EXPECT_EQ(DeviceConfigByte(PCI_COMMAND), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)
      << "memory decoding and bus mastering reach the device";
  moves_.clear();
  Write(PCI_BASE_ADDRESS_0, 0xd0000000);
  EXPECT_THAT(moves_, ElementsAre(Move{0, 0xc0000000, 0xd0000000}));
  moves_.clear();
  Write(PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MASTER, 0x3);  // Memory off, I/O on (no addr).
  EXPECT_THAT(moves_,
              ElementsAre(Move{0, 0xd0000000, std::nullopt}, Move{2, 0x800000000, std::nullopt}));
  moves_.clear();
  Write(PCI_BASE_ADDRESS_4, 0x1000);
  EXPECT_THAT(moves_, ElementsAre(Move{4, std::nullopt, 0x1000}));
}

TEST_F(VfioPciConfigTest, MsiIsEmulatedAndReported) {
  Write(0x54, 0xfee01000);   // Address low.
  Write(0x58, 0x0);          // Address high.
  Write(0x5c, 0x4041, 0x3);  // Data.
  ASSERT_FALSE(msi_.empty());
  msi_.clear();
  Write(0x50, (PCI_MSI_FLAGS_ENABLE | (5 << 4)) << 16, 0x4);  // Enable, ask for 32 vectors.
  ASSERT_EQ(msi_.size(), 1u);
  EXPECT_TRUE(msi_[0].enabled);
  EXPECT_EQ(msi_[0].vectors, 8u) << "clamped to the device's 8";
  EXPECT_EQ(msi_[0].address, 0xfee01000u);
  EXPECT_EQ(msi_[0].data, 0x4041);
  const uint32_t control = Read(0x50) >> 16;
  EXPECT_TRUE(control & PCI_MSI_FLAGS_64BIT) << "read-only bits survive";
  EXPECT_EQ((control & PCI_MSI_FLAGS_QSIZE) >> 4, 3u);
  Write(0x50, 0, 0x4);  // Try to clear the 64-bit bit too.
  EXPECT_TRUE((Read(0x50) >> 16) & PCI_MSI_FLAGS_64BIT);
  Write(0x60, 0x5);  // Per-vector mask bits.
  EXPECT_EQ(msi_.back().mask, 0x5u);
}

TEST_F(VfioPciConfigTest, MsixControlIsEmulatedAndReported) {
  Write(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 0x7ff} << 16, 0xc);
  EXPECT_THAT(msix_, ElementsAre(Pair(true, true)));
  EXPECT_EQ((Read(0x70) >> 16) & PCI_MSIX_FLAGS_QSIZE, 7u) << "the table size is read-only";
  Write(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE} << 16, 0xc);
  EXPECT_THAT(msix_, ElementsAre(Pair(true, true), Pair(true, false)));
}

TEST_F(VfioPciConfigTest, StatusIsReadLiveAndItsClearsGoToTheDevice) {
  auto& device_config = kernel_.devices["0000:00:03.0"].regions[VFIO_PCI_CONFIG_REGION_INDEX].data;
  device_config[PCI_STATUS] = PCI_STATUS_INTERRUPT;  // The device drops its capability bit...
  device_config[PCI_STATUS + 1] = PCI_STATUS_REC_MASTER_ABORT >> 8;
  const uint32_t status = Read(PCI_COMMAND) >> 16;
  EXPECT_EQ(status,
            uint32_t{PCI_STATUS_INTERRUPT | PCI_STATUS_CAP_LIST | PCI_STATUS_REC_MASTER_ABORT})
      << "...but the guest's list is ours";
  // A status write goes to the device byte for byte (its bits are write-1-to-clear there);
  // the command half of the same dword is ours.
  Write(PCI_COMMAND, uint32_t{PCI_STATUS_REC_MASTER_ABORT} << 16 | PCI_COMMAND_MASTER, 0x9);
  EXPECT_EQ(DeviceConfigByte(PCI_STATUS + 1), PCI_STATUS_REC_MASTER_ABORT >> 8);
  EXPECT_EQ(DeviceConfigByte(PCI_STATUS), PCI_STATUS_INTERRUPT) << "byte 2 was not written";
  EXPECT_EQ(DeviceConfigByte(PCI_COMMAND), PCI_COMMAND_MASTER);
}

TEST_F(VfioPciConfigTest, HostileWritesChangeNothing) {
  const uint32_t id = Read(0), caps = Read(PCI_CAPABILITY_LIST);
  const uint32_t header_type = Read(0xc) >> 16;  // Cache line size and latency are plain.
  Write(0, 0xdeadbeef);
  Write(0xc, 0xffffffff);
  Write(PCI_CAPABILITY_LIST, 0x68);
  Write(0x40, 0xffffffff);  // PM capability header and control: read-only here.
  Write(0x68, 0xffffffff);  // A hidden capability.
  Write(PCI_ROM_ADDRESS, 0xffffffff);
  Write(0x200, 0xffffffff);
  EXPECT_EQ(Read(0), id);
  EXPECT_EQ(Read(0xc) >> 16, header_type);
  EXPECT_EQ(Read(PCI_CAPABILITY_LIST), caps);
  EXPECT_EQ((Read(0x40) >> 8) & 0xff, 0x50u);
  EXPECT_EQ(Read(0x68), 0u);
  EXPECT_EQ(Read(PCI_ROM_ADDRESS), 0u);
  EXPECT_EQ(DeviceConfigByte(0), 0x34) << "nothing reached the device's vendor id";
}

TEST(VfioPciConfigCreateTest, RefusesWhatItCannotEmulate) {
  FakeVfioKernel kernel;
  kernel.groups[5] = {};
  FakeVfioKernel::Device bridge = FakeVfioKernel::PciDevice(5);
  std::vector<uint8_t> c(256, 0);
  c[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_BRIDGE;
  bridge.regions[VFIO_PCI_CONFIG_REGION_INDEX].data = c;
  kernel.devices["0000:00:04.0"] = bridge;
  ASSERT_OK_AND_ASSIGN(auto container, vfio::VfioContainer::Open(kernel));
  ASSERT_OK_AND_ASSIGN(auto group, vfio::VfioGroup::Open(5, kernel));
  ASSERT_OK(group->SetContainer(container));
  ASSERT_OK(container->SetType1Iommu().status());
  ASSERT_OK_AND_ASSIGN(auto dev, group->GetDevice("0000:00:04.0"));
  EXPECT_THAT(VfioPciConfig::Create(*dev, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("header type 1")));
}

}  // namespace
}  // namespace vmmkit::passthrough
