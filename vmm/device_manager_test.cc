// DeviceManager on the fake VFIO kernel (vfio/testing) with a fake sysfs, and a real KVM machine:
// every step of an attach made to fail in turn leaves nothing behind; removal through the guest's
// eject; and adds, removals, ejects and listings from several threads at once (TSAN pass).
#include "vmm/device_manager.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "passthrough/testing/edu_like_device.h"
#include "vfio/testing/fake_vfio_kernel.h"
#include "vmm/layout.h"
#include "vmm/vfio_pci_kind.h"

namespace vmmkit::vmm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using vfio::testing::FakeVfioKernel;

constexpr char kBdf[] = "0000:01:00.0";
constexpr char kBdf2[] = "0000:02:00.0";

class DeviceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
    ASSERT_OK_AND_ASSIGN(machine_, Machine::Create({.memory_bytes = 64 << 20,
                                                    .iommu = iommu_,
                                                    .iommu_caching_mode = caching_mode_}));
    sysfs_ = fs::path(::testing::TempDir()) /
             ("sys-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(sysfs_);
    AddHostFunction(kBdf, 5);
    AddHostFunction(kBdf2, 6);
    hotplug_ = std::make_unique<pci::HotplugSlots>(
        [] {}, [this](uint8_t slot) { dm_->OnGuestEjected(slot); });
    dm_ = std::make_unique<DeviceManager>(
        *machine_, *hotplug_,
        DeviceManagerOptions{.post =
                                 [this](std::function<void()> fn) {
                                   MutexLock lock(posted_mu_);
                                   posted_.push_back(std::move(fn));
                                   return true;
                                 },
                             .on_removed =
                                 [this](const DeviceSummary& d) {
                                   removed_.push_back(d.id);
                                   if (removed_hook_) removed_hook_(d);
                                 },
                             .platform_ids = {"com1", "boot-timer"}});
    dm_->RegisterKind("vfio-pci",
                      VfioPciKind(*machine_, {.syscalls = &kernel_, .sysfs = sysfs_.string()}));
  }
  void TearDown() override {
    dm_.reset();
    if (!sysfs_.empty()) fs::remove_all(sysfs_);
  }
  // A host function bound to vfio-pci in IOMMU group `group`, in sysfs and the fake kernel.
  void AddHostFunction(const std::string& bdf, int group) {
    const fs::path dev = sysfs_ / "bus/pci/devices" / bdf;
    fs::create_directories(dev);
    fs::create_directories(sysfs_ / "bus/pci/drivers/vfio-pci");
    fs::create_directories(sysfs_ / "kernel/iommu_groups" / std::to_string(group));
    fs::create_directory_symlink(sysfs_ / "bus/pci/drivers/vfio-pci", dev / "driver");
    fs::create_directory_symlink(sysfs_ / "kernel/iommu_groups" / std::to_string(group),
                                 dev / "iommu_group");
    kernel_.groups[group] = {};
    kernel_.devices[bdf] = passthrough::testing::EduLikeDevice(group);
  }
  size_t PostedCount() {
    MutexLock lock(posted_mu_);
    return posted_.size();
  }
  void RunPosted() {
    std::vector<std::function<void()>> work;
    {
      MutexLock lock(posted_mu_);
      work.swap(posted_);
    }
    for (auto& fn : work) fn();
  }
  uint32_t ReadHotplug(uint64_t reg) {
    uint32_t v = 0;
    hotplug_->Read(reg, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void GuestEjects(uint8_t slot) {  // What the guest's _EJ0 writes.
    const uint32_t bit = 1u << slot;
    hotplug_->Write(pci::HotplugSlots::kPcej,
                    absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&bit), 4));
  }
  bool ContainerMappingsEmpty() {  // A closed container has no mappings left in the kernel.
    return kernel_.OpenFds()["container"] == 0 || kernel_.container().mappings.empty();
  }
  // Nothing of any function is left: no listing, slot, fd, DMA mapping, route, BAR region or
  // allocated BAR address.
  void ExpectNothingLeft() {
    EXPECT_TRUE(dm_->List().empty());
    for (uint8_t slot = 1; slot < pci::PciRootBus::kSlots; ++slot) {
      EXPECT_FALSE(machine_->pci().Occupied(slot)) << "slot " << int{slot};
    }
    for (const auto& [kind, count] : kernel_.OpenFds()) EXPECT_EQ(count, 0) << kind << " fds";
    EXPECT_TRUE(ContainerMappingsEmpty());
    Resources r;
    dm_->CountResources(r);
    EXPECT_EQ(r.dma_mappings, 0u);
    EXPECT_EQ(machine_->msi_route_count(), 0u);
    EXPECT_EQ(machine_->memory_listener_count(), 1u);           // KVM's slots only.
    EXPECT_EQ(machine_->address_space().regions().size(), 1u);  // RAM only.
    // Whole windows free again.
    EXPECT_OK(machine_->mmio_space().Allocate(kPciMmioEnd - kPciMmioStart + 1, 4096).status());
    EXPECT_OK(machine_->io_space().Allocate(0x10000 - kPciIoStart, 4).status());
    EXPECT_OK(machine_->mmio_space().Free(kPciMmioStart));
    EXPECT_OK(machine_->io_space().Free(kPciIoStart));
    const auto [mmio64, mmio64_size] = PciMmio64Window(64 << 20);
    EXPECT_OK(machine_->mmio64_space().Allocate(mmio64_size, 4096).status());
    EXPECT_OK(machine_->mmio64_space().Free(mmio64));
  }

  bool iommu_ = false;        // Set before SetUp: a machine with the guest-visible VT-d unit.
  bool caching_mode_ = true;  // Its caching mode.
  std::unique_ptr<Machine> machine_;
  fs::path sysfs_;
  FakeVfioKernel kernel_;
  std::unique_ptr<pci::HotplugSlots> hotplug_;
  std::unique_ptr<DeviceManager> dm_;
  Mutex posted_mu_;  // The loop's queue: vCPUs post removals.
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(posted_mu_);
  std::vector<std::string> removed_;
  std::function<void(const DeviceSummary&)> removed_hook_;
};

TEST_F(DeviceManagerTest, AddAttachesAndTheGuestHearsOfItOnTheLoopsNextTurn) {
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, dm_->Add({.id = "hp0", .host_bdf = kBdf}, true));
  EXPECT_EQ(d.guest_bdf, "0000:00:01.0");
  EXPECT_EQ(d.host_bdf, kBdf);
  EXPECT_THAT(d.description, HasSubstr("vfio-pci 1234:11e8"));
  EXPECT_TRUE(machine_->pci().Occupied(1));
  EXPECT_EQ(kernel_.container().mappings.size(), 1u);  // All of guest RAM, in one mapping.
  Resources r;
  dm_->CountResources(r);
  EXPECT_EQ(r.dma_mapped_bytes, 64u << 20);
  EXPECT_EQ(ReadHotplug(pci::HotplugSlots::kPciu), 0u) << "told before the reply";
  RunPosted();
  EXPECT_EQ(ReadHotplug(pci::HotplugSlots::kPciu), 1u << 1);
  ASSERT_EQ(dm_->List().size(), 1u);
  EXPECT_EQ(dm_->List()[0].id, "hp0");
}

TEST_F(DeviceManagerTest, AHostFunctionsSixtyFourBitBarGoesAboveFourGiB) {
  // BAR0 as a 64-bit prefetchable memory BAR (BAR1 its upper half), as a GPU's would be.
  std::vector<uint8_t>& config = kernel_.devices[kBdf].regions[VFIO_PCI_CONFIG_REGION_INDEX].data;
  config[PCI_BASE_ADDRESS_0] = PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH;
  ASSERT_OK(dm_->Add({.id = "gpu", .host_bdf = kBdf}, false).status());
  const uint64_t low = machine_->pci().ConfigRead(0, 1, 0, PCI_BASE_ADDRESS_0) & ~0xfull;
  const uint64_t high = machine_->pci().ConfigRead(0, 1, 0, PCI_BASE_ADDRESS_1);
  const uint64_t address = high << 32 | low;
  const auto [mmio64, mmio64_size] = PciMmio64Window(64 << 20);
  EXPECT_GE(address, mmio64);
  EXPECT_LT(address, mmio64 + mmio64_size);
}

TEST_F(DeviceManagerTest, AddRefusesIdsAndFunctionsInUse) {
  ASSERT_OK(dm_->Add({.id = "hp0", .host_bdf = kBdf}, false).status());
  EXPECT_THAT(dm_->Add({.id = "hp0", .host_bdf = kBdf2}, false),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("id hp0 is in use")));
  EXPECT_THAT(
      dm_->Add({.id = "other", .host_bdf = kBdf}, false),
      StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already passed through as hp0")));
  EXPECT_THAT(dm_->Add({.id = "boot-timer", .host_bdf = kBdf2}, false),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("id boot-timer is in use")));
  EXPECT_THAT(dm_->Add({.id = "hp1", .host_bdf = kBdf2, .slot = 1}, false),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("slot 1 is taken")));
  EXPECT_EQ(dm_->List().size(), 1u);
}

struct Failure {
  const char* name;
  const char* step;  // What the error must name.
  std::function<void(FakeVfioKernel&, const fs::path&)> inject;
  bool first_only = false;  // A step only the first function takes (container, DMA map).
  bool fill_bar_window = false;
};

class DeviceManagerFailureTest : public DeviceManagerTest,
                                 public ::testing::WithParamInterface<Failure> {};

TEST_P(DeviceManagerFailureTest, AFailingStepLeavesNothingBehind) {
  const Failure& f = GetParam();
  for (bool second : {false, true}) {  // As the first function, then beside another.
    if (second && f.first_only) break;
    SCOPED_TRACE(second ? "with another function attached" : "as the first function");
    if (second) ASSERT_OK(dm_->Add({.id = "other", .host_bdf = kBdf2}, false).status());
    const auto saved_groups = kernel_.groups;
    if (f.inject) f.inject(kernel_, sysfs_);
    std::vector<uint64_t> filler;  // Another user of the BAR window holds all that is free.
    while (f.fill_bar_window) {
      absl::StatusOr<uint64_t> a = machine_->mmio_space().Allocate(1 << 20, 1 << 20);
      if (!a.ok()) break;
      filler.push_back(*a);
    }
    EXPECT_THAT(dm_->Add({.id = "hp0", .host_bdf = kBdf}, true),
                StatusIs(::testing::_, HasSubstr(f.step)));
    for (uint64_t a : filler) ASSERT_OK(machine_->mmio_space().Free(a));
    EXPECT_EQ(PostedCount(), 0u) << "the guest must not hear of a failed add";
    if (second) {
      ASSERT_EQ(dm_->List().size(), 1u);
      EXPECT_FALSE(kernel_.container().mappings.empty()) << "the other function lost its DMA";
      dm_->RemoveAll();
    }
    ExpectNothingLeft();
    kernel_.fail_with.clear();
    kernel_.open_errno = 0;
    kernel_.groups = saved_groups;
    fs::remove_all(sysfs_);
    AddHostFunction(kBdf, 5);
    AddHostFunction(kBdf2, 6);
  }
  // Once the cause is gone, the same add works.
  EXPECT_OK(dm_->Add({.id = "hp0", .host_bdf = kBdf}, true).status());
}

void FailIoctl(FakeVfioKernel& k, unsigned long request) { k.fail_with[request] = EIO; }

INSTANTIATE_TEST_SUITE_P(
    EveryStep, DeviceManagerFailureTest,
    ::testing::Values(
        Failure{.name = "ContainerOpen",
                .step = "open the VFIO container: VFIO unavailable",
                .inject = [](FakeVfioKernel& k, auto&) { k.open_errno = ENOENT; },
                .first_only = true},
        Failure{.name = "NotBoundToVfioPci",
                .step = "check the host device: 0000:01:00.0 is bound to no driver",
                .inject =
                    [](auto&, const fs::path& sys) {
                      fs::remove(sys / "bus/pci/devices" / kBdf / "driver");
                    }},
        Failure{.name = "NoIommuGroup",
                .step = "find the IOMMU group",
                .inject =
                    [](auto&, const fs::path& sys) {
                      fs::remove(sys / "bus/pci/devices" / kBdf / "iommu_group");
                    }},
        Failure{.name = "GroupNotViable",
                .step = "open the IOMMU group",
                .inject = [](FakeVfioKernel& k, auto&) { k.groups[5].viable = false; }},
        Failure{.name = "SetContainer",
                .step = "add the group to the container",
                .inject = [](FakeVfioKernel& k, auto&) { FailIoctl(k, VFIO_GROUP_SET_CONTAINER); }},
        Failure{.name = "DmaMap",
                .step = "DMA-map guest RAM",
                .inject = [](FakeVfioKernel& k, auto&) { FailIoctl(k, VFIO_IOMMU_MAP_DMA); },
                .first_only = true},
        Failure{.name = "DeviceOpen",
                .step = "open the device",
                .inject = [](FakeVfioKernel& k, auto&) { FailIoctl(k, VFIO_GROUP_GET_DEVICE_FD); }},
        Failure{.name = "DeviceInterrupts",
                .step = "attach the device",
                .inject = [](FakeVfioKernel& k, auto&) { FailIoctl(k, VFIO_DEVICE_SET_IRQS); }},
        Failure{.name = "NoRoomForBars", .step = "place the BARs", .fill_bar_window = true}),
    [](const ::testing::TestParamInfo<Failure>& info) { return std::string(info.param.name); });

TEST_F(DeviceManagerTest, TheGuestsEjectDetachesAndReportsIt) {
  ASSERT_OK(dm_->Add({.id = "hp0", .host_bdf = kBdf}, true).status());
  ASSERT_OK(dm_->Add({.id = "hp1", .host_bdf = kBdf2}, true).status());
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, dm_->BeginRemove("hp0"));
  EXPECT_THAT(d.description, HasSubstr("being removed"));
  EXPECT_EQ(ReadHotplug(pci::HotplugSlots::kPcid), 1u << 1);  // The guest is asked.
  EXPECT_THAT(dm_->BeginRemove("hp0"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already being removed")));
  GuestEjects(1);
  EXPECT_FALSE(machine_->pci().Occupied(1)) << "detached in the guest's eject write";
  EXPECT_TRUE(removed_.empty()) << "reported from the loop";
  RunPosted();
  EXPECT_THAT(removed_, ::testing::ElementsAre("hp0"));
  EXPECT_FALSE(kernel_.container().mappings.empty()) << "hp1 still needs guest RAM mapped";
  EXPECT_FALSE(dm_->CancelRemove("hp0")) << "gone already";
  // Released without being asked: the guest may.
  GuestEjects(2);
  GuestEjects(7);  // An empty slot: nothing happens.
  RunPosted();
  EXPECT_THAT(removed_, ::testing::ElementsAre("hp0", "hp1"));
  ExpectNothingLeft();
  // And the next add starts afresh: container, group, mappings.
  ASSERT_OK(dm_->Add({.id = "hp0", .host_bdf = kBdf}, true).status());
  EXPECT_EQ(kernel_.container().mappings.size(), 1u);
}

TEST_F(DeviceManagerTest, RemovalRefusalsAndCancel) {
  EXPECT_THAT(dm_->BeginRemove("nosuch"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(dm_->BeginRemove("com1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("part of the platform")));
  ASSERT_OK(dm_->Add({.id = "hp0", .host_bdf = kBdf}, false).status());
  ASSERT_OK(dm_->BeginRemove("hp0").status());
  EXPECT_TRUE(dm_->CancelRemove("hp0"));
  EXPECT_EQ(ReadHotplug(pci::HotplugSlots::kPcid), 0u) << "withdrawn before the guest read it";
  EXPECT_OK(dm_->BeginRemove("hp0").status()) << "may be asked again";
}

// What the controller does: one loop task adds the device and publishes ADDED. A guest that
// ejects the slot from a vCPU in between (it may, told or not) has its REMOVED published after.
TEST_F(DeviceManagerTest, RemovedIsNeverReportedBeforeAdded) {
  std::vector<std::string> events;
  removed_hook_ = [&](const DeviceSummary& d) { events.push_back("REMOVED " + d.id); };
  for (int round = 0; round < 3; ++round) {
    // The loop task: Add, then (as the guest ejects concurrently) publish ADDED.
    ASSERT_OK_AND_ASSIGN(DeviceSummary d,
                         dm_->Add({.id = "hp0", .host_bdf = kBdf, .slot = 3}, true));
    std::thread vcpu([&] { GuestEjects(3); });
    vcpu.join();  // The worst case: the eject completes before the task publishes.
    events.push_back("ADDED " + d.id);
    RunPosted();  // The loop's next turns.
  }
  EXPECT_THAT(events, ::testing::ElementsAre("ADDED hp0", "REMOVED hp0", "ADDED hp0", "REMOVED hp0",
                                             "ADDED hp0", "REMOVED hp0"));
  ExpectNothingLeft();
}

TEST_F(DeviceManagerTest, PostedNoticeOfADeviceGoneMeanwhileIsDropped) {
  ASSERT_OK(dm_->Add({.id = "hp0", .host_bdf = kBdf}, true).status());
  GuestEjects(1);  // Before the loop told it: a guest may eject any slot.
  RunPosted();
  EXPECT_EQ(ReadHotplug(pci::HotplugSlots::kPciu), 0u);
}

TEST_F(DeviceManagerTest, AddsRemovalsEjectsAndListingsFromManyThreads) {
  // The event loop adds and asks for removal, a "vCPU" ejects, the control plane lists: the
  // manager's lock keeps them apart (TSAN checks the rest).
  std::atomic<bool> done = false;
  std::atomic<int> added = 0;
  std::thread loop([&] {
    for (int i = 0; i < 20; ++i) {
      if (dm_->Add({.id = "hp0", .host_bdf = kBdf}, false).ok()) ++added;
      (void)dm_->BeginRemove("hp0");
      while (!dm_->List().empty() && !done) absl::SleepFor(absl::Microseconds(100));
    }
    done = true;
  });
  std::thread vcpu([&] {
    while (!done) {
      GuestEjects(1);
      absl::SleepFor(absl::Microseconds(50));
    }
  });
  std::thread control([&] {
    while (!done) {
      Resources r;
      dm_->CountResources(r);
      (void)dm_->List();
    }
  });
  loop.join();
  vcpu.join();
  control.join();
  RunPosted();
  EXPECT_EQ(added.load(), 20);
  EXPECT_EQ(removed_.size(), 20u);
  ExpectNothingLeft();
}

TEST_F(DeviceManagerTest, TeardownWhileTheLoopAddsAndAGuestEjects) {
  // Shutdown's RemoveAll runs while the loop still adds and a vCPU ejects (TSAN checks the
  // locking): every function is detached once, by whoever gets it first, and nothing is left.
  std::atomic<bool> done = false;
  std::atomic<int> added = 0;
  std::thread loop([&] {
    for (int i = 0; i < 30; ++i) {
      if (dm_->Add({.id = "a", .host_bdf = kBdf}, false).ok()) ++added;
      if (dm_->Add({.id = "b", .host_bdf = kBdf2}, false).ok()) ++added;
    }
    done = true;
  });
  std::thread vcpu([&] {
    for (uint8_t slot = 1; !done; slot = slot == 1 ? 2 : 1) GuestEjects(slot);
  });
  absl::SleepFor(absl::Milliseconds(5));
  dm_->RemoveAll();  // Shutdown, midway.
  loop.join();
  vcpu.join();
  dm_->RemoveAll();
  RunPosted();
  EXPECT_GT(added.load(), 0);
  EXPECT_LE(static_cast<int>(removed_.size()), added.load());
  ExpectNothingLeft();
}

// An emulated function, as a new device package would write one: a 32-bit and a 64-bit memory
// BAR, and a record of what the device manager did with it.
class TestFunction : public pci::PciFunction {
 public:
  uint32_t ConfigRead(uint16_t reg) override { return reg == 0 ? 0x5678abcd : 0; }
  void ConfigWrite(uint16_t, uint32_t, uint8_t) override {}
  absl::Status PlaceBars(
      const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) override {
    ASSIGN_OR_RETURN(bar0, allocate({.index = 0, .size = 0x1000}));
    ASSIGN_OR_RETURN(bar2,
                     allocate({.index = 2, .size = 1 << 20, .is64 = true, .prefetchable = true}));
    return absl::OkStatus();
  }
  std::string Describe() override { return "test function"; }
  void Detach() override { ++detaches; }
  uint64_t bar0 = 0, bar2 = 0;
  int detaches = 0;
};

class EmulatedKindTest : public DeviceManagerTest {
 protected:
  void SetUp() override {
    DeviceManagerTest::SetUp();
    if (IsSkipped()) return;
    dm_->RegisterKind(
        "test", PciFunctionKind{.summary_kind = DeviceSummary::Kind::kPci,
                                .exclusive = nullptr,
                                .create = [this](const AddDeviceSpec&, const PciSlot& slot,
                                                 StepTimer&) -> absl::StatusOr<NewPciFunction> {
                                  slots_.push_back(slot);
                                  made_ = std::make_shared<TestFunction>();
                                  return NewPciFunction{
                                      made_,
                                      [this](const std::function<void()>& destroy, StepTimer&) {
                                        ++released_;
                                        destroy();
                                      }};
                                },
                                .count_resources = nullptr});
  }
  std::vector<PciSlot> slots_;
  std::shared_ptr<TestFunction> made_;
  int released_ = 0;
};

TEST_F(EmulatedKindTest, AnyKindIsPlacedPluggedListedAndReleased) {
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, dm_->Add({.id = "t0", .slot = 4, .kind = "test"}, true));
  EXPECT_EQ(d.guest_bdf, "0000:00:04.0");
  EXPECT_EQ(d.description, "test function");
  EXPECT_EQ(d.host_bdf, "");
  ASSERT_EQ(slots_.size(), 1u);
  EXPECT_EQ(slots_[0].slot, 4);
  EXPECT_EQ(slots_[0].requester_id, 4 << 3);
  EXPECT_EQ(slots_[0].intx_gsi, SlotGsi(4));
  // The 32-bit BAR below 4 GiB, the 64-bit one in the window the DSDT's _CRS describes above it.
  EXPECT_GE(made_->bar0, kPciMmioStart);
  EXPECT_LE(made_->bar0, kPciMmioEnd);
  const auto [mmio64, mmio64_size] = PciMmio64Window(64 << 20);
  EXPECT_GE(made_->bar2, mmio64);
  EXPECT_LT(made_->bar2, mmio64 + mmio64_size);
  EXPECT_EQ(machine_->pci().ConfigRead(0, 4, 0, 0), 0x5678abcdu);  // The guest sees it.
  std::shared_ptr<TestFunction> function = made_;
  GuestEjects(4);
  EXPECT_EQ(function->detaches, 1);
  EXPECT_EQ(released_, 1);
  RunPosted();
  EXPECT_THAT(removed_, ::testing::ElementsAre("t0"));
  ExpectNothingLeft();
}

TEST_F(EmulatedKindTest, NoRoomForA64BitBarRollsBackTheWholeAdd) {
  const auto [mmio64, mmio64_size] = PciMmio64Window(64 << 20);
  ASSERT_OK(machine_->mmio64_space().Allocate(mmio64_size, 4096).status());  // Someone holds it.
  EXPECT_THAT(dm_->Add({.id = "t0", .kind = "test"}, true),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("place the BARs")));
  ASSERT_OK(machine_->mmio64_space().Free(mmio64));
  EXPECT_EQ(made_->detaches, 1);
  EXPECT_EQ(released_, 1);
  ExpectNothingLeft();  // Including the 32-bit BAR placed before the 64-bit one failed.
}

TEST_F(EmulatedKindTest, AnUnknownKindIsABadRequest) {
  EXPECT_THAT(dm_->Add({.id = "x", .kind = "nosuch"}, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no device kind nosuch")));
}

// Behind the guest-visible VT-d unit: a function's host container holds what the guest's tables
// map for it, nothing else. The guest is played through the unit's registers on the MMIO bus,
// as a vCPU's accesses reach it.
class IommuDeviceManagerTest : public DeviceManagerTest {
 protected:
  IommuDeviceManagerTest() { iommu_ = true; }
  void Reg32(uint64_t off, uint32_t v) {
    ASSERT_TRUE(machine_->mmio().Write(
        kVtdBase + off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4)));
  }
  void Reg64(uint64_t off, uint64_t v) {
    ASSERT_TRUE(machine_->mmio().Write(
        kVtdBase + off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 8)));
  }
  void Put(uint64_t gpa, uint64_t v) {
    ASSERT_OK(machine_->memory().WriteObj(GuestAddress(gpa), v));
  }
  // Register-based invalidations, as a driver without queued invalidation sends them.
  void GlobalInvalidate() {
    Reg64(iommu::vtd::kRegCcmd, (uint64_t{1} << 63) | (uint64_t{1} << 61));
    Reg64(iommu::vtd::kRegIotlb, (uint64_t{1} << 63) | (uint64_t{1} << 60));
  }
  void PageInvalidate(uint16_t domain, uint64_t iova) {
    Reg64(iommu::vtd::kRegIva, iova);
    Reg64(iommu::vtd::kRegIotlb,
          (uint64_t{1} << 63) | (uint64_t{3} << 60) | (uint64_t{domain} << 32));
  }
  std::vector<const FakeVfioKernel::Container*> Containers() {
    std::vector<const FakeVfioKernel::Container*> out;
    for (const auto& [fd, c] : kernel_.containers()) out.push_back(&c);
    return out;
  }
};

TEST_F(IommuDeviceManagerTest, EachFunctionGetsExactlyWhatTheGuestMapsForIt) {
  ASSERT_NE(machine_->iommu(), nullptr);
  ASSERT_OK(dm_->Add({.id = "a", .host_bdf = kBdf, .slot = 3}, false).status());
  ASSERT_OK(dm_->Add({.id = "b", .host_bdf = kBdf2, .slot = 4}, false).status());
  EXPECT_EQ(kernel_.OpenFds()["container"], 2) << "a container each: isolated on the host";
  ASSERT_EQ(Containers().size(), 2u);
  EXPECT_EQ(Containers()[0]->mappings.size(), 1u) << "translation off: all of RAM, 1:1";
  // The guest: a root table, a context table, one page table per domain.
  constexpr uint64_t kRoot = 0x100000, kCtx = 0x101000, kPt1 = 0x102000, kPt2 = 0x103000;
  for (uint64_t t : {kRoot, kCtx, kPt1, kPt2, 0x104000ul, 0x105000ul}) {
    for (uint64_t i = 0; i < 512; ++i) Put(t + 8 * i, 0);
  }
  Put(kRoot, kCtx | 1);
  Put(kCtx + 16 * 0x18, kPt1 | 1);  // 00:03.0 in domain 1.
  Put(kCtx + 16 * 0x18 + 8, 1 | (1 << 8));
  Put(kCtx + 16 * 0x20, kPt2 | 1);  // 00:04.0 in domain 2.
  Put(kCtx + 16 * 0x20 + 8, 1 | (2 << 8));
  Reg64(iommu::vtd::kRegRtaddr, kRoot);
  Reg32(iommu::vtd::kRegGcmd, iommu::vtd::kGcmdSrtp);
  GlobalInvalidate();
  Reg32(iommu::vtd::kRegGcmd, iommu::vtd::kGcmdTe);
  EXPECT_TRUE(Containers()[0]->mappings.empty()) << "an empty domain";
  EXPECT_TRUE(Containers()[1]->mappings.empty());
  // Domain 1 maps IOVA 0x10000 -> guest RAM 0x800000 and says so.
  Put(kPt1, 0x104000 | 3);
  Put(0x104000, 0x105000 | 3);
  Put(0x105000 + 8 * 0x10, 0x800000 | 3);
  PageInvalidate(1, 0x10000);
  ASSERT_EQ(Containers()[0]->mappings.size(), 1u);
  EXPECT_EQ(Containers()[0]->mappings.begin()->first, 0x10000u);
  EXPECT_EQ(Containers()[0]->mappings.begin()->second.size, 0x1000u);
  EXPECT_EQ(Containers()[0]->mappings.begin()->second.vaddr,
            reinterpret_cast<uint64_t>(machine_->memory().regions()[0]->host_address()) + 0x800000);
  EXPECT_TRUE(Containers()[1]->mappings.empty()) << "domain 2 does not see domain 1's page";
  Resources r;
  dm_->CountResources(r);
  EXPECT_EQ(r.dma_mappings, 1u);
  EXPECT_EQ(r.dma_mapped_bytes, 0x1000u);
  // What GetDevice reports.
  std::vector<DeviceSummary> listed = dm_->List();
  ASSERT_EQ(listed.size(), 2u);
  ASSERT_TRUE(listed[0].iommu.has_value());
  const DeviceIommuSummary& a = *listed[0].iommu;
  EXPECT_EQ(a.domain, 1);
  EXPECT_TRUE(a.translation_enabled);
  EXPECT_EQ(a.shadowed_mappings, 1u);
  EXPECT_EQ(a.page_invalidations, 1u);
  EXPECT_EQ(a.global_invalidations, 1u);
  EXPECT_EQ(a.host_map_calls, 2u) << "RAM 1:1 while translation was off, then the page";
  EXPECT_EQ(a.host_unmap_calls, 1u) << "RAM 1:1, when translation went on";
  ASSERT_TRUE(listed[1].iommu.has_value());
  EXPECT_EQ(listed[1].iommu->domain, 2);
  EXPECT_EQ(listed[1].iommu->page_invalidations, 0u) << "domain 1's invalidation is not b's";
  EXPECT_EQ(listed[1].iommu->shadowed_mappings, 0u);
  // Removed, added again: one notifier, the domain's mapping replayed into the new container.
  GuestEjects(3);
  EXPECT_EQ(machine_->iommu()->NotifierCount(0x18), 0u);
  ASSERT_OK(dm_->Add({.id = "a", .host_bdf = kBdf, .slot = 3}, false).status());
  EXPECT_EQ(machine_->iommu()->NotifierCount(0x18), 1u);
  ASSERT_EQ(kernel_.container().mappings.size(), 1u) << "the new container";
  EXPECT_EQ(kernel_.container().mappings.begin()->first, 0x10000u);
  dm_->RemoveAll();
  RunPosted();
  ExpectNothingLeft();
}

// Without caching mode the guest does not report its maps: a passthrough device could not follow
// them, so adding one fails before the guest sees anything, and leaves nothing behind.
class NoCachingModeDeviceManagerTest : public IommuDeviceManagerTest {
 protected:
  NoCachingModeDeviceManagerTest() { caching_mode_ = false; }
};

TEST_F(NoCachingModeDeviceManagerTest, PassthroughIsRefused) {
  ASSERT_FALSE(machine_->iommu()->caching_mode());
  EXPECT_THAT(dm_->Add({.id = "a", .host_bdf = kBdf, .slot = 3}, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("caching mode")));
  ExpectNothingLeft();
}

}  // namespace
}  // namespace vmmkit::vmm
