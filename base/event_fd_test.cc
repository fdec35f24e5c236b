#include "base/event_fd.h"

#include <fcntl.h>
#include <poll.h>

#include <thread>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

TEST(EventFdTest, WriteThenReadReturnsTheSum) {
  ASSERT_OK_AND_ASSIGN(EventFd efd, EventFd::Create());
  EXPECT_OK(efd.Write(2));
  EXPECT_OK(efd.Write(3));
  EXPECT_THAT(efd.Read(), IsOkAndHolds(5u));
}

TEST(EventFdTest, NonBlockingReadOfZeroIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(EventFd efd, EventFd::Create());
  EXPECT_THAT(efd.Read(),
              StatusIs(absl::StatusCode::kUnavailable, testing::HasSubstr("eventfd read fd=")));
}

TEST(EventFdTest, InitialValueAndSemaphore) {
  ASSERT_OK_AND_ASSIGN(EventFd efd, EventFd::Create(2, EFD_NONBLOCK | EFD_SEMAPHORE));
  EXPECT_THAT(efd.Read(), IsOkAndHolds(1u));
  EXPECT_THAT(efd.Read(), IsOkAndHolds(1u));
  EXPECT_THAT(efd.Read(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(EventFdTest, OverflowIsAnError) {
  ASSERT_OK_AND_ASSIGN(EventFd efd, EventFd::Create());
  EXPECT_OK(efd.Write(0xfffffffffffffffeull));
  EXPECT_THAT(efd.Write(1), StatusIs(absl::StatusCode::kUnavailable));
  // The maximum value is itself invalid for write(2).
  EXPECT_THAT(efd.Write(0xffffffffffffffffull), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EventFdTest, InvalidFlagsAreRejected) {
  EXPECT_THAT(EventFd::Create(0, 0x7fffffff),
              StatusIs(absl::StatusCode::kInvalidArgument, testing::HasSubstr("eventfd flags=")));
}

TEST(EventFdTest, WakesAPollerInAnotherThread) {
  ASSERT_OK_AND_ASSIGN(EventFd efd, EventFd::Create());
  std::thread writer([&] { ASSERT_OK(efd.Write(1)); });
  pollfd p{.fd = efd.fd(), .events = POLLIN, .revents = 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  writer.join();
  EXPECT_THAT(efd.Read(), IsOkAndHolds(1u));
}

TEST(EventFdTest, IsCloseOnExec) {
  ASSERT_OK_AND_ASSIGN(EventFd efd, EventFd::Create());
  EXPECT_TRUE(::fcntl(efd.fd(), F_GETFD) & FD_CLOEXEC);
}

}  // namespace
}  // namespace vmmkit
