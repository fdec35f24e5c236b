// Irqfd against the real /dev/kvm: the GSI is routed to an MSI, so delivery shows as a vector
// pending in the vCPU's local APIC.
#include "irq/irqfd.h"

#include <unistd.h>

#include <optional>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "kvm/testing/kvm_fixture.h"

namespace vmmkit::irq {
namespace {

class IrqfdTest : public kvm::testing::IrqGuestFixture {
 protected:
  void RouteToVector(uint32_t gsi, uint8_t vector) {
    std::vector<kvm::GsiRoute> table = kvm::DefaultIrqchipRoutes();
    table.push_back({gsi, kvm::MsiRoute{.address = 0xfee00000, .data = vector, .devid = {}}});
    ASSERT_OK(vm().SetGsiRouting(table));
  }
  KvmIrqLines& lines() {
    if (!lines_) lines_.emplace(vm());
    return *lines_;
  }
  std::optional<KvmIrqLines> lines_;
};

TEST_F(IrqfdTest, ATriggerRaisesTheGsiAndDestructionUnbindsIt) {
  RouteToVector(30, 0x51);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Irqfd> irqfd, Irqfd::Create(lines(), 30));
  EXPECT_EQ(irqfd->gsi(), 30u);
  EXPECT_EQ(irqfd->resample(), nullptr);
  ScopedFd same(::dup(irqfd->event().fd()));  // The same eventfd, kept past the Irqfd.
  ASSERT_OK(irqfd->Trigger());
  EXPECT_TRUE(Pending(0x51));
  RouteToVector(30, 0x52);
  irqfd.reset();
  const uint64_t one = 1;
  ASSERT_EQ(::write(same.get(), &one, sizeof(one)), 8);
  EXPECT_FALSE(PendingAfterSettling(0x52)) << "still bound after destruction";
}

TEST_F(IrqfdTest, TheResampleFormHasItsEventfd) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Irqfd> irqfd, Irqfd::CreateWithResample(lines(), 17));
  EXPECT_NE(irqfd->resample(), nullptr);
  // A second binding of the same GSI with its own eventfds is allowed, as KVM allows it.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Irqfd> other, Irqfd::CreateWithResample(lines(), 17));
}

}  // namespace
}  // namespace vmmkit::irq
