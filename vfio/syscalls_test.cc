#include "vfio/syscalls.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <unistd.h>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vfio {
namespace {

using ::testing::HasSubstr;

TEST(RealVfioSyscallsTest, ReportsErrnoAsANamedStatus) {
  VfioSyscalls& sys = RealVfioSyscalls();
  EXPECT_EQ(sys.Open("/nonexistent/vfio", O_RDWR), -ENOENT);
  const int fd = sys.Open("/dev/null", O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << "opened close-on-exec";
  EXPECT_THAT(VfioIoctl(sys, fd, VFIO_GET_API_VERSION, 0, "VFIO_GET_API_VERSION"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("VFIO_GET_API_VERSION: Inappropriate ioctl for device")));
  ::close(fd);
}

}  // namespace
}  // namespace vmmkit::vfio
