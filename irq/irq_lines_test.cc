// The split irqchip's pieces together against the real /dev/kvm: the userspace Ioapic's pins as
// KVM routes (IoapicKvmSink), fed by eventfds (IoapicIrqLines); delivery is checked in the vCPU's
// local APIC (its IRR).
#include "irq/irq_lines.h"

#include <poll.h>

#include <cstring>
#include <memory>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "irq/irqfd.h"
#include "kvm/testing/kvm_fixture.h"

namespace vmmkit::irq {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kLevel = uint64_t{1} << 15;

class IoapicLinesTest : public kvm::testing::IrqGuestFixture {
 protected:
  IoapicLinesTest() : IrqGuestFixture(/*split_irqchip=*/true) {}
  void SetUp() override {
    IrqGuestFixture::SetUp();
    if (IsSkipped()) return;
    routes_ = std::make_unique<MsiRoutes>(vm(), 24, 8, std::vector<kvm::GsiRoute>{});
    sink_ = std::make_unique<IoapicKvmSink>(vm(), *routes_, 0xf0f8);
    ioapic_ = std::make_unique<Ioapic>(*sink_);
    ASSERT_OK_AND_ASSIGN(lines_, IoapicIrqLines::Create(*ioapic_));
  }
  void TearDown() override {
    lines_.reset();  // Before the Ioapic: it unhooks its EOI handlers.
  }
  void WriteRte(uint32_t pin, uint64_t rte) {
    for (uint32_t half : {1u, 0u}) {
      uint8_t b[4];
      const uint32_t index = 0x10 + 2 * pin + half;
      std::memcpy(b, &index, 4);
      ioapic_->Write(0x00, b);
      const uint32_t value = static_cast<uint32_t>(half ? rte >> 32 : rte);
      std::memcpy(b, &value, 4);
      ioapic_->Write(0x10, b);
    }
  }
  // Whether the IOAPIC has delivered `n` interrupts within a second (its thread runs the lines),
  // and no more.
  bool DeliveredWithin(uint64_t n) {
    for (int i = 0; i < 200 && ioapic_->stats().delivered < n; ++i) ::usleep(5000);
    return ioapic_->stats().delivered == n;
  }
  static bool Readable(const EventFd& fd) {
    pollfd p{fd.fd(), POLLIN, 0};
    return ::poll(&p, 1, 1000) == 1;
  }

  std::unique_ptr<MsiRoutes> routes_;
  std::unique_ptr<IoapicKvmSink> sink_;
  std::unique_ptr<Ioapic> ioapic_;
  std::unique_ptr<IoapicIrqLines> lines_;
};

TEST_F(IoapicLinesTest, AnEdgeLineDeliversThePinsVector) {
  WriteRte(4, 0x33);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Irqfd> com1, Irqfd::Create(*lines_, 4));
  ASSERT_OK(com1->Trigger());
  EXPECT_TRUE(Pending(0x33));
  EXPECT_TRUE(DeliveredWithin(1));
  // Masked: the edge waits in the IOAPIC, and goes out at unmask.
  WriteRte(4, (uint64_t{1} << 16) | 0x34);
  ASSERT_OK(com1->Trigger());
  EXPECT_FALSE(PendingAfterSettling(0x34));
  WriteRte(4, 0x34);
  EXPECT_TRUE(Pending(0x34));
}

TEST_F(IoapicLinesTest, AResamplingLineStaysAssertedUntilTheEoi) {
  WriteRte(16, kLevel | 0x44);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Irqfd> intx, Irqfd::CreateWithResample(*lines_, 16));
  ASSERT_OK(intx->Trigger());
  EXPECT_TRUE(Pending(0x44));
  EXPECT_NE(ioapic_->rte(16) & (uint64_t{1} << 14), 0u);  // Remote IRR.
  ioapic_->Eoi(0x44);
  ASSERT_TRUE(Readable(*intx->resample())) << "no resample at the EOI";
  ASSERT_OK(intx->resample()->Read().status());
  EXPECT_EQ(ioapic_->rte(16) & (uint64_t{1} << 14), 0u);
  EXPECT_EQ(ioapic_->stats().delivered, 1u);  // Deasserted at the EOI: not delivered again.
  // The device still needs service: it signals again, and the pin is delivered again.
  ASSERT_OK(intx->Trigger());
  EXPECT_TRUE(DeliveredWithin(2));
}

TEST_F(IoapicLinesTest, ADeassignedLineRaisesNothing) {
  WriteRte(5, 0x35);
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  ASSERT_OK(lines_->Assign(trigger, 5));
  EXPECT_THAT(lines_->Assign(trigger, 6),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  EXPECT_THAT(lines_->Assign(trigger, 24),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("GSI 24")));
  ASSERT_OK(lines_->Deassign(trigger, 5));
  ASSERT_OK(lines_->Deassign(trigger, 5));  // Not assigned: fine, as with KVM.
  EXPECT_EQ(lines_->size(), 0u);
  ASSERT_OK(trigger.Write(1));
  EXPECT_FALSE(PendingAfterSettling(0x35));
  EXPECT_EQ(ioapic_->stats().delivered, 0u);
}

TEST_F(IoapicLinesTest, PinRoutesStayOutOfTheMsiRange) {
  EXPECT_THAT(routes_->SetPinRoute(24, MsiMessage{0xfee00000, 0x30}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MSI range")));
  // A remappable RTE without interrupt remapping: the pin cannot be routed, nothing is raised.
  WriteRte(7, (uint64_t{1} << 48) | 0x37);
  EXPECT_EQ(ioapic_->stats().route_errors, 1u);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Irqfd> line, Irqfd::Create(*lines_, 7));
  ASSERT_OK(line->Trigger());
  EXPECT_FALSE(PendingAfterSettling(0x37));
}

}  // namespace
}  // namespace vmmkit::irq
