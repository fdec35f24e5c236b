#include "kvm/memory_slots.h"

#include <cstring>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vcpu.h"

namespace vmmkit::kvm {
namespace {

using testing::CpuMode;
using testing::MakeTinyGuest;
using testing::TinyGuest;

// The guest reads the qword at 0x400000 into rax, writes it to port 0x10, and halts. Whether the
// read is RAM or MMIO tells whether a slot maps that address.
const std::vector<uint8_t> kReadProbe = {
    0xbb, 0x00, 0x00, 0x40, 0x00,  // mov ebx, 0x400000
    0x48, 0x8b, 0x03,              // mov rax, [rbx]
    0x66, 0xba, 0x10, 0x00,        // mov dx, 0x10
    0xef,                          // out dx, eax
    0xf4,                          // hlt
};

TEST(KvmMemorySlotsTest, RamRegionsBecomeSlotsAndMmioDoesNot) {
  if (std::string why = testing::KvmUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  ASSERT_OK_AND_ASSIGN(TinyGuest g, MakeTinyGuest(kvm, CpuMode::kLong, kReadProbe));
  AddressSpace system("system");
  KvmMemorySlots slots(g.vm.get());
  ASSERT_OK(system.RegisterListener(&slots));
  const size_t base_slots = g.vm->slot_count();

  ASSERT_OK_AND_ASSIGN(auto extra, GuestRegion::Create(GuestAddress(0x400000), 0x1000));
  const uint32_t kMagic = 0x5a5aa5a5;
  std::memcpy(extra->host_address(), &kMagic, sizeof(kMagic));
  ASSERT_OK(system.AddRam("extra", extra));
  ASSERT_OK(system.AddMmio("device", GuestAddress(0x500000), 0x1000));
  EXPECT_EQ(g.vm->slot_count(), base_slots + 1) << "MMIO gets no slot";
  // A device's mapped memory (a passed-through BAR) does get one.
  ASSERT_OK_AND_ASSIGN(auto bar, GuestRegion::Create(GuestAddress(0x600000), 0x1000));
  ASSERT_OK(system.AddDeviceMemory("bar", bar));
  EXPECT_EQ(g.vm->slot_count(), base_slots + 2);
  ASSERT_TRUE(slots.SlotFor(GuestAddress(0x600000)).has_value());
  ASSERT_OK(system.Remove(GuestAddress(0x600000)));
  EXPECT_EQ(g.vm->slot_count(), base_slots + 1);
  ASSERT_TRUE(slots.SlotFor(GuestAddress(0x400000)).has_value());
  EXPECT_FALSE(slots.SlotFor(GuestAddress(0x500000)).has_value());

  // Mapped: the guest reads the RAM directly and reports the magic value.
  ASSERT_OK_AND_ASSIGN(VcpuExit e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::IoOut>(e)) << DescribeExit(e);
  EXPECT_EQ(std::get<exit::IoOut>(e).value(), kMagic);

  // Unmapped: the same read becomes an MMIO exit.
  ASSERT_OK(system.Remove(GuestAddress(0x400000)));
  EXPECT_EQ(g.vm->slot_count(), base_slots);
  ASSERT_OK_AND_ASSIGN(kvm_regs regs, g.vcpu->GetRegs());
  regs.rip = testing::kCodeAddress;
  ASSERT_OK(g.vcpu->SetRegs(regs));
  ASSERT_OK_AND_ASSIGN(e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::MmioRead>(e)) << DescribeExit(e);
  EXPECT_EQ(std::get<exit::MmioRead>(e).address, 0x400000u);
}

TEST(KvmMemorySlotsTest, AKernelRefusalVetoesTheRegion) {
  if (std::string why = testing::KvmUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  ASSERT_OK_AND_ASSIGN(auto vm, kvm.CreateVm());
  AddressSpace system("system");
  KvmMemorySlots slots(vm.get());
  ASSERT_OK(system.RegisterListener(&slots));
  ASSERT_OK_AND_ASSIGN(auto low, GuestRegion::Create(GuestAddress(0), 0x2000));
  ASSERT_OK(system.AddRam("low", low));
  // Already mapped by the Vm directly (not through the space): the listener's add fails, and the
  // address space does not gain the region.
  ASSERT_OK_AND_ASSIGN(auto direct, GuestRegion::Create(GuestAddress(0x10000), 0x1000));
  ASSERT_OK(vm->AddMemoryRegion(direct));
  ASSERT_OK_AND_ASSIGN(auto clash, GuestRegion::Create(GuestAddress(0x10000), 0x1000));
  EXPECT_THAT(system.AddRam("clash", clash),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::HasSubstr("kvm-slots")));
  EXPECT_EQ(system.Find(GuestAddress(0x10000)), nullptr);
  ASSERT_OK(system.UnregisterListener(&slots));
  EXPECT_EQ(vm->slot_count(), 1u) << "unregistering unmapped the space's RAM";
}

}  // namespace
}  // namespace vmmkit::kvm
