#include "vfio/ioctls.h"

#include <linux/vfio.h>

#include <algorithm>
#include <set>

#include "gtest/gtest.h"

namespace vmmkit::vfio {
namespace {

TEST(VfioIoctlsTest, RuntimeIsASubsetOfAllAndAttachingIsNotRuntime) {
  const std::vector<uint32_t> all = AllIoctls();
  const std::vector<uint32_t> runtime = RuntimeIoctls();
  const std::set<uint32_t> all_set(all.begin(), all.end());
  for (uint32_t r : runtime) EXPECT_TRUE(all_set.count(r)) << std::hex << r;
  EXPECT_TRUE(std::count(runtime.begin(), runtime.end(), 0x3b71u)) << "VFIO_IOMMU_MAP_DMA";
  EXPECT_TRUE(std::count(runtime.begin(), runtime.end(), 0x3b85u)) << "IOMMU_IOAS_MAP";
  EXPECT_FALSE(std::count(runtime.begin(), runtime.end(), uint32_t{VFIO_GROUP_GET_DEVICE_FD}));
  EXPECT_TRUE(all_set.count(VFIO_GROUP_GET_DEVICE_FD));
}

}  // namespace
}  // namespace vmmkit::vfio
