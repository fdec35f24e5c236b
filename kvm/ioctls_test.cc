#include "kvm/ioctls.h"

#include <linux/kvm.h>

#include <algorithm>

#include "gtest/gtest.h"

namespace vmmkit::kvm {
namespace {

bool Has(const std::vector<uint32_t>& v, uint32_t r) {
  return std::find(v.begin(), v.end(), r) != v.end();
}

TEST(KvmIoctlsTest, VcpuListRunsAndReadsState) {
  EXPECT_TRUE(Has(VcpuIoctls(), KVM_RUN));
  EXPECT_TRUE(Has(VcpuIoctls(), KVM_GET_SREGS));
  EXPECT_FALSE(Has(VcpuIoctls(), KVM_CREATE_VCPU));
}

TEST(KvmIoctlsTest, VmRuntimeListUsesTheKernelsNumbersAndCreatesNothing) {
  const std::vector<uint32_t> vm = VmRuntimeIoctls();
  EXPECT_TRUE(Has(vm, 0x4008ae6a)) << "KVM_SET_GSI_ROUTING as the kernel numbers it";
  EXPECT_TRUE(Has(vm, KVM_SET_USER_MEMORY_REGION));
  EXPECT_TRUE(Has(vm, KVM_IRQFD));
  EXPECT_FALSE(Has(vm, KVM_CREATE_VM));
  EXPECT_FALSE(Has(vm, KVM_CREATE_VCPU));
}

}  // namespace
}  // namespace vmmkit::kvm
