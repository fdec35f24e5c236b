#include "vmm/boot_vcpus.h"

#include <unistd.h>

#include <cstring>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "kvm/testing/kvm_fixture.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {
namespace {

class BootVcpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = kvm::testing::KvmUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_OK_AND_ASSIGN(machine_, Machine::Create({.memory_bytes = 64 << 20}));
  }
  std::unique_ptr<Machine> machine_;
};

TEST_F(BootVcpusTest, TheBspEntersTheKernelIn64BitModeWithTheZeroPage) {
  ASSERT_OK_AND_ASSIGN(auto vcpus, CreateBootVcpus(*machine_, 2,
                                                   {.entry = GuestAddress(0x1000000),
                                                    .boot_info = GuestAddress(0x7000)}));
  ASSERT_EQ(vcpus.size(), 2u);
  ASSERT_OK_AND_ASSIGN(kvm_regs bsp, vcpus[0]->GetRegs());
  EXPECT_EQ(bsp.rip, 0x1000000u);
  EXPECT_EQ(bsp.rsi, 0x7000u);
  ASSERT_OK_AND_ASSIGN(kvm_sregs sregs, vcpus[0]->GetSregs());
  EXPECT_NE(sregs.efer & (1u << 10), 0u) << "EFER.LMA: long mode active";
  EXPECT_EQ(sregs.cr3, kPageTables.raw());
  // The AP is left at its reset state for Linux to start with INIT/SIPI.
  ASSERT_OK_AND_ASSIGN(kvm_sregs ap, vcpus[1]->GetSregs());
  EXPECT_EQ(ap.efer & (1u << 10), 0u);
}

TEST_F(BootVcpusTest, AMultibootBspStartsIn32BitProtectedModeWithTheMagicAndInformation) {
  ASSERT_OK_AND_ASSIGN(auto vcpus, CreateBootVcpus(*machine_, 1,
                                                   {.protocol = BootEntry::Protocol::kMultiboot,
                                                    .entry = GuestAddress(0x10000c),
                                                    .boot_info = GuestAddress(0x7000)}));
  ASSERT_OK_AND_ASSIGN(kvm_regs bsp, vcpus[0]->GetRegs());
  EXPECT_EQ(bsp.rip, 0x10000cu);
  EXPECT_EQ(bsp.rax, 0x2badb002u);
  EXPECT_EQ(bsp.rbx, 0x7000u);
  EXPECT_EQ(bsp.rflags & (1u << 9), 0u) << "IF clear";
  ASSERT_OK_AND_ASSIGN(kvm_sregs sregs, vcpus[0]->GetSregs());
  EXPECT_EQ(sregs.cr0 & 0x80000001u, 1u) << "PE, no paging";
  EXPECT_EQ(sregs.efer & (1u << 10), 0u);
  EXPECT_EQ(sregs.cs.db, 1) << "32-bit code";
  EXPECT_EQ(sregs.cs.limit, 0xffffffffu);
}

TEST_F(BootVcpusTest, APvhBspStartsIn32BitProtectedModeWithTheStartInfo) {
  ASSERT_OK_AND_ASSIGN(auto vcpus, CreateBootVcpus(*machine_, 1,
                                                   {.protocol = BootEntry::Protocol::kPvh,
                                                    .entry = GuestAddress(0x1000040),
                                                    .boot_info = GuestAddress(0x6000)}));
  ASSERT_OK_AND_ASSIGN(kvm_regs bsp, vcpus[0]->GetRegs());
  EXPECT_EQ(bsp.rip, 0x1000040u);
  EXPECT_EQ(bsp.rbx, 0x6000u);
  EXPECT_EQ(bsp.rax, 0u) << "no Multiboot magic";
  ASSERT_OK_AND_ASSIGN(kvm_sregs sregs, vcpus[0]->GetSregs());
  EXPECT_EQ(sregs.cr0 & 0x80000001u, 1u);
  EXPECT_EQ(sregs.tr.type, 11) << "a busy 32-bit TSS, as PVH asks";
  EXPECT_EQ(sregs.tr.present, 1);
}

TEST_F(BootVcpusTest, EveryVcpuHasThePcLintWiring) {
  ASSERT_OK_AND_ASSIGN(auto vcpus, CreateBootVcpus(*machine_, 2,
                                                   {.entry = GuestAddress(0x1000000),
                                                    .boot_info = GuestAddress(0x7000)}));
  for (auto& v : vcpus) {
    ASSERT_OK_AND_ASSIGN(kvm_lapic_state lapic, v->GetLapic());
    uint32_t lint0 = 0, lint1 = 0;
    std::memcpy(&lint0, &lapic.regs[0x350], 4);
    std::memcpy(&lint1, &lapic.regs[0x360], 4);
    EXPECT_EQ(lint0 & 0x700, 0x700u) << "LINT0: ExtINT";
    EXPECT_EQ(lint1 & 0x700, 0x400u) << "LINT1: NMI";
  }
}

}  // namespace
}  // namespace vmmkit::vmm
