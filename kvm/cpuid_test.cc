#include "kvm/cpuid.h"

#include <cstring>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"

namespace vmmkit::kvm {
namespace {

kvm_cpuid_entry2 Entry(uint32_t function, uint32_t index = 0, bool indexed = false) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  return e;
}

Cpuid Synthetic() {
  kvm_cpuid_entry2 leaf1 = Entry(1);
  leaf1.ebx = 0xff00'1234;  // Garbage APIC ID and count that must be replaced; low bits kept.
  leaf1.edx = 1u << 28;
  kvm_cpuid_entry2 leaf4 = Entry(4, 0, true);
  leaf4.eax = 0x121;  // Type 1 (data cache), level 1.
  return Cpuid({Entry(0), leaf1, leaf4, Entry(0xb, 0, true), Entry(0xb, 1, true),
                Entry(0xb, 2, true), Entry(0x80000008)});
}

TEST(CpuidTest, FindRespectsSignificantIndex) {
  Cpuid c = Synthetic();
  ASSERT_NE(c.Find(0xb, 1), nullptr);
  EXPECT_EQ(c.Find(0xb, 1)->index, 1u);
  EXPECT_EQ(c.Find(0xb, 7), nullptr);
  EXPECT_NE(c.Find(1, 5), nullptr);  // Index does not matter for leaf 1.
  EXPECT_EQ(c.Find(0x12345), nullptr);
}

TEST(CpuidTest, SetReplacesOrAppends) {
  Cpuid c = Synthetic();
  const size_t n = c.entries().size();
  kvm_cpuid_entry2 e = Entry(1);
  e.eax = 42;
  c.Set(e);
  EXPECT_EQ(c.entries().size(), n);
  EXPECT_EQ(c.Find(1)->eax, 42u);
  c.Set(Entry(0x40000010));
  EXPECT_EQ(c.entries().size(), n + 1);
}

TEST(BuildGuestCpuidTest, TopologyForEachVcpu) {
  for (uint32_t id = 0; id < 4; ++id) {
    ASSERT_OK_AND_ASSIGN(Cpuid c, BuildGuestCpuid(Synthetic(), id, 4));
    EXPECT_EQ(c.Find(1)->ebx >> 24, id) << "initial APIC ID";
    EXPECT_EQ((c.Find(1)->ebx >> 16) & 0xff, 4u) << "logical processors";
    EXPECT_EQ(c.Find(1)->ebx & 0xffff, 0x1234u) << "other fields kept";
    EXPECT_TRUE(c.Find(1)->ecx & (1u << 31)) << "hypervisor bit";
    EXPECT_TRUE(c.Find(1)->edx & (1u << 28)) << "HTT";
    EXPECT_EQ(c.Find(4, 0)->eax >> 26, 3u) << "cores per package - 1";
    EXPECT_EQ(c.Find(0xb, 0)->edx, id);
    EXPECT_EQ(c.Find(0xb, 0)->ebx, 1u);
    EXPECT_EQ(c.Find(0xb, 1)->ebx, 4u);
    EXPECT_EQ(c.Find(0xb, 1)->eax, 2u) << "APIC ID bits for 4 cores";
    EXPECT_EQ((c.Find(0xb, 1)->ecx >> 8) & 0xff, 2u) << "level type core";
    EXPECT_EQ(c.Find(0xb, 2)->ebx, 0u) << "terminating level";
    EXPECT_EQ(c.Find(0x80000008)->ecx & 0xff, 3u);
  }
}

TEST(BuildGuestCpuidTest, SingleVcpuClearsHtt) {
  ASSERT_OK_AND_ASSIGN(Cpuid c, BuildGuestCpuid(Synthetic(), 0, 1));
  EXPECT_FALSE(c.Find(1)->edx & (1u << 28));
  EXPECT_EQ(c.Find(0xb, 1)->eax, 0u);
}

TEST(BuildGuestCpuidTest, TscDeadlineTimerOnlyWhenAskedOrSupported) {
  ASSERT_OK_AND_ASSIGN(Cpuid plain, BuildGuestCpuid(Synthetic(), 0, 1));
  EXPECT_FALSE(plain.Find(1)->ecx & (1u << 24));
  ASSERT_OK_AND_ASSIGN(Cpuid with,
                       BuildGuestCpuid(Synthetic(), 0, 1, {.tsc_deadline_timer = true}));
  EXPECT_TRUE(with.Find(1)->ecx & (1u << 24));
  EXPECT_EQ(with.Find(1)->ecx & ~(1u << 24), plain.Find(1)->ecx) << "nothing else changes";
  // A newer KVM that reports it in KVM_GET_SUPPORTED_CPUID keeps it either way.
  Cpuid newer = Synthetic();
  kvm_cpuid_entry2 leaf1 = *newer.Find(1);
  leaf1.ecx |= 1u << 24;
  newer.Set(leaf1);
  ASSERT_OK_AND_ASSIGN(Cpuid kept, BuildGuestCpuid(newer, 0, 1));
  EXPECT_TRUE(kept.Find(1)->ecx & (1u << 24));
}

TEST(BuildGuestCpuidTest, KvmSignatureLeaf) {
  ASSERT_OK_AND_ASSIGN(Cpuid c, BuildGuestCpuid(Synthetic(), 0, 2));
  const kvm_cpuid_entry2* sig = c.Find(0x40000000);
  ASSERT_NE(sig, nullptr);
  char text[13] = {};
  std::memcpy(text, &sig->ebx, 4);
  std::memcpy(text + 4, &sig->ecx, 4);
  std::memcpy(text + 8, &sig->edx, 4);
  EXPECT_STREQ(text, "KVMKVMKVM");
  EXPECT_EQ(sig->eax, 0x40000001u);
}

TEST(BuildGuestCpuidTest, RejectsBadTopology) {
  EXPECT_THAT(BuildGuestCpuid(Synthetic(), 0, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildGuestCpuid(Synthetic(), 2, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("vCPU 2 of 2")));
  EXPECT_THAT(BuildGuestCpuid(Synthetic(), 0, 256), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BuildGuestCpuidTest, RealKvmAcceptsItAndReportsItBack) {
  if (std::string why = testing::KvmUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  ASSERT_OK_AND_ASSIGN(Cpuid supported, kvm.GetSupportedCpuid());
  ASSERT_OK_AND_ASSIGN(auto vm, kvm.CreateVm());
  for (uint32_t id = 0; id < 2; ++id) {
    ASSERT_OK_AND_ASSIGN(auto vcpu, vm->CreateVcpu(id));
    ASSERT_OK_AND_ASSIGN(Cpuid guest, BuildGuestCpuid(supported, id, 2));
    ASSERT_OK(vcpu->SetCpuid2(guest));
    ASSERT_OK_AND_ASSIGN(Cpuid back, vcpu->GetCpuid2());
    ASSERT_NE(back.Find(1), nullptr);
    EXPECT_EQ(back.Find(1)->ebx >> 24, id);
    EXPECT_NE(back.Find(0x40000000), nullptr);
  }
}

}  // namespace
}  // namespace vmmkit::kvm
