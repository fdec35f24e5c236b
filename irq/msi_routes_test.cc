// MsiRoutes against the real /dev/kvm: routes and irqfds are checked by the interrupt arriving in
// the vCPU's local APIC (its IRR), not by trusting the ioctls.
#include "irq/msi_routes.h"

#include <linux/kvm.h>
#include <unistd.h>

#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/testing/kvm_fixture.h"
#include "kvm/testing/tiny_guest.h"

namespace vmmkit::irq {
namespace {

using ::testing::HasSubstr;

class MsiRoutesTest : public kvm::testing::IrqGuestFixture {};

TEST_F(MsiRoutesTest, AnEnabledVectorDeliversThroughItsIrqfd) {
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes());
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  ASSERT_OK_AND_ASSIGN(uint32_t gsi, routes.Enable({1, 0}, {0xfee00000, 0x41}, 0x18, trigger));
  EXPECT_EQ(gsi, 24u);
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x41));
  // The guest reprograms the vector: the next interrupt uses the new message.
  ASSERT_OK(routes.Update({1, 0}, {0xfee00000, 0x52}));
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x52));
}

TEST_F(MsiRoutesTest, MaskedVectorsDoNotDeliver) {
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes());
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  ASSERT_OK(routes.Enable({1, 0}, {0xfee00000, 0x61}, 0x18, trigger, /*masked=*/true).status());
  ASSERT_OK(trigger.Write(1));
  EXPECT_FALSE(PendingAfterSettling(0x61));
  ASSERT_OK(routes.Unmask({1, 0}));
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x61));
  ASSERT_OK(routes.Mask({1, 0}));
  ASSERT_OK(routes.Update({1, 0}, {0xfee00000, 0x62}));
  ASSERT_OK(trigger.Write(1));
  EXPECT_FALSE(PendingAfterSettling(0x62));
  ASSERT_OK(routes.Disable({1, 0}));
  EXPECT_EQ(routes.size(), 0u);
}

// An interrupt remapping table in miniature: handle 5 belongs to requester 0x18 and means vector
// 0x71 on APIC 0 (iommu/'s InterruptRemappingTable is the real one); compatibility-format
// messages pass unless `block_compatibility` (VT-d's CFI clear).
class OneEntryTranslator : public MsiTranslator {
 public:
  absl::StatusOr<MsiMessage> Translate(const MsiMessage& msg, uint16_t source_id) override {
    ++calls;
    if (!IsRemappableFormat(msg)) {
      if (block_compatibility) return absl::PermissionDeniedError("compatibility format blocked");
      return msg;
    }
    if (((msg.address >> 5) & 0x7fff) != 5) return absl::NotFoundError("no such handle");
    if (source_id != 0x18) return absl::PermissionDeniedError("not this requester's handle");
    if (!present) return absl::NotFoundError("entry 5 is not present");
    return MsiMessage{0xfee00000, vector};
  }
  uint32_t vector = 0x71;
  bool present = true;
  bool block_compatibility = false;
  int calls = 0;
};

TEST_F(MsiRoutesTest, RemappableMessagesGoThroughTheTranslator) {
  OneEntryTranslator irt;
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes(), &irt);
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  const MsiMessage remappable{0xfee00000 | (5 << 5) | (1 << 4), 0};
  ASSERT_OK(routes.Enable({2, 0}, remappable, 0x18, trigger).status());
  EXPECT_EQ(routes.delivered({2, 0}), (MsiMessage{0xfee00000, 0x71}));
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x71));
  // Another requester presenting the same handle gets no route.
  ASSERT_OK_AND_ASSIGN(EventFd other, EventFd::Create());
  EXPECT_THAT(routes.Enable({3, 0}, remappable, 0x20, other),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("enable MSI device 3")));
  MsiRoutes no_ir(vm(), 40, 8, kvm::DefaultIrqchipRoutes());
  EXPECT_THAT(no_ir.Enable({2, 0}, remappable, 0x18, trigger),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("remapping is not enabled")));
}

TEST_F(MsiRoutesTest, RetranslationFollowsTheRemappingTable) {
  OneEntryTranslator irt;
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes(), &irt);
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  const MsiMessage remappable{0xfee00000 | (5 << 5) | (1 << 4), 0};
  ASSERT_OK(routes.Enable({2, 0}, remappable, 0x18, trigger).status());
  // The guest points entry 5 at another vector and invalidates: the route follows.
  irt.vector = 0x72;
  ASSERT_OK(routes.Retranslate());
  EXPECT_EQ(routes.delivered({2, 0}), (MsiMessage{0xfee00000, 0x72}));
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x72));
  // It clears the entry: the vector is blocked, its irqfd delivers nothing.
  irt.present = false;
  ASSERT_OK(routes.Retranslate());
  EXPECT_EQ(routes.delivered({2, 0}), std::nullopt);
  irt.vector = 0x73;
  ASSERT_OK(trigger.Write(1));
  EXPECT_FALSE(PendingAfterSettling(0x73));
  // And sets it again.
  irt.present = true;
  ASSERT_OK(routes.Retranslate());
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x73));
  EXPECT_EQ(routes.size(), 1u);
}

// With remapping on, a compatibility-format message is the translator's to pass or block too: a
// guest that cleared VT-d's CFI must not see a device get around its remapping table with one.
TEST_F(MsiRoutesTest, CompatibilityFormatMessagesAskTheTranslatorToo) {
  OneEntryTranslator irt;
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes(), &irt);
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  const MsiMessage compat{0xfee00000, 0x61};
  ASSERT_OK(routes.Enable({2, 0}, compat, 0x18, trigger).status());
  EXPECT_EQ(irt.calls, 1);
  EXPECT_EQ(routes.delivered({2, 0}), compat);
  // The guest blocks the format: the route goes at the next retranslation...
  irt.block_compatibility = true;
  ASSERT_OK(routes.Retranslate());
  EXPECT_EQ(routes.delivered({2, 0}), std::nullopt);
  ASSERT_OK(trigger.Write(1));
  EXPECT_FALSE(PendingAfterSettling(0x61));
  // ...no new one is made, and a pin route gets none.
  ASSERT_OK_AND_ASSIGN(EventFd other, EventFd::Create());
  EXPECT_THAT(routes.Enable({3, 0}, {0xfee00000, 0x62}, 0x18, other),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("compatibility format")));
  EXPECT_THAT(routes.SetPinRoute(40, MsiMessage{0xfee00000, 0x63}, 0xf0),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("route of GSI 40")));
  EXPECT_EQ(routes.size(), 1u);
  // Let through again, the blocked route comes back.
  irt.block_compatibility = false;
  ASSERT_OK(routes.Retranslate());
  EXPECT_EQ(routes.delivered({2, 0}), compat);
  ASSERT_OK(trigger.Write(1));
  EXPECT_TRUE(Pending(0x61));
}

TEST_F(MsiRoutesTest, DisableDeviceTakesAllItsVectorsAndNothingElse) {
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes());
  std::vector<EventFd> fds;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(EventFd fd, EventFd::Create());
    fds.push_back(std::move(fd));
  }
  for (uint32_t i = 0; i < 4; ++i) {  // Device 1: four vectors, the last one masked.
    ASSERT_OK(
        routes.Enable({1, i}, {0xfee00000, 0x41 + i}, 0x18, fds[i], /*masked=*/i == 3).status());
  }
  ASSERT_OK(routes.Enable({2, 0}, {0xfee00000, 0x51}, 0x20, fds[4]).status());
  ASSERT_OK(routes.DisableDevice(1));
  EXPECT_EQ(routes.size(), 1u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_FALSE(routes.gsi({1, i}).has_value());
  for (size_t i = 0; i < 4; ++i) ASSERT_OK(fds[i].Write(1));
  EXPECT_FALSE(PendingAfterSettling(0x41));
  EXPECT_FALSE(PendingNow(0x42));
  // Device 2 is untouched, and device 1's GSIs and eventfds can be used again (KVM refuses an
  // eventfd that is still bound).
  ASSERT_OK(fds[4].Write(1));
  EXPECT_TRUE(Pending(0x51));
  ASSERT_OK_AND_ASSIGN(uint32_t gsi, routes.Enable({3, 0}, {0xfee00000, 0x61}, 0x28, fds[0]));
  EXPECT_EQ(gsi, 24u);
  ASSERT_OK(fds[0].Write(1));
  EXPECT_TRUE(Pending(0x61));
  EXPECT_OK(routes.DisableDevice(9));  // No vectors: nothing to do.
  EXPECT_EQ(routes.size(), 2u);
}

TEST_F(MsiRoutesTest, DisableDeviceRollsBackWhenAnUnbindFails) {
  MsiRoutes routes(vm(), 24, 8, kvm::DefaultIrqchipRoutes());
  std::vector<EventFd> fds;
  fds.reserve(3);  // MsiRoutes keeps pointers to them.
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(EventFd fd, EventFd::Create());
    fds.push_back(std::move(fd));
    ASSERT_OK(routes.Enable({1, i}, {0xfee00000, 0x41 + i}, 0x18, fds[i]).status());
  }
  // KVM can only be made to refuse the last vector's unbind by giving it something that is not
  // an eventfd: a pipe takes that eventfd's fd number (KVM keeps its own reference to the eventfd,
  // so the irqfd stays bound until the VM goes).
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ASSERT_GE(::dup2(pipe_fds[0], fds[2].fd()), 0);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_THAT(routes.DisableDevice(1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disable MSI device 1")));
  // All or nothing: the routes are back, and the vectors unbound before the failure are bound
  // again and deliver.
  EXPECT_EQ(routes.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(routes.gsi({1, i}).has_value());
  ASSERT_OK(fds[0].Write(1));
  EXPECT_TRUE(Pending(0x41));
  ASSERT_OK(fds[1].Write(1));
  EXPECT_TRUE(Pending(0x42));
}

TEST_F(MsiRoutesTest, ErrorsLeaveEverythingAsItWas) {
  MsiRoutes routes(vm(), 24, 2, kvm::DefaultIrqchipRoutes());
  ASSERT_OK_AND_ASSIGN(EventFd a, EventFd::Create());
  ASSERT_OK_AND_ASSIGN(EventFd b, EventFd::Create());
  ASSERT_OK_AND_ASSIGN(EventFd c, EventFd::Create());
  ASSERT_OK(routes.Enable({1, 0}, {0xfee00000, 0x41}, 0, a).status());
  EXPECT_THAT(routes.Enable({1, 0}, {0xfee00000, 0x41}, 0, a),
              StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK(routes.Enable({1, 1}, {0xfee00000, 0x42}, 0, b).status());
  EXPECT_THAT(routes.Enable({1, 2}, {0xfee00000, 0x43}, 0, c),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("all 2 MSI GSIs")));
  EXPECT_EQ(routes.size(), 2u);
  // The same eventfd cannot be bound twice to one GSI... but a second irqfd for an eventfd
  // already in use is refused by KVM (EBUSY): the route is rolled back.
  ASSERT_OK(routes.Disable({1, 1}));
  EXPECT_THAT(routes.Enable({1, 3}, {0xfee00000, 0x44}, 0, a),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("KVM_IRQFD")));
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_FALSE(routes.gsi({1, 3}).has_value());
  EXPECT_THAT(routes.Update({9, 9}, {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("update MSI device 9 vector 9")));
  EXPECT_THAT(routes.Mask({9, 9}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(routes.Disable({9, 9}), StatusIs(absl::StatusCode::kNotFound));
  // The first vector still works.
  ASSERT_OK(a.Write(1));
  EXPECT_TRUE(Pending(0x41));
}

}  // namespace
}  // namespace vmmkit::irq
