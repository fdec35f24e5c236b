#include "kvm/kvm.h"

#include <fcntl.h>
#include <linux/kvm.h>

#include <algorithm>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/testing/kvm_fixture.h"
#include "kvm/vm.h"

namespace vmmkit::kvm {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class KvmTest : public testing::KvmFixture {};

TEST_F(KvmTest, OpensAndReportsApiVersion12) {
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  EXPECT_THAT(kvm.GetApiVersion(), IsOkAndHolds(12));
}

TEST_F(KvmTest, CapabilitiesTheVmmRelies) {
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  for (int cap : {KVM_CAP_IRQCHIP, KVM_CAP_IRQFD, KVM_CAP_IOEVENTFD, KVM_CAP_IMMEDIATE_EXIT,
                  KVM_CAP_USER_MEMORY}) {
    EXPECT_THAT(kvm.CheckExtension(cap), IsOkAndHolds(::testing::Gt(0))) << "cap " << cap;
  }
  EXPECT_THAT(kvm.CheckExtension(KVM_CAP_NR_MEMSLOTS), IsOkAndHolds(::testing::Ge(32)));
  EXPECT_THAT(kvm.CheckExtension(0x7fff), IsOkAndHolds(0));  // Unknown capability: "no".
}

TEST_F(KvmTest, SupportedCpuidHasTheBasicLeaves) {
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  ASSERT_OK_AND_ASSIGN(Cpuid cpuid, kvm.GetSupportedCpuid());
  EXPECT_GT(cpuid.entries().size(), 5u);
  ASSERT_NE(cpuid.Find(0), nullptr);
  EXPECT_GE(cpuid.Find(0)->eax, 1u);  // Max basic leaf.
  ASSERT_NE(cpuid.Find(1), nullptr);
  ASSERT_NE(cpuid.Find(0x80000000), nullptr);
}

TEST_F(KvmTest, MsrListsAndMmapSize) {
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> msrs, kvm.GetMsrIndexList());
  // IA32_TSC (0x10) and IA32_SYSENTER_CS (0x174) are saved and restored on every host.
  EXPECT_NE(std::find(msrs.begin(), msrs.end(), 0x10u), msrs.end());
  EXPECT_NE(std::find(msrs.begin(), msrs.end(), 0x174u), msrs.end());
  EXPECT_OK(kvm.GetMsrFeatureIndexList());
  EXPECT_THAT(kvm.GetVcpuMmapSize(), IsOkAndHolds(::testing::Ge(sizeof(kvm_run))));
}

TEST_F(KvmTest, CreatesVms) {
  ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  ASSERT_OK_AND_ASSIGN(auto vm1, kvm.CreateVm());
  ASSERT_OK_AND_ASSIGN(auto vm2, kvm.CreateVm());
  EXPECT_NE(vm1->fd(), vm2->fd());
  EXPECT_THAT(kvm.CreateVm(0xdead),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("KVM_CREATE_VM type=57005")));
}

TEST(KvmOpenTest, MissingDeviceNamesThePath) {
  EXPECT_THAT(Kvm::Open("/nonexistent/kvm"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("open /nonexistent/kvm")));
}

TEST(KvmOpenTest, NotAKvmFdFailsTheVersionCheck) {
  EXPECT_THAT(Kvm::Open("/dev/null"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("KVM_GET_API_VERSION: ")));
}

TEST(KvmOpenTest, EveryMethodNamesItsIoctlOnABadFd) {
  // A Kvm whose fd is not /dev/kvm cannot be made through Open; FromFd checks the version too.
  ScopedFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  EXPECT_THAT(Kvm::FromFd(std::move(null_fd)),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("KVM_GET_API_VERSION")));
}

}  // namespace
}  // namespace vmmkit::kvm
