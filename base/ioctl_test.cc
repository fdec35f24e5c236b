#include "base/ioctl.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include "base/scoped_fd.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::Eq;

TEST(IoctlTest, ReturnsTheResultOnSuccess) {
  ScopedFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  int flags = 1;
  EXPECT_THAT(Ioctl(fd.get(), FIONBIO, &flags, "FIONBIO"), IsOkAndHolds(0));
}

TEST(IoctlTest, NamesTheIoctlAndKeyArgumentsOnFailure) {
  ScopedFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  // /dev/null knows no KVM ioctls: ENOTTY.
  EXPECT_THAT(Ioctl(fd.get(), 0xae41, 3, "KVM_CREATE_VCPU id=", 3),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq("KVM_CREATE_VCPU id=3: Inappropriate ioctl for device")));
  EXPECT_THAT(Ioctl(-1, 0xae80, 0, "KVM_RUN"),
              StatusIs(absl::StatusCode::kFailedPrecondition, Eq("KVM_RUN: Bad file descriptor")));
}

}  // namespace
}  // namespace vmmkit
