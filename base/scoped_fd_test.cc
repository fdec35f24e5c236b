#include "base/scoped_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

int OpenDevNull() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

TEST(ScopedFdTest, DefaultIsEmpty) {
  ScopedFd fd;
  EXPECT_FALSE(fd.valid());
  EXPECT_EQ(fd.get(), -1);
  EXPECT_FALSE(ScopedFd(-5).valid());
}

TEST(ScopedFdTest, ClosesOnDestruction) {
  int raw = OpenDevNull();
  ASSERT_GE(raw, 0);
  {
    ScopedFd fd(raw);
    EXPECT_TRUE(IsOpen(raw));
  }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(ScopedFdTest, MoveTransfersOwnership) {
  int raw = OpenDevNull();
  ScopedFd a(raw);
  ScopedFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state.
  EXPECT_EQ(b.get(), raw);
  ScopedFd c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
  EXPECT_TRUE(IsOpen(raw));
}

TEST(ScopedFdTest, MoveAssignClosesPreviousFd) {
  int first = OpenDevNull();
  int second = OpenDevNull();
  ScopedFd a(first);
  a = ScopedFd(second);
  EXPECT_FALSE(IsOpen(first));
  EXPECT_TRUE(IsOpen(second));
}

TEST(ScopedFdTest, ReleaseDoesNotClose) {
  int raw = OpenDevNull();
  int released;
  {
    ScopedFd fd(raw);
    released = fd.release();
    EXPECT_FALSE(fd.valid());
  }
  EXPECT_EQ(released, raw);
  EXPECT_TRUE(IsOpen(raw));
  ::close(raw);
}

TEST(ScopedFdTest, ResetClosesAndAdopts) {
  int first = OpenDevNull();
  int second = OpenDevNull();
  ScopedFd fd(first);
  fd.reset(second);
  EXPECT_FALSE(IsOpen(first));
  EXPECT_EQ(fd.get(), second);
  fd.reset(second);  // Resetting to the same fd must not close it.
  EXPECT_TRUE(IsOpen(second));
  fd.reset();
  EXPECT_FALSE(IsOpen(second));
}

TEST(ScopedFdTest, DupGivesIndependentCloexecOwner) {
  ScopedFd fd(OpenDevNull());
  ASSERT_OK_AND_ASSIGN(ScopedFd copy, fd.Dup());
  EXPECT_NE(copy.get(), fd.get());
  EXPECT_TRUE(::fcntl(copy.get(), F_GETFD) & FD_CLOEXEC);
  int raw = fd.get();
  fd.reset();
  EXPECT_FALSE(IsOpen(raw) && raw != copy.get());
  EXPECT_TRUE(IsOpen(copy.get()));
}

TEST(ScopedFdTest, DupErrors) {
  EXPECT_THAT(ScopedFd().Dup(), StatusIs(absl::StatusCode::kFailedPrecondition));
  // An fd number that is not open: the error names the syscall and the fd.
  ScopedFd bogus(1 << 20);
  EXPECT_THAT(bogus.Dup(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    testing::HasSubstr("fcntl(F_DUPFD_CLOEXEC) fd=1048576")));
  (void)bogus.release();
}

}  // namespace
}  // namespace vmmkit
