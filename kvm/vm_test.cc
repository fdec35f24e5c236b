#include "kvm/vm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <chrono>
#include <thread>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/kvm.h"
#include "kvm/testing/kvm_fixture.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vcpu.h"

namespace vmmkit::kvm {
namespace {

using testing::CpuMode;
using ::testing::HasSubstr;
using testing::MakeTinyGuest;
using ::testing::StartsWith;
using testing::TinyGuest;

class VmTest : public testing::KvmFixture {
 protected:
  std::shared_ptr<GuestRegion> Region(uint64_t start, uint64_t size) {
    auto r = GuestRegion::Create(GuestAddress(start), size);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nullptr;
  }
};

bool Readable(const EventFd& e) {
  pollfd p{.fd = e.fd(), .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) == 1;
}

TEST_F(VmTest, SlotsAreManagedAndOverlapsRejectedBeforeTheKernel) {
  ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm());
  auto a = Region(0, 0x10000);
  auto b = Region(0x10000, 0x10000);
  auto overlap = Region(0xf000, 0x2000);
  ASSERT_OK_AND_ASSIGN(uint32_t slot_a, vm->AddMemoryRegion(a));
  ASSERT_OK_AND_ASSIGN(uint32_t slot_b, vm->AddMemoryRegion(b));
  EXPECT_EQ(slot_a, 0u);
  EXPECT_EQ(slot_b, 1u);
  EXPECT_THAT(vm->AddMemoryRegion(overlap),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("overlaps slot 0")));
  EXPECT_THAT(vm->AddMemoryRegion(nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(vm->SlotAt(GuestAddress(0x10fff)), 1u);
  EXPECT_EQ(vm->SlotAt(GuestAddress(0x20000)), std::nullopt);
  ASSERT_OK(vm->RemoveMemoryRegion(slot_a));
  EXPECT_THAT(vm->RemoveMemoryRegion(slot_a), StatusIs(absl::StatusCode::kNotFound));
  // The lowest free slot is reused.
  EXPECT_THAT(vm->AddMemoryRegion(overlap), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(vm->AddMemoryRegion(Region(0, 0x1000)), IsOkAndHolds(0u));
  EXPECT_EQ(vm->slot_count(), 2u);
}

TEST_F(VmTest, SlotExhaustionIsResourceExhausted) {
  // A Vm adopting a real VM fd with a limit of two slots.
  int raw = ::ioctl(kvm().fd(), KVM_CREATE_VM, 0);
  ASSERT_GE(raw, 0);
  Vm vm(ScopedFd(raw), 4096 * 3, 2);
  ASSERT_OK(vm.AddMemoryRegion(Region(0, 0x1000)));
  ASSERT_OK(vm.AddMemoryRegion(Region(0x1000, 0x1000)));
  EXPECT_THAT(vm.AddMemoryRegion(Region(0x2000, 0x1000)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("all 2 memory slots")));
}

TEST_F(VmTest, IoeventfdFiresWithoutAUserspaceExit) {
  const std::vector<uint8_t> code = {
      0x66, 0xba, 0x00, 0x05,  // mov dx, 0x500
      0xb0, 0x42,              // mov al, 0x42
      0xee,                    // out dx, al   (ioeventfd, datamatch 0x42: no exit)
      0xb0, 0x43,              // mov al, 0x43
      0xee,                    // out dx, al   (datamatch misses: userspace exit)
      0x48, 0xbb, 0x00, 0x00, 0x00, 0x20, 0, 0, 0, 0,  // mov rbx, 0x20000000
      0x89, 0x03,                                      // mov [rbx], eax (MMIO ioeventfd)
      0xf4,                                            // hlt
  };
  ASSERT_OK_AND_ASSIGN(TinyGuest g, MakeTinyGuest(kvm(), CpuMode::kLong, code));
  ASSERT_OK_AND_ASSIGN(EventFd pio, EventFd::Create());
  ASSERT_OK_AND_ASSIGN(EventFd mmio, EventFd::Create());
  ASSERT_OK(g.vm->RegisterIoevent(pio, IoBus::kPio, 0x500, 1, 0x42));
  ASSERT_OK(g.vm->RegisterIoevent(mmio, IoBus::kMmio, testing::kMmioAddress, 4));
  ASSERT_OK_AND_ASSIGN(VcpuExit e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::IoOut>(e)) << DescribeExit(e);
  EXPECT_EQ(std::get<exit::IoOut>(e).value(), 0x43u);
  EXPECT_THAT(pio.Read(), IsOkAndHolds(1u));
  ASSERT_OK_AND_ASSIGN(e, g.vcpu->Run());
  EXPECT_TRUE(std::holds_alternative<exit::Hlt>(e)) << DescribeExit(e);
  EXPECT_THAT(mmio.Read(), IsOkAndHolds(1u));
  // Deregistration must match; a second one finds nothing.
  ASSERT_OK(g.vm->UnregisterIoevent(pio, IoBus::kPio, 0x500, 1, 0x42));
  EXPECT_THAT(
      g.vm->UnregisterIoevent(pio, IoBus::kPio, 0x500, 1, 0x42),
      StatusIs(absl::StatusCode::kNotFound, StartsWith("KVM_IOEVENTFD (deassign) pio=0x500")));
}

TEST_F(VmTest, IoeventfdArgumentsAreValidated) {
  ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm());
  ASSERT_OK_AND_ASSIGN(EventFd e, EventFd::Create());
  EXPECT_THAT(vm->RegisterIoevent(e, IoBus::kMmio, 0x1000, 3),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("length 3")));
  EXPECT_THAT(vm->RegisterIoevent(e, IoBus::kMmio, 0x1000, 0, 7),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("datamatch needs a length")));
}

TEST_F(VmTest, IrqfdInjectsIntoTheInKernelPic) {
  ASSERT_OK_AND_ASSIGN(TinyGuest g,
                       MakeTinyGuest(kvm(), CpuMode::kLong, {0xf4}, {.irqchip = true}));
  ASSERT_OK_AND_ASSIGN(EventFd irq, EventFd::Create());
  ASSERT_OK(g.vm->AssignIrqfd(irq, 3));
  ASSERT_OK_AND_ASSIGN(kvm_irqchip before, g.vm->GetIrqchip(KVM_IRQCHIP_PIC_MASTER));
  EXPECT_EQ(before.chip.pic.irr & (1 << 3), 0);
  ASSERT_OK(irq.Write(1));
  // irqfd injection runs asynchronously in the kernel; wait (bounded) for the IRR bit.
  bool raised = false;
  for (int i = 0; i < 500 && !raised; ++i) {
    ASSERT_OK_AND_ASSIGN(kvm_irqchip pic, g.vm->GetIrqchip(KVM_IRQCHIP_PIC_MASTER));
    raised = pic.chip.pic.irr & (1 << 3);
    if (!raised) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(raised) << "GSI 3 never reached the PIC's IRR";
  // After deassignment a write no longer reaches the PIC (IRR cleared first through SET_IRQCHIP).
  ASSERT_OK(g.vm->DeassignIrqfd(irq, 3));
  ASSERT_OK_AND_ASSIGN(kvm_irqchip pic, g.vm->GetIrqchip(KVM_IRQCHIP_PIC_MASTER));
  pic.chip.pic.irr = 0;
  pic.chip.pic.last_irr = 0;
  ASSERT_OK(g.vm->SetIrqchip(pic));
  ASSERT_OK(irq.Write(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_OK_AND_ASSIGN(pic, g.vm->GetIrqchip(KVM_IRQCHIP_PIC_MASTER));
  EXPECT_EQ(pic.chip.pic.irr & (1 << 3), 0) << "a deassigned irqfd still injected";
}

TEST_F(VmTest, IrqLineAndResampleIrqfd) {
  ASSERT_OK_AND_ASSIGN(TinyGuest g,
                       MakeTinyGuest(kvm(), CpuMode::kLong, {0xf4}, {.irqchip = true}));
  ASSERT_OK(g.vm->SetIrqLine(4, true));
  ASSERT_OK_AND_ASSIGN(kvm_irqchip pic, g.vm->GetIrqchip(KVM_IRQCHIP_PIC_MASTER));
  EXPECT_TRUE(pic.chip.pic.irr & (1 << 4));
  ASSERT_OK(g.vm->SetIrqLine(4, false));
  ASSERT_OK_AND_ASSIGN(EventFd trigger, EventFd::Create());
  ASSERT_OK_AND_ASSIGN(EventFd resample, EventFd::Create());
  ASSERT_OK(g.vm->AssignIrqfdWithResample(trigger, resample, 10));
  ASSERT_OK(g.vm->DeassignIrqfd(trigger, 10));
  EXPECT_FALSE(Readable(resample));
}

TEST_F(VmTest, GsiRoutingAndMsi) {
  ASSERT_OK_AND_ASSIGN(TinyGuest g,
                       MakeTinyGuest(kvm(), CpuMode::kLong, {0xf4}, {.irqchip = true}));
  std::vector<GsiRoute> routes = DefaultIrqchipRoutes();
  EXPECT_EQ(routes.size(), 16u + 24u);
  routes.push_back({24, MsiRoute{.address = 0xfee00000, .data = 0x41, .devid = std::nullopt}});
  ASSERT_OK(g.vm->SetGsiRouting(routes));
  ASSERT_OK_AND_ASSIGN(EventFd msi, EventFd::Create());
  ASSERT_OK(g.vm->AssignIrqfd(msi, 24));
  ASSERT_OK(msi.Write(1));
  ASSERT_OK(g.vm->SignalMsi(0xfee00000, 0x42).status());
  // A pin that does not exist on the PIC is rejected by the kernel, and the error says where.
  std::vector<GsiRoute> bad = {{0, IrqchipRoute{KVM_IRQCHIP_PIC_MASTER, 99}}};
  EXPECT_THAT(g.vm->SetGsiRouting(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 StartsWith("KVM_SET_GSI_ROUTING entries=1")));
}

TEST_F(VmTest, DirtyLogReportsThePageTheGuestWrote) {
  const std::vector<uint8_t> code = {
      0xbb, 0x00, 0x40, 0x00, 0x00,  // mov ebx, 0x4000
      0x89, 0x03,                    // mov [rbx], eax
      0xf4,                          // hlt
  };
  ASSERT_OK_AND_ASSIGN(
      TinyGuest g, MakeTinyGuest(kvm(), CpuMode::kLong, code,
                                 {.slot_flags = {.log_dirty = true}, .manual_dirty_log = true}));
  // Forget the writes made while setting the guest up.
  ASSERT_OK(g.vm->GetDirtyLog(g.slot).status());
  ASSERT_OK(g.vm->ClearDirtyLog(g.slot, 0, 512));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> clean, g.vm->GetDirtyLog(g.slot));
  EXPECT_EQ(clean[0] & (1u << 4), 0u);
  ASSERT_OK_AND_ASSIGN(VcpuExit e, g.vcpu->Run());
  ASSERT_TRUE(std::holds_alternative<exit::Hlt>(e)) << DescribeExit(e);
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> dirty, g.vm->GetDirtyLog(g.slot));
  EXPECT_EQ(dirty.size(), 512u / 64);
  EXPECT_TRUE(dirty[0] & (1u << 4)) << "page 0x4000 was written";
  EXPECT_FALSE(dirty[0] & (1u << 5));
  EXPECT_THAT(g.vm->ClearDirtyLog(g.slot, 3, 64),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiples of 64")));
  EXPECT_THAT(g.vm->ClearDirtyLog(g.slot, 0, 513), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(g.vm->GetDirtyLog(g.slot + 1), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(VmTest, DirtyLogNeedsTheFlag) {
  ASSERT_OK_AND_ASSIGN(TinyGuest g, MakeTinyGuest(kvm(), CpuMode::kLong, {0xf4}));
  EXPECT_THAT(g.vm->GetDirtyLog(g.slot), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(VmTest, ASplitIrqchipLeavesThePitAndIrqchipRoutesToUserspace) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Vm> vm, kvm().CreateVm());
  ASSERT_OK(vm->EnableSplitIrqchip(24));
  EXPECT_THAT(vm->CreateIrqchip(), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(vm->CreatePit2(),
              StatusIs(absl::StatusCode::kNotFound, StartsWith("KVM_CREATE_PIT2")));
  // IOAPIC pins are MSI routes now; irqchip routes are refused.
  EXPECT_THAT(vm->SetGsiRouting(DefaultIrqchipRoutes()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const GsiRoute pin4{4, MsiRoute{.address = 0xfee00000, .data = 0x8030, .devid = {}}};
  ASSERT_OK(vm->SetGsiRouting({&pin4, 1}));
  ASSERT_OK(vm->SetIrqLine(4, true));
}

TEST_F(VmTest, PitTssIdentityMapAndCaps) {
  ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm());
  ASSERT_OK(vm->SetTssAddress(GuestAddress(0xfffbd000)));
  ASSERT_OK(vm->SetIdentityMapAddress(GuestAddress(0xfffbc000)));
  ASSERT_OK(vm->CreateIrqchip());
  ASSERT_OK(vm->CreatePit2(KVM_PIT_SPEAKER_DUMMY));
  EXPECT_THAT(vm->CreatePit2(),
              StatusIs(absl::StatusCode::kAlreadyExists, StartsWith("KVM_CREATE_PIT2")));
  EXPECT_THAT(vm->CheckExtension(KVM_CAP_IRQFD), IsOkAndHolds(::testing::Gt(0)));
  EXPECT_THAT(vm->EnableCap(0x7fff),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("KVM_ENABLE_CAP cap=32767")));
  const uint64_t five[] = {1, 2, 3, 4, 5};
  EXPECT_THAT(vm->EnableCap(1, five),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 4")));
}

// Every Vm method on an fd that is not a VM fails with a Status naming its ioctl.
TEST(VmBadFdTest, EveryMethodNamesItsIoctl) {
  Vm vm(ScopedFd(::open("/dev/null", O_RDWR | O_CLOEXEC)), 3 * 4096, 16);
  ASSERT_OK_AND_ASSIGN(EventFd e, EventFd::Create());
  auto region = GuestRegion::Create(GuestAddress(0), 0x1000);
  ASSERT_OK(region.status());
  auto named = [](const char* ioctl) { return StatusIs(::testing::_, StartsWith(ioctl)); };
  EXPECT_THAT(vm.CheckExtension(1), named("KVM_CHECK_EXTENSION (vm) cap=1"));
  EXPECT_THAT(vm.EnableCap(1), named("KVM_ENABLE_CAP cap=1"));
  EXPECT_THAT(vm.CreateVcpu(2), named("KVM_CREATE_VCPU id=2"));
  EXPECT_THAT(vm.AddMemoryRegion(*region),
              named("KVM_SET_USER_MEMORY_REGION slot=0 gpa=0x0 size=0x1000"));
  EXPECT_EQ(vm.slot_count(), 0u) << "a failed map leaves no slot behind";
  EXPECT_THAT(vm.CreateIrqchip(), named("KVM_CREATE_IRQCHIP"));
  EXPECT_THAT(vm.GetIrqchip(0), named("KVM_GET_IRQCHIP chip=0"));
  EXPECT_THAT(vm.SetIrqchip({}), named("KVM_SET_IRQCHIP chip=0"));
  EXPECT_THAT(vm.CreatePit2(), named("KVM_CREATE_PIT2"));
  EXPECT_THAT(vm.SetTssAddress(GuestAddress(0xfffbd000)),
              named("KVM_SET_TSS_ADDR addr=0xfffbd000"));
  EXPECT_THAT(vm.SetIdentityMapAddress(GuestAddress(0x1000)), named("KVM_SET_IDENTITY_MAP_ADDR"));
  EXPECT_THAT(vm.AssignIrqfd(e, 5), named("KVM_IRQFD gsi=5"));
  EXPECT_THAT(vm.AssignIrqfdWithResample(e, e, 5), named("KVM_IRQFD (resample) gsi=5"));
  EXPECT_THAT(vm.DeassignIrqfd(e, 5), named("KVM_IRQFD (deassign) gsi=5"));
  EXPECT_THAT(vm.RegisterIoevent(e, IoBus::kPio, 0x60, 1), named("KVM_IOEVENTFD pio=0x60 len=1"));
  EXPECT_THAT(vm.UnregisterIoevent(e, IoBus::kMmio, 0x1000, 4),
              named("KVM_IOEVENTFD (deassign) mmio=0x1000"));
  EXPECT_THAT(vm.SetGsiRouting(DefaultIrqchipRoutes()), named("KVM_SET_GSI_ROUTING entries=40"));
  EXPECT_THAT(vm.SignalMsi(0xfee00000, 0x30), named("KVM_SIGNAL_MSI address=0xfee00000 data=0x30"));
  EXPECT_THAT(vm.SetIrqLine(4, true), named("KVM_IRQ_LINE irq=4 level=1"));
}

}  // namespace
}  // namespace vmmkit::kvm
