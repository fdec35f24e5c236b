#include "base/status.h"

#include <cerrno>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::Eq;

TEST(ErrnoStatusTest, NamesTheOperationAndKeepsTheCanonicalCode) {
  absl::Status s = ErrnoStatus(EINVAL, "KVM_SET_USER_MEMORY_REGION slot=", 3);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          Eq("KVM_SET_USER_MEMORY_REGION slot=3: Invalid argument")));
}

TEST(ErrnoStatusTest, MapsCommonKernelErrors) {
  EXPECT_THAT(ErrnoStatus(ENOMEM, "x"), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(ErrnoStatus(ENOENT, "x"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ErrnoStatus(EEXIST, "x"), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(ErrnoStatus(EPERM, "x"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(ErrnoStatus(EBUSY, "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ErrnoStatus(EAGAIN, "x"), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(PrefixedTest, NamesTheStepAndKeepsTheCode) {
  EXPECT_THAT(Prefixed(absl::NotFoundError("no such image"), "disk ", 3),
              StatusIs(absl::StatusCode::kNotFound, "disk 3: no such image"));
  EXPECT_THAT(Prefixed(ErrnoStatus(EBUSY, "flock"), "open the image"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "open the image: flock: Device or resource busy"));
  EXPECT_OK(Prefixed(absl::OkStatus(), "never shown"));
  EXPECT_EQ(Prefixed(absl::OkStatus(), "x").message(), "");
}

TEST(HexTest, FormatsWithPrefix) {
  EXPECT_EQ(Hex(0), "0x0");
  EXPECT_EQ(Hex(0x100000), "0x100000");
  EXPECT_EQ(Hex(~uint64_t{0}), "0xffffffffffffffff");
  EXPECT_EQ(absl::StrCat("iova=", Hex(0x1000), " size=", Hex(0x2000)), "iova=0x1000 size=0x2000");
}

}  // namespace
}  // namespace vmmkit
