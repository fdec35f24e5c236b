// File: kvm/testing/kvm_fixture.h
// -----------------------------------------------------------------------------
// Testonly: GoogleTest fixtures for tests against the real /dev/kvm. KvmFixture skips the test,
// saying why, only when /dev/kvm is absent or unusable, and otherwise opens it as `kvm()`.
// IrqGuestFixture adds a halted guest with the in-kernel irqchip (or, constructed with true, a
// split irqchip: local APICs only) and an enabled local APIC, for tests that route interrupts to it
// (irqfds, MSI routes) and look for them in its IRR.
//
//   class VmTest : public KvmFixture {};
//   TEST_F(VmTest, Foo) { ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm()); ... }

#ifndef VMMKIT_KVM_TESTING_KVM_FIXTURE_H_
#define VMMKIT_KVM_TESTING_KVM_FIXTURE_H_

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"

namespace vmmkit::kvm::testing {

class KvmFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = KvmUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    absl::StatusOr<Kvm> kvm = Kvm::Open();
    ASSERT_TRUE(kvm.ok()) << kvm.status();
    kvm_ = std::make_unique<Kvm>(std::move(kvm).value());
  }
  const Kvm& kvm() const { return *kvm_; }

 private:
  std::unique_ptr<Kvm> kvm_;
};

class IrqGuestFixture : public KvmFixture {
 protected:
  explicit IrqGuestFixture(bool split_irqchip = false) : split_irqchip_(split_irqchip) {}
  void SetUp() override {
    KvmFixture::SetUp();
    if (IsSkipped()) return;
    absl::StatusOr<TinyGuest> g =
        MakeTinyGuest(kvm(), CpuMode::kLong, {0xf4},
                      {.irqchip = !split_irqchip_, .split_irqchip = split_irqchip_});
    ASSERT_TRUE(g.ok()) << g.status();
    guest_ = std::make_unique<TinyGuest>(std::move(g).value());
    const absl::Status lapic = EnableLapic(*guest_->vcpu);
    ASSERT_TRUE(lapic.ok()) << lapic;
  }
  Vm& vm() { return *guest_->vm; }
  // Whether `vector` is pending in the vCPU's IRR now.
  bool PendingNow(uint8_t vector) {
    absl::StatusOr<bool> pending = LapicPending(*guest_->vcpu, vector);
    EXPECT_TRUE(pending.ok()) << pending.status();
    return pending.value_or(false);
  }
  // Whether it becomes pending within a second: KVM injects an irqfd's interrupt from a work item
  // (for a signal, or when an irqfd is attached to an eventfd that already counts).
  bool Pending(uint8_t vector) {
    for (int i = 0; i < 200; ++i) {
      if (PendingNow(vector)) return true;
      ::usleep(5000);
    }
    return false;
  }
  // For "not delivered": whether it is pending once such work has had 50 ms to run.
  bool PendingAfterSettling(uint8_t vector) {
    ::usleep(50000);
    return PendingNow(vector);
  }

  const bool split_irqchip_;
  std::unique_ptr<TinyGuest> guest_;
};

}  // namespace vmmkit::kvm::testing

#endif  // VMMKIT_KVM_TESTING_KVM_FIXTURE_H_
