// VfioGroup and VfioDevice against the fake kernel (the lab test runs them on a real one).
#include "vfio/device.h"

#include <linux/vfio.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vfio/group.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::vfio {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using testing::FakeVfioKernel;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kEdu[] = "0000:00:03.0";

class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_.groups[5] = {};
    kernel_.devices[kEdu] = FakeVfioKernel::PciDevice(5);
    sysfs_ = fs::path(std::getenv("TEST_TMPDIR")) / "sys";
    fs::remove_all(sysfs_);
    const fs::path group = sysfs_ / "kernel/iommu_groups/5/devices";
    fs::create_directories(group);
    AddSysfsDevice(kEdu, "vfio-pci");
    fs::create_directories(sysfs_ / "bus/pci/devices" / kEdu);
    fs::create_symlink("../../../../kernel/iommu_groups/5",
                       sysfs_ / "bus/pci/devices" / kEdu / "iommu_group");
  }
  void AddSysfsDevice(const std::string& bdf, const std::string& driver) {
    const fs::path dev = sysfs_ / "kernel/iommu_groups/5/devices" / bdf;
    fs::create_directories(dev);
    if (!driver.empty())
      fs::create_symlink("../../../../bus/pci/drivers/" + driver, dev / "driver");
  }
  VfioGroupPaths Paths() const { return {"/dev/vfio", sysfs_.string()}; }

  // Container + group + device, ready to use.
  std::unique_ptr<VfioDevice> OpenEdu() {
    auto container = VfioContainer::Open(kernel_);
    EXPECT_OK(container.status());
    auto group = VfioGroup::Open(5, kernel_, Paths());
    EXPECT_OK(group.status());
    EXPECT_OK((*group)->SetContainer(*container));
    EXPECT_OK((*container)->SetType1Iommu().status());
    auto dev = (*group)->GetDevice(kEdu);
    EXPECT_OK(dev.status());
    return std::move(dev).value();
  }
  FakeVfioKernel::Device& edu() { return kernel_.devices[kEdu]; }

  FakeVfioKernel kernel_;
  fs::path sysfs_;
};

TEST_F(DeviceTest, GroupOfDeviceReadsSysfs) {
  EXPECT_THAT(VfioGroup::GroupOfDevice(kEdu, sysfs_.string()), IsOkAndHolds(5));
  EXPECT_THAT(VfioGroup::GroupOfDevice("0000:00:09.0", sysfs_.string()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("PCI device 0000:00:09.0")));
  fs::create_directories(sysfs_ / "bus/pci/devices/0000:00:05.0");
  EXPECT_THAT(VfioGroup::GroupOfDevice("0000:00:05.0", sysfs_.string()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no IOMMU group")));
}

TEST_F(DeviceTest, ANonViableGroupNamesTheDevicesInTheWay) {
  AddSysfsDevice("0000:00:04.0", "e1000e");
  AddSysfsDevice("0000:00:04.1", "snd_hda_intel");
  AddSysfsDevice("0000:00:01.0", "pcieport");  // Bridges do no DMA: not in the way.
  AddSysfsDevice("0000:00:04.2", "");          // No driver: not in the way.
  kernel_.groups[5].viable = false;
  EXPECT_THAT(VfioGroup::Open(5, kernel_, Paths()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("VFIO group 5 is not viable: every device in it must be bound to "
                                 "vfio-pci; in the way: 0000:00:04.0 (bound to e1000e), "
                                 "0000:00:04.1 (bound to snd_hda_intel)")));
  EXPECT_THAT(kernel_.OpenFds(), IsEmpty()) << "the group fd is closed again";
  EXPECT_THAT(VfioGroup::Open(6, kernel_, Paths()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("bound to vfio-pci?")));
  EXPECT_THAT(VfioGroup::Open(-1, kernel_, Paths()), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(DeviceTest, GroupJoinsAndLeavesItsContainer) {
  ASSERT_OK_AND_ASSIGN(auto container, VfioContainer::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto group, VfioGroup::Open(5, kernel_, Paths()));
  EXPECT_THAT(group->GetDevice(kEdu),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("set its IOMMU model")));
  EXPECT_THAT(group->SetContainer(nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(group->SetContainer(container));
  EXPECT_THAT(group->SetContainer(container),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already in a container")));
  ASSERT_OK_AND_ASSIGN(uint32_t flags, group->GetStatus());
  EXPECT_EQ(flags, VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
  ASSERT_OK(container->SetType1Iommu().status());
  ASSERT_OK_AND_ASSIGN(auto dev, group->GetDevice(kEdu));
  // With a device open, the group cannot leave (EBUSY), and the error says what to do.
  EXPECT_THAT(group->UnsetContainer(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                HasSubstr("close the group's devices first")));
  dev.reset();
  ASSERT_OK(group->UnsetContainer());
  EXPECT_EQ(group->container(), nullptr);
  EXPECT_THAT(group->UnsetContainer(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(group->GetDevice("0000:00:09.0"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(DeviceTest, TeardownGoesDeviceThenGroupThenContainer) {
  auto dev = OpenEdu();
  // The device holds the group and the group the container: dropping the device drops them all,
  // device fd first (else the kernel refuses the group's UNSET_CONTAINER with EBUSY).
  EXPECT_THAT(kernel_.OpenFds(),
              ElementsAre(::testing::Pair("container", 1), ::testing::Pair("device", 1),
                          ::testing::Pair("group", 1)));
  kernel_.calls.clear();
  dev.reset();
  EXPECT_THAT(kernel_.calls, ElementsAre(VFIO_GROUP_UNSET_CONTAINER));  // Succeeded: no EBUSY.
  EXPECT_THAT(kernel_.OpenFds(), IsEmpty());
}

TEST_F(DeviceTest, DeviceInfoAndRegions) {
  edu().regions[VFIO_PCI_BAR0_REGION_INDEX].sparse =
      std::vector<std::pair<uint64_t, uint64_t>>{{0, 0x3000}, {0x4000, 0}, {0x5000, 0xfb000}};
  edu().regions[VFIO_PCI_BAR0_REGION_INDEX].msix_mappable = true;
  auto dev = OpenEdu();
  EXPECT_TRUE(dev->info().is_pci());
  EXPECT_TRUE(dev->info().can_reset());
  EXPECT_EQ(dev->info().num_regions, VFIO_PCI_NUM_REGIONS);
  ASSERT_OK_AND_ASSIGN(RegionInfo bar0, dev->GetRegionInfo(VFIO_PCI_BAR0_REGION_INDEX));
  EXPECT_EQ(bar0.size, 1u << 20);
  EXPECT_TRUE(bar0.mmappable());
  EXPECT_TRUE(bar0.msix_mappable);
  ASSERT_TRUE(bar0.sparse_areas.has_value());
  EXPECT_EQ(bar0.sparse_areas->size(), 3u);
  EXPECT_EQ(bar0.MmapAreas().size(), 2u) << "empty areas are skipped";
  ASSERT_OK_AND_ASSIGN(RegionInfo bar1, dev->GetRegionInfo(VFIO_PCI_BAR1_REGION_INDEX));
  EXPECT_EQ(bar1.size, 0u);
  EXPECT_FALSE(bar1.sparse_areas.has_value());
  // The VGA region a non-VGA device does not have: the ioctl says EINVAL, accesses are refused.
  EXPECT_THAT(dev->GetRegionInfo(VFIO_PCI_VGA_REGION_INDEX),
              StatusIs(absl::StatusCode::kInvalidArgument));
  uint8_t byte[1];
  EXPECT_THAT(dev->ReadRegion(VFIO_PCI_VGA_REGION_INDEX, 0, byte),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not readable")));
  EXPECT_THAT(dev->GetRegionInfo(VFIO_PCI_NUM_REGIONS),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("index=9: the device has 9")));
}

TEST_F(DeviceTest, SparseAreasOutsideTheRegionAreRejected) {
  edu().regions[VFIO_PCI_BAR0_REGION_INDEX].sparse =
      std::vector<std::pair<uint64_t, uint64_t>>{{0xff000, 0x2000}};
  // Region layouts are read when the device is opened: a malformed one fails the open, naming it.
  ASSERT_OK_AND_ASSIGN(auto container, VfioContainer::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto group, VfioGroup::Open(5, kernel_, Paths()));
  ASSERT_OK(group->SetContainer(container));
  ASSERT_OK(container->SetType1Iommu().status());
  EXPECT_THAT(group->GetDevice(kEdu),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("index=0: sparse area 0xff000+0x2000 lies outside the 0x100000")));
  EXPECT_EQ(kernel_.OpenFds().count("device"), 0u) << "the device fd was closed again";
}

TEST_F(DeviceTest, MapRegionHonoursSparseAreas) {
  auto& bar0 = edu().regions[VFIO_PCI_BAR0_REGION_INDEX];
  bar0.data.resize(bar0.size);
  bar0.data[0] = 0xed;
  bar0.data[0x5000] = 0x42;
  // The MSI-X table at 0x3000-0x4fff is trapped by the kernel: not in any area.
  bar0.sparse = std::vector<std::pair<uint64_t, uint64_t>>{{0, 0x3000}, {0x5000, 0xfb000}};
  auto dev = OpenEdu();
  ASSERT_OK_AND_ASSIGN(MappedRegion mapped, dev->MapRegion(VFIO_PCI_BAR0_REGION_INDEX));
  ASSERT_EQ(mapped.areas().size(), 2u);
  EXPECT_EQ(kernel_.mmaps.size(), 2u);
  EXPECT_THAT(mapped.Read32(0), IsOkAndHolds(0xedu));
  EXPECT_THAT(mapped.Read32(0x5000), IsOkAndHolds(0x42u));
  EXPECT_THAT(mapped.Read32(0x3000),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("outside the mmapped areas")));
  EXPECT_THAT(mapped.Read32(0x2ffe), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mapped.Read64(0x2ff8), IsOk());
  EXPECT_THAT(mapped.Read32(0x100000), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(mapped.HostAddress(0x2ffc, 8), nullptr) << "an access may not straddle two areas";
  ASSERT_OK(mapped.Write64(0x5008, 0x1122334455667788));
  EXPECT_THAT(mapped.Read64(0x5008), IsOkAndHolds(0x1122334455667788u));
  MappedRegion moved = std::move(mapped);
  EXPECT_EQ(kernel_.mmaps.size(), 2u);
  { MappedRegion gone = std::move(moved); }
  EXPECT_THAT(kernel_.mmaps, IsEmpty()) << "unmapped once, by the last owner";
}

TEST_F(DeviceTest, MapRegionErrors) {
  auto dev = OpenEdu();
  EXPECT_THAT(dev->MapRegion(VFIO_PCI_CONFIG_REGION_INDEX),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("use ReadRegion")));
  edu().regions[VFIO_PCI_BAR0_REGION_INDEX].sparse =
      std::vector<std::pair<uint64_t, uint64_t>>{{0, 0x1000}, {0x1800, 0x1000}};
  EXPECT_THAT(dev->MapRegion(VFIO_PCI_BAR0_REGION_INDEX),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("not page aligned")));
  EXPECT_THAT(kernel_.mmaps, IsEmpty()) << "the first area was unmapped again";
}

TEST_F(DeviceTest, ConfigSpaceAccess) {
  auto& cfg = edu().regions[VFIO_PCI_CONFIG_REGION_INDEX];
  cfg.data = std::vector<uint8_t>(256);
  cfg.data[0] = 0x34;
  cfg.data[1] = 0x12;
  cfg.data[2] = 0xe8;
  cfg.data[3] = 0x11;
  auto dev = OpenEdu();
  EXPECT_THAT(dev->ReadConfig(0, 4), IsOkAndHolds(0x11e81234u));
  EXPECT_THAT(dev->ReadConfig(2, 2), IsOkAndHolds(0x11e8u));
  EXPECT_THAT(dev->ReadConfig(1, 1), IsOkAndHolds(0x12u));
  ASSERT_OK(dev->WriteConfig(4, 2, 0x0406));
  EXPECT_THAT(dev->ReadConfig(4, 2), IsOkAndHolds(0x0406u));
  EXPECT_THAT(dev->ReadConfig(1, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("naturally aligned")));
  EXPECT_THAT(dev->ReadConfig(0, 3), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(dev->ReadConfig(256, 4),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("config offset 0x100 size 4: outside the 0x100-byte region")));
  EXPECT_THAT(dev->WriteConfig(4, 1, 0x100),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wider than the access")));
  uint8_t buf[8];
  ASSERT_OK(dev->ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, 0, buf));
  EXPECT_EQ(buf[2], 0xe8);
  EXPECT_THAT(dev->ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, 252, buf),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(dev->ReadRegion(VFIO_PCI_BAR1_REGION_INDEX, 0, buf),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not readable")));
  const uint8_t data[2] = {1, 2};
  ASSERT_OK(dev->WriteRegion(VFIO_PCI_CONFIG_REGION_INDEX, 0x40, data));
  EXPECT_EQ(cfg.data[0x41], 2);
}

TEST_F(DeviceTest, IrqsWithEventfds) {
  auto dev = OpenEdu();
  ASSERT_OK_AND_ASSIGN(IrqInfo intx, dev->GetIrqInfo(VFIO_PCI_INTX_IRQ_INDEX));
  EXPECT_TRUE(intx.eventfd() && intx.maskable() && intx.automasked());
  ASSERT_OK_AND_ASSIGN(IrqInfo msix, dev->GetIrqInfo(VFIO_PCI_MSIX_IRQ_INDEX));
  EXPECT_EQ(msix.count, 8u);
  EXPECT_THAT(dev->GetIrqInfo(VFIO_PCI_NUM_IRQS), StatusIs(absl::StatusCode::kOutOfRange));

  ASSERT_OK(dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, {10, 11, -1}));
  ASSERT_OK(dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 2, {12}));  // Per-vector update.
  ASSERT_OK(dev->DisableIrqs(VFIO_PCI_MSIX_IRQ_INDEX));
  ASSERT_OK(dev->EnableIrqs(VFIO_PCI_INTX_IRQ_INDEX, 0, {13}));
  ASSERT_OK(dev->SetIntxUnmaskEventfd(14));
  ASSERT_OK(dev->UnmaskIntx());
  ASSERT_OK(dev->MaskIntx());
  const auto& sets = edu().irq_sets;
  ASSERT_EQ(sets.size(), 7u);
  const uint32_t trigger_fds = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  EXPECT_EQ(sets[0].flags, trigger_fds);
  EXPECT_THAT(sets[0].fds, ElementsAre(10, 11, -1));
  EXPECT_EQ(sets[1].start, 2u);
  EXPECT_THAT(sets[1].fds, ElementsAre(12));
  EXPECT_EQ(sets[2].flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
  EXPECT_EQ(sets[2].count, 0u);
  EXPECT_EQ(sets[4].flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK);
  EXPECT_THAT(sets[4].fds, ElementsAre(14));
  EXPECT_EQ(sets[5].flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK);
  EXPECT_EQ(sets[6].flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK);
}

TEST_F(DeviceTest, IrqArgumentsAreCheckedBeforeTheIoctl) {
  edu().irqs[VFIO_PCI_MSI_IRQ_INDEX].flags = 0;  // No eventfd support.
  auto dev = OpenEdu();
  EXPECT_THAT(dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 6, {1, 2, 3}),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("exceed the 8")));
  EXPECT_THAT(dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no eventfds")));
  EXPECT_THAT(dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, {-5}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad fd -5")));
  EXPECT_THAT(dev->EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, {3}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("takes no eventfds")));
  EXPECT_THAT(dev->EnableIrqs(VFIO_PCI_NUM_IRQS, 0, {3}), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(dev->SetIntxUnmaskEventfd(-2), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(edu().irq_sets, IsEmpty());
  kernel_.fail_with[VFIO_DEVICE_SET_IRQS] = EINVAL;
  EXPECT_THAT(
      dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, {7}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("VFIO_DEVICE_SET_IRQS 0000:00:03.0 index=2 start=0 eventfds=[7]")));
  // A long list is cut in the message: an MSI-X table has up to 2048 vectors.
  std::vector<int> many(2048, -1);
  many[0] = 7;
  EXPECT_THAT(dev->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, many),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("eventfds=[7,-1,-1,-1,-1,-1,-1,-1,... 2048 in all]")));
}

TEST_F(DeviceTest, ResetAndHotReset) {
  auto dev = OpenEdu();
  ASSERT_OK(dev->Reset());
  EXPECT_EQ(edu().resets, 1);
  kernel_.fail_with[VFIO_DEVICE_RESET] = EIO;
  EXPECT_THAT(dev->Reset(), StatusIs(::testing::_, HasSubstr("VFIO_DEVICE_RESET 0000:00:03.0")));
}

TEST_F(DeviceTest, WithoutFunctionResetHotResetNeedsEveryAffectedGroup) {
  edu().flags &= ~uint32_t{VFIO_DEVICE_FLAGS_RESET};
  edu().hot_reset_deps = {{5, "0000:00:03.0"}, {7, "0000:00:03.1"}};
  auto dev = OpenEdu();
  EXPECT_THAT(dev->Reset(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("HotReset")));
  ASSERT_OK_AND_ASSIGN(auto deps, dev->GetHotResetInfo());
  ASSERT_EQ(deps.size(), 2u);
  EXPECT_EQ(deps[1].bdf, "0000:00:03.1");
  EXPECT_EQ(deps[1].group_id, 7u);
  // Only group 5 is ours: the reset would hit 0000:00:03.1 in group 7 too.
  kernel_.groups[7] = {};
  ASSERT_OK_AND_ASSIGN(auto group7, VfioGroup::Open(7, kernel_, Paths()));
  const VfioGroup* only7[] = {group7.get()};
  EXPECT_THAT(dev->HotReset(only7),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("also resets 0000:00:03.0 (group 5); pass the groups")));
  EXPECT_EQ(edu().hot_resets, 0);
  const VfioGroup* both[] = {dev->group().get(), group7.get(), group7.get()};
  ASSERT_OK(dev->HotReset(both));
  EXPECT_EQ(edu().hot_resets, 1);
  EXPECT_THAT(edu().hot_reset_group_fds, ElementsAre(dev->group()->fd(), group7->fd()))
      << "each group once";
  // More affected devices than the first buffer holds: the kernel says ENOSPC with the count.
  for (int i = 0; i < 6; ++i) edu().hot_reset_deps.push_back({7, "0000:00:04.0"});
  ASSERT_OK_AND_ASSIGN(deps, dev->GetHotResetInfo());
  EXPECT_EQ(deps.size(), 8u) << "the buffer grew after ENOSPC";
  edu().hot_reset_deps.clear();
  EXPECT_THAT(dev->GetHotResetInfo(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot be reset through its bus")));
}

}  // namespace
}  // namespace vmmkit::vfio
