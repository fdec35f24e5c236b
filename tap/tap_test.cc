#include "tap/tap.h"

#include <linux/if.h>
#include <linux/if_tun.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/event_fd.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace vmmkit::tap {
namespace {

using ::testing::HasSubstr;

// A name no other test run uses at the same time.
std::string TestName(const char* tag) { return absl::StrCat("vmk", tag, ::getpid() % 100000); }

// Taps need /dev/net/tun and CAP_NET_ADMIN; where either is missing the test says skipped.
#define SKIP_WITHOUT_TAPS(status)                                     \
  if (absl::IsPermissionDenied(status) || absl::IsNotFound(status)) { \
    GTEST_SKIP() << "no taps here: " << status;                       \
  }

TEST(TapQueueTest, RefusesBadNames) {
  EXPECT_THAT(TapQueue::Open("", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TapQueue::Open(std::string(IFNAMSIZ, 'x'), false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("interface name")));
}

TEST(TapTest, RefusesQueueCountsOutOfRange) {
  EXPECT_THAT(Tap::Open("vmk0", 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Tap::Open("vmk0", kMaxQueues + 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Tap::Adopt({}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(TapTest, OpensMultiQueueTapWithVnetHeaders) {
  const std::string name = TestName("mq");
  absl::StatusOr<Tap> tap = Tap::Open(name, 2);
  SKIP_WITHOUT_TAPS(tap.status());
  ASSERT_OK(tap.status());
  EXPECT_EQ(tap->num_queues(), 2);
  EXPECT_EQ(tap->name(), name);
  ASSERT_OK_AND_ASSIGN(uint32_t flags, tap->queue(1).Flags());
  EXPECT_EQ(flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE),
            uint32_t{IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE});
  // Nothing to read: the fd does not block.
  char frame[64];
  EXPECT_EQ(::read(tap->queue(0).fd(), frame, sizeof(frame)), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_OK(tap->queue(0).SetOffload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
  EXPECT_OK(tap->queue(0).SetOffload(0));
  EXPECT_THAT(tap->queue(0).SetOffload(0x80000000u),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("TUNSETOFFLOAD")));
  ASSERT_OK_AND_ASSIGN(TapStatistics st, tap->Statistics());
  EXPECT_EQ(st.tx_packets, 0u) << "a tap that is down sends nothing";
  EXPECT_OK(tap->queue(1).SetQueueEnabled(false));
  EXPECT_OK(tap->queue(1).SetQueueEnabled(true));
  // A single-queue open of a multi-queue tap is the kernel's refusal, named.
  EXPECT_THAT(TapQueue::Open(name, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("TUNSETIFF " + name)));
}

TEST(TapTest, AdoptsFdsOfOneTap) {
  const std::string name = TestName("ad");
  absl::StatusOr<TapQueue> q = TapQueue::Open(name, false);
  SKIP_WITHOUT_TAPS(q.status());
  ASSERT_OK(q.status());
  std::vector<ScopedFd> fds;
  fds.emplace_back(::dup(q->fd()));
  ASSERT_OK_AND_ASSIGN(Tap tap, Tap::Adopt(std::move(fds)));
  EXPECT_EQ(tap.name(), name);
  EXPECT_EQ(tap.num_queues(), 1);
}

TEST(TapTest, RefusesFdsThatAreNotOneMultiQueueTap) {
  ASSERT_OK_AND_ASSIGN(EventFd e, EventFd::Create());
  std::vector<ScopedFd> fds;
  fds.emplace_back(::dup(e.fd()));
  EXPECT_THAT(Tap::Adopt(std::move(fds)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not attached to a tap")));

  const std::string a = TestName("a"), b = TestName("b");
  absl::StatusOr<TapQueue> qa = TapQueue::Open(a, true);
  SKIP_WITHOUT_TAPS(qa.status());
  ASSERT_OK(qa.status());
  ASSERT_OK_AND_ASSIGN(TapQueue qb, TapQueue::Open(b, true));
  fds.clear();
  fds.emplace_back(::dup(qa->fd()));
  fds.emplace_back(::dup(qb.fd()));
  EXPECT_THAT(Tap::Adopt(std::move(fds)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different interfaces")));
  ASSERT_OK_AND_ASSIGN(TapQueue single, TapQueue::Open(TestName("s"), false));
  fds.clear();
  fds.emplace_back(::dup(single.fd()));
  fds.emplace_back(::dup(single.fd()));
  EXPECT_THAT(Tap::Adopt(std::move(fds)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a multi-queue tap")));
}

}  // namespace
}  // namespace vmmkit::tap
