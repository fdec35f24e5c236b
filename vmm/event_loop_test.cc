#include "vmm/event_loop.h"

#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

using ::testing::ElementsAre;

std::unique_ptr<EventLoop> NewLoop() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  EXPECT_THAT(loop, IsOk());
  return *std::move(loop);
}

TEST(EventLoopTest, RunsPostedWorkInOrderOnItsThread) {
  std::unique_ptr<EventLoop> loop = NewLoop();
  std::vector<int> order;  // Touched only on the loop's thread.
  std::thread::id ran_on;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(loop->Post([&, i] { order.push_back(i); }));
  ASSERT_TRUE(loop->Post([&] {
    ran_on = std::this_thread::get_id();
    loop->Quit();
  }));
  loop->Run();
  EXPECT_THAT(order, ElementsAre(0, 1, 2));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoopTest, RunOnLoopWaitsForTheWorkFromOtherThreads) {
  std::unique_ptr<EventLoop> loop = NewLoop();
  std::thread loop_thread([&] { loop->Run(); });
  std::atomic<int> sum = 0;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        int local = 0;  // On the caller's stack: the work must have run when RunOnLoop returns.
        ASSERT_THAT(loop->RunOnLoop([&] { local = 1; }), IsOk());
        sum += local;
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(sum, 400);
  loop->Quit();
  loop_thread.join();
}

TEST(EventLoopTest, RunOnLoopOnTheLoopRunsAtOnce) {
  std::unique_ptr<EventLoop> loop = NewLoop();
  bool inner = false;
  ASSERT_TRUE(loop->Post([&] {
    EXPECT_THAT(loop->RunOnLoop([&] { inner = true; }), IsOk());
    EXPECT_TRUE(inner);
    loop->Quit();
  }));
  loop->Run();
  EXPECT_TRUE(inner);
}

TEST(EventLoopTest, CloseReleasesWaitersAndRefusesWork) {
  std::unique_ptr<EventLoop> loop = NewLoop();  // Never run: nothing will take the work.
  absl::Status waited;
  std::thread waiter(
      [&] { waited = loop->RunOnLoop([] { ADD_FAILURE() << "dropped work ran"; }); });
  // The waiter's work is queued before Close or refused after it: UNAVAILABLE either way.
  absl::SleepFor(absl::Milliseconds(20));
  loop->Close();
  waiter.join();
  EXPECT_THAT(waited, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(loop->Post([] {}));
  EXPECT_THAT(loop->RunOnLoop([] {}), StatusIs(absl::StatusCode::kUnavailable));
  loop->Run();  // Returns at once: closed.
}

TEST(EventLoopTest, WorkTakenBeforeCloseStillRunsAndItsWaiterSeesIt) {
  std::unique_ptr<EventLoop> loop = NewLoop();
  std::thread loop_thread([&] { loop->Run(); });
  std::atomic<bool> started = false;
  absl::Status waited;
  bool ran = false;
  std::thread waiter([&] {
    waited = loop->RunOnLoop([&] {
      started = true;
      absl::SleepFor(absl::Milliseconds(50));  // Close comes while this runs.
      ran = true;
    });
  });
  while (!started) absl::SleepFor(absl::Milliseconds(1));
  loop->Close();
  waiter.join();
  EXPECT_THAT(waited, IsOk());
  EXPECT_TRUE(ran);
  loop_thread.join();
}

TEST(EventLoopTest, TimersRunInDeadlineOrderNotBefore) {
  std::unique_ptr<EventLoop> loop = NewLoop();
  std::vector<int> order;
  const absl::Time start = absl::Now();
  absl::Duration first_at;
  loop->RunOnLoopAfter(absl::Milliseconds(60), [&] {
    order.push_back(2);
    loop->Quit();
  });
  loop->RunOnLoopAfter(absl::Milliseconds(30), [&] {
    first_at = absl::Now() - start;
    order.push_back(1);
  });
  loop->Run();
  EXPECT_THAT(order, ElementsAre(1, 2));
  EXPECT_GE(first_at, absl::Milliseconds(30));
}

TEST(EventLoopTest, WatchCallsTheHandlerWhileReadableAndUnwatchStops) {
  std::unique_ptr<EventLoop> loop = NewLoop();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ScopedFd rd(fds[0]), wr(fds[1]);
  int calls = 0;
  ASSERT_THAT(loop->Watch(rd.get(),
                          [&] {
                            char c;
                            ASSERT_EQ(::read(rd.get(), &c, 1), 1);
                            if (++calls == 2) {
                              loop->Unwatch(rd.get());
                              // Still readable, but unwatched: only the timer ends the loop.
                              loop->RunOnLoopAfter(absl::Milliseconds(20), [&] { loop->Quit(); });
                            }
                          }),
              IsOk());
  ASSERT_EQ(::write(wr.get(), "abc", 3), 3);
  loop->Run();
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(loop->Watch(-1, [] {}), StatusIs(absl::StatusCode::kFailedPrecondition));  // EBADF
}

}  // namespace
}  // namespace vmmkit::vmm
