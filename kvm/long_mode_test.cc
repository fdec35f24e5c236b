#include "kvm/long_mode.h"

#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/kvm.h"
#include "kvm/testing/kvm_fixture.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vm.h"

namespace vmmkit::kvm {
namespace {

using ::testing::HasSubstr;

class LongModeTest : public testing::KvmFixture {};

TEST_F(LongModeTest, WritesTablesAndLoadsControlRegisters) {
  ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm());
  ASSERT_OK_AND_ASSIGN(auto vcpu, vm->CreateVcpu(0));
  ASSERT_OK_AND_ASSIGN(GuestMemory mem, GuestMemory::CreateRam({{GuestAddress(0), 1 << 20}}));
  ASSERT_OK(EnterLongMode(mem, *vcpu, {.identity_map_gib = 2}));
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(0x9000)), IsOkAndHolds(0xa003u));
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(0xa008)), IsOkAndHolds(0xc003u)) << "2nd GiB";
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(0xb008)), IsOkAndHolds(0x200083u));
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(0xc000)), IsOkAndHolds(0x40000083u));
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(0x508)), IsOkAndHolds(0x00af9a000000ffffu));
  ASSERT_OK_AND_ASSIGN(kvm_sregs sregs, vcpu->GetSregs());
  EXPECT_EQ(sregs.cr3, 0x9000u);
  EXPECT_TRUE(sregs.efer & (1 << 10)) << "LMA";
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cs.selector, kLongModeCodeSelector);
  EXPECT_EQ(sregs.ss.selector, kLongModeDataSelector);
}

TEST_F(LongModeTest, FourGibIdentityMapReachesHighAddresses) {
  // A read at 0xc0001000: above 3 GiB, only reachable with 4 page directories; no RAM there, so
  // the access is an MMIO exit at exactly that guest-physical address.
  const std::vector<uint8_t> code = {
      0x48, 0xbb, 0x00, 0x10, 0x00, 0xc0, 0, 0, 0, 0,  // mov rbx, 0xc0001000
      0x8b, 0x03,                                      // mov eax, [rbx]
      0xf4,                                            // hlt
  };
  ASSERT_OK_AND_ASSIGN(auto g, testing::MakeTinyGuest(kvm(), testing::CpuMode::kLong, code));
  ASSERT_OK(EnterLongMode(g.memory, *g.vcpu, {.identity_map_gib = 4}));
  ASSERT_OK_AND_ASSIGN(VcpuExit e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::MmioRead>(e)) << DescribeExit(e);
  EXPECT_EQ(std::get<exit::MmioRead>(e).address, 0xc0001000u);
}

// Multiboot's entry state: 32-bit code (an imm32 operand is 4 bytes), paging off, PE on.
TEST_F(LongModeTest, ProtectedModeRuns32BitCodeWithoutPaging) {
  const std::vector<uint8_t> code = {
      0xb8, 0x44, 0x33, 0x22, 0x11,  // mov eax, 0x11223344
      0x66, 0xba, 0x10, 0x00,        // mov dx, 0x10
      0xef,                          // out dx, eax
      0x0f, 0x20, 0xc0,              // mov eax, cr0
      0xef,                          // out dx, eax
      0xf4,                          // hlt
  };
  ASSERT_OK_AND_ASSIGN(auto g, testing::MakeTinyGuest(kvm(), testing::CpuMode::kReal, code));
  ASSERT_OK(EnterProtectedMode(g.memory, *g.vcpu));
  EXPECT_THAT(g.memory.ReadObj<uint64_t>(GuestAddress(0x508)), IsOkAndHolds(0x00cf9a000000ffffu));
  ASSERT_OK_AND_ASSIGN(VcpuExit e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::IoOut>(e)) << DescribeExit(e);
  EXPECT_EQ(std::get<exit::IoOut>(e).size, 4);
  EXPECT_EQ(std::get<exit::IoOut>(e).value(), 0x11223344u) << "32-bit operands";
  ASSERT_OK_AND_ASSIGN(e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::IoOut>(e)) << DescribeExit(e);
  const uint64_t cr0 = std::get<exit::IoOut>(e).value();
  EXPECT_EQ(cr0 & 1, 1u) << "PE";
  EXPECT_EQ(cr0 & (1u << 31), 0u) << "no paging";
  EXPECT_EQ(cr0 & (3u << 29), 0u) << "caches on (CD, NW clear)";
  ASSERT_OK_AND_ASSIGN(kvm_sregs sregs, g.vcpu->GetSregs());
  EXPECT_EQ(sregs.efer & (1 << 10), 0u) << "not long mode";
  EXPECT_EQ(sregs.cs.db, 1);
  EXPECT_EQ(sregs.tr.type, 11) << "a busy 32-bit TSS";
  EXPECT_EQ(sregs.tr.limit, 0x67u);
}

TEST_F(LongModeTest, RejectsBadLayouts) {
  ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm());
  ASSERT_OK_AND_ASSIGN(auto vcpu, vm->CreateVcpu(0));
  ASSERT_OK_AND_ASSIGN(GuestMemory small, GuestMemory::CreateRam({{GuestAddress(0), 0x8000}}));
  EXPECT_THAT(EnterLongMode(small, *vcpu), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(EnterLongMode(small, *vcpu, {.identity_map_gib = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("identity_map_gib")));
  EXPECT_THAT(EnterLongMode(small, *vcpu, {.identity_map_gib = 5}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vmmkit::kvm
