// The embedding example on the fake VFIO kernel: what the shadow puts in the container while the
// guest has its buffer mapped, and that nothing is left after the unmap.
#include "examples/viommu_shadow.h"

#include <sstream>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "passthrough/testing/edu_like_device.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::examples {
namespace {

using ::testing::HasSubstr;

TEST(ViommuShadowTest, TheContainerHoldsExactlyWhatTheGuestMapped) {
  vfio::testing::FakeVfioKernel kernel;
  kernel.groups[7] = {};
  kernel.devices["0000:00:03.0"] = passthrough::testing::EduLikeDevice(7);
  std::vector<std::pair<uint64_t, uint64_t>> while_mapped;  // (iova, size)
  size_t after_unmap = 99;
  std::ostringstream out;
  ASSERT_OK(RunViommuShadow({.group = 7,
                             .bdf = "0000:00:03.0",
                             .syscalls = &kernel,
                             .on_step =
                                 [&](bool mapped) {
                                   if (mapped) {
                                     for (const auto& [iova, m] : kernel.container().mappings) {
                                       while_mapped.push_back({iova, m.size});
                                     }
                                   } else {
                                     after_unmap = kernel.container().mappings.size();
                                   }
                                 }},
                            out));
  EXPECT_THAT(while_mapped, ::testing::ElementsAre(std::make_pair(kIova, kBufferSize)));
  EXPECT_EQ(after_unmap, 0u);
  EXPECT_THAT(out.str(), HasSubstr("1 host mapping(s), 1 map call(s)"));
  EXPECT_THAT(out.str(), HasSubstr("guest unmapped it: 0 host mapping(s), 1 unmap call(s)"));
}

TEST(ViommuShadowTest, ErrorsNameTheStep) {
  vfio::testing::FakeVfioKernel kernel;
  kernel.groups[7] = {.viable = false};
  kernel.devices["0000:00:03.0"] = passthrough::testing::EduLikeDevice(7);
  std::ostringstream out;
  EXPECT_THAT(RunViommuShadow({.group = 7, .bdf = "0000:00:03.0", .syscalls = &kernel}, out),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("open the group")));
}

}  // namespace
}  // namespace vmmkit::examples
