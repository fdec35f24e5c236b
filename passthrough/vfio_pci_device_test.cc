// VfioPciDevice against a fake vfio-pci device (vfio/testing) and a real KVM VM with an in-kernel
// irqchip, so that interrupt routes and irqfds are the kernel's, and delivery is checked in the
// vCPU's local APIC.
#include "passthrough/vfio_pci_device.h"

#include <fcntl.h>
#include <linux/pci_regs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>

#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/testing/kvm_fixture.h"
#include "kvm/testing/tiny_guest.h"
#include "passthrough/testing/edu_like_device.h"
#include "vfio/container.h"
#include "vfio/group.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::passthrough {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using vfio::testing::FakeVfioKernel;

constexpr char kBdf[] = "0000:00:03.0";
constexpr uint32_t kIntxGsi = 16;
constexpr uint64_t kBar0 = 0xc0000000;
constexpr uint64_t kBar4 = 0xc000;

class VfioPciDeviceTest : public kvm::testing::IrqGuestFixture {
 protected:
  void SetUp() override {
    IrqGuestFixture::SetUp();
    if (IsSkipped()) return;
    routes_ = std::make_unique<irq::MsiRoutes>(*guest_->vm, 24, 64, kvm::DefaultIrqchipRoutes());

    kernel_.groups[5] = {};
    kernel_.devices[kBdf] = passthrough::testing::EduLikeDevice(5);
    ASSERT_OK_AND_ASSIGN(auto container, vfio::VfioContainer::Open(kernel_));
    ASSERT_OK_AND_ASSIGN(group_, vfio::VfioGroup::Open(5, kernel_));
    ASSERT_OK(group_->SetContainer(container));
    ASSERT_OK(container->SetType1Iommu().status());
  }

  FakeVfioKernel::Device& FakeDevice() { return kernel_.devices[kBdf]; }
  PassthroughMachine Machine() {
    if (!lines_) lines_.emplace(*guest_->vm);
    return {*guest_->vm, memory_, mmio_, pio_, *routes_, *lines_, lock_};
  }
  std::optional<irq::KvmIrqLines> lines_;
  absl::StatusOr<std::shared_ptr<VfioPciDevice>> Attach(bool explicit_reset = true) {
    ASSIGN_OR_RETURN(std::unique_ptr<vfio::VfioDevice> dev, group_->GetDevice(kBdf));
    ASSIGN_OR_RETURN(auto d, VfioPciDevice::Create(std::move(dev), Machine(),
                                                   {.id = "hostdev0",
                                                    .device_number = 1,
                                                    .guest_requester_id = 3 << 3,
                                                    .intx_gsi = kIntxGsi,
                                                    .explicit_reset = explicit_reset}));
    RETURN_IF_ERROR(d->PlaceBars(
        [](const pci::Bar& b) -> absl::StatusOr<uint64_t> { return b.io ? kBar4 : kBar0; }));
    return d;
  }
  std::vector<AddressSpaceRegion> DeviceMemory() {
    std::vector<AddressSpaceRegion> out;
    for (const auto& r : memory_.regions()) {
      if (r.kind == RegionKind::kDeviceMemory) out.push_back(r);
    }
    return out;
  }
  uint32_t MmioRead32(uint64_t address) {
    uint32_t v = 0;
    if (!mmio_.Read(address, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4))) return ~0u;
    return v;
  }
  void MmioWrite32(uint64_t address, uint32_t v) {
    ASSERT_TRUE(mmio_.Write(address, absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&v), 4)));
  }
  const FakeVfioKernel::IrqSet& LastIrqSet(uint32_t index) {
    const auto& sets = FakeDevice().irq_sets;
    for (auto it = sets.rbegin(); it != sets.rend(); ++it) {
      if (it->index == index) return *it;
    }
    static const FakeVfioKernel::IrqSet kNone{};
    ADD_FAILURE() << "no VFIO_DEVICE_SET_IRQS for index " << index;
    return kNone;
  }
  // Signals what VFIO would: the eventfd VFIO was last given for `vector` of irq `index`.
  void DeviceFires(uint32_t index, uint32_t vector) {
    const int fd = passthrough::testing::CurrentIrqFd(FakeDevice(), index, vector);
    ASSERT_GE(fd, 0) << "VFIO has no eventfd for vector " << vector << " of irq " << index;
    const uint64_t one = 1;
    ASSERT_EQ(::write(fd, &one, 8), 8);
  }

  FakeVfioKernel kernel_;
  std::shared_ptr<vfio::VfioGroup> group_;
  std::unique_ptr<irq::MsiRoutes> routes_;
  AddressSpace memory_{"system"};
  devices::Bus mmio_{"mmio"};
  devices::Bus pio_{"pio"};
  Mutex lock_;
};

TEST_F(VfioPciDeviceTest, BarsAppearWhereTheGuestDecodesThemAndFollowMoves) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  EXPECT_EQ(dev->ConfigRead(PCI_BASE_ADDRESS_0), kBar0);
  EXPECT_TRUE(DeviceMemory().empty()) << "decoding is off until the guest enables it";
  EXPECT_EQ(MmioRead32(kBar0 + 0x10), ~0u);

  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 0x3);
  // Mapped around the MSI-X table and PBA pages [0x2000, 0x4000).
  auto regions = DeviceMemory();
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].start, GuestAddress(kBar0));
  EXPECT_EQ(regions[0].size, 0x2000u);
  EXPECT_EQ(regions[1].start, GuestAddress(kBar0 + 0x4000));
  EXPECT_EQ(regions[1].size, 0x100000u - 0x4000);
  uint32_t id;
  std::memcpy(&id, regions[0].host_address() + 0x10, 4);
  EXPECT_EQ(id, 0x010000edu) << "the slot shows the device's own BAR mapping";
  // Trapped: the MSI-X table (vector 0's control: masked) and the region behind it; I/O BAR.
  EXPECT_EQ(MmioRead32(kBar0 + 0x2000 + 12), 1u);
  EXPECT_EQ(MmioRead32(kBar0 + 0x10), 0x010000edu);
  uint8_t io = 0;
  ASSERT_TRUE(pio_.Read(kBar4 + 3, absl::MakeSpan(&io, 1)));
  EXPECT_EQ(io, 0x5a);

  dev->ConfigWrite(PCI_BASE_ADDRESS_0, 0xd0000000, 0xf);  // The guest moves it.
  regions = DeviceMemory();
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].start, GuestAddress(0xd0000000));
  EXPECT_EQ(MmioRead32(kBar0 + 0x10), ~0u);
  EXPECT_EQ(MmioRead32(0xd0000000 + 0x10), 0x010000edu);

  dev->ConfigWrite(PCI_COMMAND, 0, 0x3);
  EXPECT_TRUE(DeviceMemory().empty());
  EXPECT_EQ(MmioRead32(0xd0000000 + 0x10), ~0u);
  EXPECT_FALSE(pio_.Read(kBar4, absl::MakeSpan(&io, 1)));
}

TEST_F(VfioPciDeviceTest, ABarTheGuestPutsOverRamIsNotMappedAndTheRamStays) {
  ASSERT_OK_AND_ASSIGN(auto ram, GuestRegion::Create(GuestAddress(kBar0 + 0x4000), 0x1000));
  ASSERT_OK(memory_.AddRam("ram", ram));
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY, 0x3);
  EXPECT_TRUE(DeviceMemory().empty());
  EXPECT_EQ(MmioRead32(kBar0 + 0x10), ~0u) << "no half-placed BAR";
  const AddressSpaceRegion* r = memory_.Find(GuestAddress(kBar0 + 0x4000));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RegionKind::kRam);
  // Moved somewhere free, it works.
  dev->ConfigWrite(PCI_BASE_ADDRESS_0, 0xd0000000, 0xf);
  EXPECT_EQ(DeviceMemory().size(), 2u);
}

TEST_F(VfioPciDeviceTest, AGuestRepeatingABadBarMoveCannotFloodTheLog) {
  ASSERT_OK_AND_ASSIGN(auto ram, GuestRegion::Create(GuestAddress(0xe0000000), 0x100000));
  ASSERT_OK(memory_.AddRam("ram", ram));
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY, 0x3);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 1000; ++i) {
    dev->ConfigWrite(PCI_BASE_ADDRESS_0, 0xe0000000, 0xf);  // Over RAM: not mapped, logged.
    dev->ConfigWrite(PCI_BASE_ADDRESS_0, 0xd0000000, 0xf);  // Somewhere free.
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  const auto lines = std::count(log.begin(), log.end(), '\n');
  EXPECT_GE(lines, 1);
  EXPECT_LE(lines, 10) << log;
  EXPECT_THAT(log, HasSubstr("BAR 0 at 0xe0000000 not mapped"));
  EXPECT_EQ(DeviceMemory().size(), 2u) << "the last move, somewhere free, still took effect";
}

TEST_F(VfioPciDeviceTest, IntxIsWiredAtAttachWithTheResampleEventfdAsUnmask) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  EXPECT_EQ(FakeDevice().resets, 1) << "reset on attach";
  EXPECT_EQ(dev->interrupt_mode(), "intx");
  EXPECT_EQ(dev->ConfigRead(PCI_INTERRUPT_LINE) & 0xff, kIntxGsi);
  const auto& sets = FakeDevice().irq_sets;
  ASSERT_GE(sets.size(), 2u);
  EXPECT_EQ(sets[sets.size() - 2].index, VFIO_PCI_INTX_IRQ_INDEX);
  EXPECT_TRUE(sets[sets.size() - 2].flags & VFIO_IRQ_SET_ACTION_TRIGGER);
  EXPECT_TRUE(sets.back().flags & VFIO_IRQ_SET_ACTION_UNMASK);
  EXPECT_EQ(sets.back().fds.size(), 1u);
}

TEST_F(VfioPciDeviceTest, MsiReplacesIntxRoutesToTheGuestAndHonoursMasking) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(0x54, 0xfee00000, 0xf);  // Address (64-bit capability).
  dev->ConfigWrite(0x58, 0, 0xf);
  dev->ConfigWrite(0x5c, 0x41, 0x3);  // Data: vector 0x41.
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  EXPECT_EQ(dev->interrupt_mode(), "msi");
  EXPECT_EQ(routes_->size(), 1u);
  EXPECT_EQ(LastIrqSet(VFIO_PCI_INTX_IRQ_INDEX).count, 0u) << "INTx disabled first";
  EXPECT_EQ(LastIrqSet(VFIO_PCI_MSI_IRQ_INDEX).fds.size(), 1u);

  DeviceFires(VFIO_PCI_MSI_IRQ_INDEX, 0);
  EXPECT_TRUE(Pending(0x41));

  // Masked and reprogrammed: an interrupt meanwhile waits, and arrives on unmask.
  dev->ConfigWrite(0x60, 1, 0xf);  // Mask bits (64-bit capability: offset 0x10).
  dev->ConfigWrite(0x5c, 0x42, 0x3);
  DeviceFires(VFIO_PCI_MSI_IRQ_INDEX, 0);
  EXPECT_FALSE(PendingAfterSettling(0x42));
  dev->ConfigWrite(0x60, 0, 0xf);
  EXPECT_TRUE(Pending(0x42));

  dev->ConfigWrite(0x50, 0, 0x4);
  EXPECT_EQ(dev->interrupt_mode(), "intx");
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_EQ(LastIrqSet(VFIO_PCI_MSI_IRQ_INDEX).count, 0u);
}

TEST_F(VfioPciDeviceTest, MsixTableIsTrappedAndItsVectorsRouted) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY, 0x3);
  // As Linux does: enable with the function masked, program, unmask the function.
  dev->ConfigWrite(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL} << 16, 0x8);
  EXPECT_EQ(dev->interrupt_mode(), "msix");
  // MSI-X on in the device, but no vector wired: every vector is masked.
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_THAT(LastIrqSet(VFIO_PCI_MSIX_IRQ_INDEX).fds, ::testing::ElementsAre(-1));
  MmioWrite32(kBar0 + 0x2000 + 16 * 2 + 0, 0xfee00000);
  MmioWrite32(kBar0 + 0x2000 + 16 * 2 + 8, 0x43);
  MmioWrite32(kBar0 + 0x2000 + 16 * 2 + 12, 0);  // Vector 2 unmasked: wired now.
  EXPECT_EQ(routes_->size(), 1u);
  const auto& grown = LastIrqSet(VFIO_PCI_MSIX_IRQ_INDEX).fds;  // Room for vectors 0-2.
  ASSERT_EQ(grown.size(), 3u);
  EXPECT_EQ(grown[0], -1);
  EXPECT_EQ(grown[1], -1);
  EXPECT_GE(grown[2], 0);
  DeviceFires(VFIO_PCI_MSIX_IRQ_INDEX, 2);
  EXPECT_FALSE(PendingAfterSettling(0x43)) << "the function mask still holds it";
  dev->ConfigWrite(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE} << 16, 0x8);
  EXPECT_TRUE(Pending(0x43));
  EXPECT_EQ(routes_->delivered({1, 0x10002})->data, 0x43u);

  dev->ConfigWrite(0x70, 0, 0x8);
  EXPECT_EQ(dev->interrupt_mode(), "intx");
  EXPECT_EQ(routes_->size(), 0u);
}

TEST_F(VfioPciDeviceTest, WhatFiresWhileAVectorIsMaskedShowsInThePbaAndArrivesOnUnmask) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY, 0x3);
  dev->ConfigWrite(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL} << 16, 0x8);
  const uint64_t entry2 = kBar0 + 0x2000 + 16 * 2;
  const uint64_t pba = kBar0 + 0x3000;
  MmioWrite32(entry2 + 0, 0xfee00000);
  MmioWrite32(entry2 + 8, 0x43);
  MmioWrite32(entry2 + 12, 0);  // Vector 2 unmasked; the function mask still holds it.
  DeviceFires(VFIO_PCI_MSIX_IRQ_INDEX, 2);
  EXPECT_EQ(MmioRead32(pba), 1u << 2) << "held by the function mask";
  EXPECT_EQ(MmioRead32(pba), 1u << 2) << "reading the PBA does not consume the interrupt";
  dev->ConfigWrite(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE} << 16, 0x8);
  EXPECT_TRUE(Pending(0x43));
  EXPECT_EQ(MmioRead32(pba), 0u);

  // Masked, reprogrammed, fired: held (in the PBA), then delivered with the new message.
  MmioWrite32(entry2 + 12, 1);
  MmioWrite32(entry2 + 8, 0x44);
  DeviceFires(VFIO_PCI_MSIX_IRQ_INDEX, 2);
  EXPECT_FALSE(PendingAfterSettling(0x44));
  EXPECT_EQ(MmioRead32(pba), 1u << 2);
  MmioWrite32(entry2 + 12, 0);
  EXPECT_TRUE(Pending(0x44));
  EXPECT_EQ(MmioRead32(pba), 0u);
  DeviceFires(VFIO_PCI_MSIX_IRQ_INDEX, 2);  // Unmasked: straight through, never pending.
  EXPECT_EQ(MmioRead32(pba), 0u);

  // A vector the guest never unmasked has no eventfd in VFIO, and no route.
  EXPECT_EQ(passthrough::testing::CurrentIrqFd(FakeDevice(), VFIO_PCI_MSIX_IRQ_INDEX, 5), -1);
  EXPECT_EQ(routes_->size(), 1u);
  dev->ConfigWrite(0x70, 0, 0x8);
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_EQ(MmioRead32(pba), 0u);
}

TEST_F(VfioPciDeviceTest, WhatFiresWhileAnMsiVectorIsMaskedShowsInItsPendingBits) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  constexpr uint16_t kMask = 0x60, kPending = 0x64;  // 64-bit capability at 0x50.
  dev->ConfigWrite(0x54, 0xfee00000, 0xf);
  dev->ConfigWrite(0x58, 0, 0xf);
  dev->ConfigWrite(0x5c, 0x41, 0x3);
  dev->ConfigWrite(kMask, 1, 0xf);  // Masked before it is enabled.
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  EXPECT_EQ(dev->ConfigRead(kPending), 0u);
  DeviceFires(VFIO_PCI_MSI_IRQ_INDEX, 0);
  EXPECT_FALSE(PendingAfterSettling(0x41));
  EXPECT_EQ(dev->ConfigRead(kPending), 1u) << "held by the mask";
  EXPECT_EQ(dev->ConfigRead(kPending), 1u) << "reading the bits does not consume the interrupt";
  dev->ConfigWrite(kPending, 0, 0xf);
  EXPECT_EQ(dev->ConfigRead(kPending), 1u) << "the pending bits are read-only";
  dev->ConfigWrite(kMask, 0, 0xf);
  EXPECT_TRUE(Pending(0x41));
  EXPECT_EQ(dev->ConfigRead(kPending), 0u);
  DeviceFires(VFIO_PCI_MSI_IRQ_INDEX, 0);  // Unmasked: straight through, never pending.
  EXPECT_TRUE(Pending(0x41));
  EXPECT_EQ(dev->ConfigRead(kPending), 0u);

  // Masked and fired again, then MSI off: nothing is pending without MSI.
  dev->ConfigWrite(kMask, 1, 0xf);
  DeviceFires(VFIO_PCI_MSI_IRQ_INDEX, 0);
  EXPECT_EQ(dev->ConfigRead(kPending), 1u);
  dev->ConfigWrite(0x50, 0, 0x4);
  EXPECT_EQ(dev->ConfigRead(kPending), 0u);
  dev->Detach();
  EXPECT_EQ(dev->ConfigRead(kPending), ~0u);
}

TEST_F(VfioPciDeviceTest, DetachUndoesEverythingAndResets) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 0x3);
  dev->ConfigWrite(0x54, 0xfee00000, 0xf);
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  ASSERT_EQ(routes_->size(), 1u);
  dev.reset();
  EXPECT_TRUE(DeviceMemory().empty());
  EXPECT_EQ(MmioRead32(kBar0 + 0x10), ~0u);
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_EQ(LastIrqSet(VFIO_PCI_MSI_IRQ_INDEX).count, 0u);
  EXPECT_EQ(FakeDevice().resets, 2) << "reset on attach and on detach";
  EXPECT_TRUE(kernel_.mmaps.empty()) << "BAR mappings released";
}

TEST_F(VfioPciDeviceTest, ByDefaultTheResetIsLeftToVfioPciOnOpenAndClose) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach(/*explicit_reset=*/false));
  EXPECT_EQ(FakeDevice().resets, 0);
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0x3);
  auto device_command = [&] {
    const auto& config = FakeDevice().regions[VFIO_PCI_CONFIG_REGION_INDEX].data;
    return config[PCI_COMMAND] | config[PCI_COMMAND + 1] << 8;
  };
  EXPECT_TRUE(device_command() & PCI_COMMAND_MASTER);
  dev.reset();
  EXPECT_EQ(FakeDevice().resets, 0);
  EXPECT_EQ(device_command(), 0) << "DMA stopped before the fd closes (and vfio-pci resets it)";
}

TEST_F(VfioPciDeviceTest, DetachUnplugsNowAndLeavesOnlyTheFdForTheDestructor) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach(/*explicit_reset=*/false));
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0x3);
  dev->ConfigWrite(0x54, 0xfee00000, 0xf);
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  ASSERT_EQ(routes_->size(), 1u);
  dev->Detach();
  EXPECT_TRUE(DeviceMemory().empty());
  EXPECT_EQ(MmioRead32(kBar0 + 0x10), ~0u);
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_EQ(dev->interrupt_mode(), "none");
  EXPECT_EQ(kernel_.OpenFds()["device"], 1) << "the fd stays open until destruction";
  // A vCPU that still holds the device (it took a config access just before the unplug) sees a
  // missing function and changes nothing.
  EXPECT_EQ(dev->ConfigRead(0), ~0u);
  const size_t irq_sets = FakeDevice().irq_sets.size();
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  dev->ConfigWrite(PCI_BASE_ADDRESS_0, 0xd0000000, 0xf);
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_TRUE(DeviceMemory().empty());
  EXPECT_EQ(FakeDevice().irq_sets.size(), irq_sets);
  dev->Detach();  // Idempotent.
  dev.reset();
  EXPECT_EQ(kernel_.OpenFds()["device"], 0);
  EXPECT_EQ(FakeDevice().irq_sets.size(), irq_sets) << "nothing undone twice";
}

TEST_F(VfioPciDeviceTest, DetachDropsIntxAtOnceAndDestructionLeavesNoFdOrThread) {
  auto count = [](const char* dir) {
    return std::distance(std::filesystem::directory_iterator(dir),
                         std::filesystem::directory_iterator());
  };
  const auto fds = count("/proc/self/fd"), threads = count("/proc/self/task");
  ASSERT_OK_AND_ASSIGN(auto dev, Attach(/*explicit_reset=*/false));
  ASSERT_EQ(dev->interrupt_mode(), "intx");
  dev->Detach();
  EXPECT_EQ(LastIrqSet(VFIO_PCI_INTX_IRQ_INDEX).count, 0u) << "VFIO's INTx trigger dropped";
  EXPECT_EQ(dev->interrupt_mode(), "none");
  // KVM's side of the INTx irqfd may still be going; destruction waits for it, and then the
  // eventfds, the helper thread and the device fd are all gone.
  dev.reset();
  EXPECT_EQ(kernel_.OpenFds()["device"], 0);
  EXPECT_EQ(count("/proc/self/fd"), fds);
  EXPECT_EQ(count("/proc/self/task"), threads);
}

// KVM refusing to unbind a vector's irqfd leaves its route, and KVM may still hold the eventfd:
// the device keeps the eventfd until a later teardown removes the route.
TEST_F(VfioPciDeviceTest, AFailedRouteTeardownKeepsTheEventfdsUntilTheRouteIsGone) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(0x54, 0xfee00000, 0xf);
  dev->ConfigWrite(0x5c, 0x41, 0x3);
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  ASSERT_EQ(routes_->size(), 1u);
  const int vector_fd = passthrough::testing::CurrentIrqFd(FakeDevice(), VFIO_PCI_MSI_IRQ_INDEX, 0);
  ASSERT_GE(vector_fd, 0);
  // A pipe takes the eventfd's fd number: KVM then refuses the unbind (as in MsiRoutesTest).
  ScopedFd saved(::dup(vector_fd));
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ASSERT_EQ(::dup2(pipe_fds[0], vector_fd), vector_fd);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  dev->ConfigWrite(0x50, 0, 0x4);  // MSI off: the teardown fails.
  EXPECT_EQ(routes_->size(), 1u) << "the route stays";
  EXPECT_NE(::fcntl(vector_fd, F_GETFD), -1) << "its fd was closed with the route alive";
  // The eventfd back in its place: the detach's retry removes the route.
  ASSERT_EQ(::dup2(saved.get(), vector_fd), vector_fd);
  ASSERT_EQ(::fcntl(vector_fd, F_SETFD, FD_CLOEXEC), 0);
  dev->Detach();
  EXPECT_EQ(routes_->size(), 0u);
}

TEST_F(VfioPciDeviceTest, AFailedMsiEnableLeavesNoRoutesAndSaysSo) {
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  kernel_.fail_with[VFIO_DEVICE_SET_IRQS] = EINVAL;
  dev->ConfigWrite(0x54, 0xfee00000, 0xf);
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  EXPECT_EQ(routes_->size(), 0u);
  // Not INTx behind the guest's back (its driver waits for MSIs): no interrupts, and why.
  EXPECT_EQ(dev->interrupt_mode(), "none");
  EXPECT_THAT(dev->Describe(), HasSubstr("interrupts: none (MSI: VFIO_DEVICE_SET_IRQS"));
  kernel_.fail_with.clear();
  dev->ConfigWrite(0x50, 0, 0x4);
  dev->ConfigWrite(0x50, uint32_t{PCI_MSI_FLAGS_ENABLE} << 16, 0x4);
  EXPECT_EQ(dev->interrupt_mode(), "msi");
  EXPECT_THAT(dev->Describe(), Not(HasSubstr("(")));
}

// A table of 2048 vectors (the most MSI-X allows): only the vectors the guest unmasks get an
// eventfd and a route; more than the machine has routes for is an error the device shows.
TEST_F(VfioPciDeviceTest, AHugeMsixTableCostsOnlyTheVectorsInUse) {
  std::vector<uint8_t>& config = FakeDevice().regions[VFIO_PCI_CONFIG_REGION_INDEX].data;
  const uint16_t size = 2047;  // Table size - 1.
  std::memcpy(&config[0x72], &size, 2);
  const uint32_t pba = 0xa000;  // After the 32 KiB table at 0x2000; BIR 0.
  std::memcpy(&config[0x78], &pba, 4);
  FakeDevice().irqs[VFIO_PCI_MSIX_IRQ_INDEX].count = 2048;
  ASSERT_OK_AND_ASSIGN(auto dev, Attach());
  dev->ConfigWrite(PCI_COMMAND, PCI_COMMAND_MEMORY, 0x3);
  dev->ConfigWrite(0x70, uint32_t{PCI_MSIX_FLAGS_ENABLE} << 16, 0x8);
  const auto fds_open = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator{});
  };
  const auto before = fds_open();
  for (uint32_t v : {0u, 7u, 2047u}) {
    MmioWrite32(kBar0 + 0x2000 + 16 * v + 0, 0xfee00000);
    MmioWrite32(kBar0 + 0x2000 + 16 * v + 8, 0x40 + (v & 0xf));
    MmioWrite32(kBar0 + 0x2000 + 16 * v + 12, 0);
  }
  EXPECT_EQ(routes_->size(), 3u);
  EXPECT_EQ(fds_open() - before, 3);
  EXPECT_EQ(LastIrqSet(VFIO_PCI_MSIX_IRQ_INDEX).fds.size(), 2048u);  // Room up to vector 2047.
  DeviceFires(VFIO_PCI_MSIX_IRQ_INDEX, 2047);
  EXPECT_TRUE(Pending(0x4f));
  // The fixture's machine routes 64 vectors: the 65th unmasked (161) and later ones fail,
  // visibly (the last failure is shown); MSI-X stays, the 64 routed vectors keep working.
  for (uint32_t v = 100; v < 100 + 64; ++v) {
    MmioWrite32(kBar0 + 0x2000 + 16 * v + 0, 0xfee00000);
    MmioWrite32(kBar0 + 0x2000 + 16 * v + 8, 0x50);
    MmioWrite32(kBar0 + 0x2000 + 16 * v + 12, 0);
  }
  EXPECT_EQ(routes_->size(), 64u);
  EXPECT_EQ(dev->interrupt_mode(), "msix");
  EXPECT_THAT(dev->Describe(), HasSubstr("MSI-X: vector 163: enable MSI device 1 vector"));
  EXPECT_THAT(dev->Describe(), HasSubstr("all 64 MSI GSIs from 24 are in use"));
}

TEST_F(VfioPciDeviceTest, RefusesANullDevice) {
  EXPECT_THAT(VfioPciDevice::Create(nullptr, Machine(), {.id = "x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no VFIO device")));
}

TEST_F(VfioPciDeviceTest, MisalignedBarPlacementIsRefused) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<vfio::VfioDevice> d, group_->GetDevice(kBdf));
  ASSERT_OK_AND_ASSIGN(auto dev, VfioPciDevice::Create(std::move(d), Machine(), {.id = "x"}));
  EXPECT_THAT(dev->PlaceBars([](const pci::Bar&) -> absl::StatusOr<uint64_t> { return 0x1000; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not aligned")));
}

}  // namespace
}  // namespace vmmkit::passthrough
