// VcpuSet on this machine's /dev/kvm with one-vCPU tiny guests: a guest that exits to the VMM in
// a loop, and one that halts in the in-kernel LAPIC (KVM_RUN then does not return by itself).
#include "vmm/vcpu_set.h"

#include <atomic>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "kvm/testing/kvm_fixture.h"
#include "kvm/testing/tiny_guest.h"

namespace vmmkit::vmm {
namespace {

using kvm::testing::CpuMode;
using kvm::testing::KvmFixture;

class VcpuSetTest : public KvmFixture {
 protected:
  // Runs `code` in a one-vCPU guest, counting the exits the set hands over.
  void StartGuest(std::vector<uint8_t> code, bool irqchip) {
    ASSERT_OK_AND_ASSIGN(
        kvm::testing::TinyGuest g,
        kvm::testing::MakeTinyGuest(kvm(), CpuMode::kLong, code, {.irqchip = irqchip}));
    guest_ = std::make_unique<kvm::testing::TinyGuest>(std::move(g));
    std::vector<std::unique_ptr<kvm::Vcpu>> vcpus;
    vcpus.push_back(std::move(guest_->vcpu));
    set_ = std::make_unique<VcpuSet>(
        std::move(vcpus),
        [this](kvm::Vcpu&, const kvm::VcpuExit& exit) {
          if (std::holds_alternative<kvm::exit::IoOut>(exit)) ++io_exits_;
        },
        [this](kvm::Vcpu&, const absl::Status&) { ++errors_; },
        [this](kvm::Vcpu&) {
          if (io_exits_.load() == 0) ++entries_before_exits_;
          ++entries_;
        });
    set_->Start();
  }
  int64_t ExitsOver(absl::Duration d) {
    const int64_t before = io_exits_.load();
    absl::SleepFor(d);
    return io_exits_.load() - before;
  }

  std::unique_ptr<kvm::testing::TinyGuest> guest_;
  std::unique_ptr<VcpuSet> set_;
  std::atomic<int64_t> io_exits_ = 0;
  std::atomic<int> errors_ = 0;
  std::atomic<int> entries_ = 0, entries_before_exits_ = 0;
};

// out 0x80, al; jmp back.
const std::vector<uint8_t> kOutLoop = {0xe6, 0x80, 0xeb, 0xfc};
// hlt; jmp back: with the in-kernel LAPIC, KVM_RUN sleeps in the kernel.
const std::vector<uint8_t> kHaltLoop = {0xf4, 0xeb, 0xfd};

TEST_F(VcpuSetTest, RunsTheGuestAndPausesAndResumesIt) {
  StartGuest(kOutLoop, false);
  while (io_exits_.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_NE(set_->tids()[0], 0);
  EXPECT_EQ(entries_.load(), 1) << "the first-entry handler, before the first exit";
  EXPECT_EQ(entries_before_exits_.load(), 1);
  ASSERT_OK(set_->Pause(absl::Seconds(5)));
  EXPECT_EQ(ExitsOver(absl::Milliseconds(50)), 0) << "a paused vCPU ran";
  set_->Resume();
  while (ExitsOver(absl::Milliseconds(1)) == 0) {
  }
  set_->Stop();
  EXPECT_EQ(ExitsOver(absl::Milliseconds(20)), 0) << "a stopped vCPU ran";
  EXPECT_EQ(entries_.load(), 1) << "once, not again after a pause";
  EXPECT_EQ(errors_.load(), 0);
}

TEST_F(VcpuSetTest, PauseAndStopReachAHaltedVcpu) {
  StartGuest(kHaltLoop, /*irqchip=*/true);
  absl::SleepFor(absl::Milliseconds(20));  // Asleep in the kernel's HLT by now.
  ASSERT_OK(set_->Pause(absl::Seconds(5)));
  set_->Resume();
  set_->Stop();  // Returns: the kick reached KVM_RUN.
  set_->Stop();  // Idempotent.
  EXPECT_THAT(set_->Pause(absl::Seconds(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(VcpuSetTest, StopBeforeTheThreadsRunIsFine) {
  StartGuest(kHaltLoop, /*irqchip=*/true);
  set_->Stop();  // Possibly before the thread entered KVM_RUN: immediate_exit covers that.
  EXPECT_EQ(errors_.load(), 0);
}

}  // namespace
}  // namespace vmmkit::vmm
