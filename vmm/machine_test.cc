#include "vmm/machine.h"

#include <unistd.h>

#include <cstring>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "irq/irqfd.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {
namespace {

class MachineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
    ASSERT_OK_AND_ASSIGN(machine_, Machine::Create({.memory_bytes = 64 << 20}));
  }
  uint32_t PciConfigRead(uint8_t slot, uint16_t reg) {
    const uint32_t address = 0x80000000u | (uint32_t{slot} << 11) | reg;
    machine_->pio().Write(kPortPciConfig,
                          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&address), 4));
    uint32_t value = 0;
    if (!machine_->pio().Read(kPortPciConfig + 4,
                              absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), 4))) {
      return ~0u;
    }
    return value;
  }
  std::unique_ptr<Machine> machine_;
};

TEST_F(MachineTest, GuestRamIsInTheAddressSpaceAndKvmFollowsIt) {
  ASSERT_EQ(machine_->memory().regions().size(), 1u);
  EXPECT_EQ(machine_->memory().regions()[0]->size(), 64u << 20);
  EXPECT_EQ(machine_->memory_listener_count(), 1u);  // KVM's memory slots.
  ASSERT_EQ(machine_->address_space().regions().size(), 1u);
  EXPECT_EQ(machine_->address_space().regions()[0].kind, RegionKind::kRam);
}

TEST_F(MachineTest, DevicesDmaIntoGuestRamAndNowhereElse) {
  ASSERT_OK(machine_->dma().WriteObj<uint32_t>(Iova(0x1000), 0x12345678));
  EXPECT_THAT(machine_->memory().ReadObj<uint32_t>(GuestAddress(0x1000)),
              IsOkAndHolds(0x12345678u));
  EXPECT_THAT(machine_->dma().ReadObj<uint32_t>(Iova(kEcamBase)),
              StatusIs(absl::StatusCode::kOutOfRange));
}

TEST_F(MachineTest, ThePciHostBridgeAnswersOnBothConfigMechanisms) {
  const uint32_t id = PciConfigRead(0, 0);
  EXPECT_EQ(id & 0xffff, pci::PciHostBridge::kVendorId);
  EXPECT_EQ(PciConfigRead(5, 0), ~0u);  // An empty slot.
  uint32_t ecam = 0;
  ASSERT_TRUE(
      machine_->mmio().Read(kEcamBase, absl::MakeSpan(reinterpret_cast<uint8_t*>(&ecam), 4)));
  EXPECT_EQ(ecam, id);
}

TEST_F(MachineTest, BarsArePlacedInTheWindowsTheDsdtDescribes) {
  ASSERT_OK_AND_ASSIGN(uint64_t mmio, machine_->mmio_space().Allocate(1 << 20, 1 << 20));
  EXPECT_GE(mmio, kPciMmioStart);
  EXPECT_LE(mmio + (1 << 20) - 1, kPciMmioEnd);
  ASSERT_OK_AND_ASSIGN(uint64_t io, machine_->io_space().Allocate(0x100, 0x100));
  EXPECT_GE(io, kPciIoStart);
  EXPECT_LE(io + 0xff, 0xffffu);
}

TEST_F(MachineTest, TheMsiRouteTableLivesWithTheMachine) {
  EXPECT_EQ(machine_->msi_route_count(), 0u);
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  {
    MutexLock lock(machine_->lock());
    ASSERT_OK(machine_->msi_routes()
                  .Enable({1, 0}, {.address = 0xfee00000, .data = 0x30}, 0x18, trigger)
                  .status());
  }
  EXPECT_EQ(machine_->msi_route_count(), 1u);
}

TEST_F(MachineTest, WithoutAnIommuDmaIsGuestPhysical) {
  EXPECT_EQ(machine_->iommu(), nullptr);
  uint32_t reg = 0;
  EXPECT_FALSE(machine_->mmio().Read(kVtdBase, absl::MakeSpan(reinterpret_cast<uint8_t*>(&reg), 4)))
      << "nothing at the VT-d address";
  std::unique_ptr<DmaSpace> dma = machine_->DmaFor(0x18);
  ASSERT_OK(dma->WriteObj(Iova(0x2000), uint32_t{7}));
  ASSERT_OK_AND_ASSIGN(uint32_t v, machine_->memory().ReadObj<uint32_t>(GuestAddress(0x2000)));
  EXPECT_EQ(v, 7u);
}

TEST(MachineIommuTest, TheVtdUnitAnswersAtItsAddressAndTranslatesDma) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Machine> m,
                       Machine::Create({.memory_bytes = 64 << 20, .iommu = true}));
  ASSERT_NE(m->iommu(), nullptr);
  uint32_t version = 0;
  ASSERT_TRUE(m->mmio().Read(kVtdBase, absl::MakeSpan(reinterpret_cast<uint8_t*>(&version), 4)));
  EXPECT_EQ(version, 0x10u);
  std::unique_ptr<DmaSpace> dma = m->DmaFor(0x18);
  // Translation off: 1:1, like the hardware before the guest's driver enables it.
  ASSERT_OK(dma->WriteObj(Iova(0x3000), uint32_t{9}));
  ASSERT_OK_AND_ASSIGN(uint32_t v, m->memory().ReadObj<uint32_t>(GuestAddress(0x3000)));
  EXPECT_EQ(v, 9u);
  // Translation on with an empty root table: every access faults.
  const uint32_t te = iommu::vtd::kGcmdTe;
  ASSERT_TRUE(m->mmio().Write(kVtdBase + iommu::vtd::kRegGcmd,
                              absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&te), 4)));
  EXPECT_FALSE(dma->WriteObj(Iova(0x3000), uint32_t{1}).ok());
  ASSERT_OK_AND_ASSIGN(v, m->memory().ReadObj<uint32_t>(GuestAddress(0x3000)));
  EXPECT_EQ(v, 9u);
}

TEST(MachineSplitIrqchipTest, TheIoapicIsTheMachinesAndItsPinsBecomeRoutes) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Machine> m,
      Machine::Create(
          {.memory_bytes = 64 << 20, .irqchip = irq::IrqchipMode::kSplit, .ioapic_id = 1}));
  ASSERT_NE(m->ioapic(), nullptr);
  auto write32 = [&](uint64_t offset, uint32_t v) {
    return m->mmio().Write(kIoapicAddress + offset,
                           absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4));
  };
  auto read32 = [&](uint64_t offset) {
    uint32_t v = 0;
    EXPECT_TRUE(
        m->mmio().Read(kIoapicAddress + offset, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4)));
    return v;
  };
  ASSERT_TRUE(write32(0x00, 0x00));
  EXPECT_EQ(read32(0x10), 1u << 24);  // The ID the MADT gives it.
  ASSERT_TRUE(write32(0x00, 0x01));
  EXPECT_EQ(read32(0x10), 0x00170020u);
  // Unmasking COM1's pin puts its route into the machine's table, next to no irqchip routes.
  ASSERT_TRUE(write32(0x00, 0x10 + 2 * 4));
  ASSERT_TRUE(write32(0x10, 0x34));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<irq::Irqfd> com1, irq::Irqfd::Create(m->irq_lines(), 4));
  ASSERT_OK(com1->Trigger());
  for (int i = 0; i < 200 && m->ioapic()->stats().delivered == 0; ++i) ::usleep(5000);
  EXPECT_EQ(m->ioapic()->stats().delivered, 1u);
  EXPECT_EQ(m->ioapic()->stats().route_errors, 0u);
  // No in-kernel irqchip: resampling is the IOAPIC's, and works for the INTx GSIs.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<irq::Irqfd> intx,
                       irq::Irqfd::CreateWithResample(m->irq_lines(), kPciIntxFirstGsi));
}

TEST(MachineSplitIrqchipTest, WithTheVtdUnitInterruptsAreRemapped) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
  for (irq::IrqchipMode mode : {irq::IrqchipMode::kInKernel, irq::IrqchipMode::kSplit}) {
    ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Machine> m,
        Machine::Create({.memory_bytes = 64 << 20, .iommu = true, .irqchip = mode}));
    uint64_t ecap = 0;
    ASSERT_TRUE(m->mmio().Read(kVtdBase + iommu::vtd::kRegEcap,
                               absl::MakeSpan(reinterpret_cast<uint8_t*>(&ecap), 8)));
    // Interrupt remapping needs the IOAPIC in vmm: only the split irqchip offers it.
    EXPECT_EQ((ecap >> 3) & 1, mode == irq::IrqchipMode::kSplit ? 1u : 0u);
  }
  // A remappable MSI is the unit's to translate: refused while the guest has not enabled it.
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Machine> m,
      Machine::Create(
          {.memory_bytes = 64 << 20, .iommu = true, .irqchip = irq::IrqchipMode::kSplit}));
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  MutexLock lock(m->lock());
  EXPECT_THAT(m->msi_routes().Enable({1, 0}, {0xfee00000 | (5 << 5) | (1 << 4), 0}, 0x18, trigger),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("has not enabled interrupt remapping")));
}

}  // namespace
}  // namespace vmmkit::vmm
