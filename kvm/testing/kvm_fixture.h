// File: kvm/testing/kvm_fixture.h
// -----------------------------------------------------------------------------
// Testonly: a GoogleTest fixture for tests against the real /dev/kvm. It skips the test, saying
// why, only when /dev/kvm is absent or unusable, and otherwise opens it as `kvm()`.
//
//   class VmTest : public KvmFixture {};
//   TEST_F(VmTest, Foo) { ASSERT_OK_AND_ASSIGN(auto vm, kvm().CreateVm()); ... }

#ifndef VMMKIT_KVM_TESTING_KVM_FIXTURE_H_
#define VMMKIT_KVM_TESTING_KVM_FIXTURE_H_

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

}  // namespace vmmkit::kvm::testing

#endif  // VMMKIT_KVM_TESTING_KVM_FIXTURE_H_
