#include "virtio/workers.h"

#include <poll.h>

#include <atomic>
#include <optional>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace vmmkit::virtio {
namespace {

// Each serve records its work and waits for the stop eventfd, as a device's worker does.
struct Recorder {
  std::atomic<int> served{0}, returned{0}, sum{0};
  QueueWorkers<int>::Serve Serve() {
    return [this](size_t index, int work, int stop_fd) {
      sum.fetch_add(static_cast<int>(index) * 100 + work);
      served.fetch_add(1);
      pollfd p = {stop_fd, POLLIN, 0};
      while (::poll(&p, 1, -1) < 1) {
      }
      returned.fetch_add(1);
    };
  }
};

TEST(QueueWorkersTest, HandsWorkAndStopReturnsOnceEveryWorkerHasStopped) {
  Recorder r;
  QueueWorkers<int> w;
  ASSERT_OK(w.Start(3, "test", r.Serve()));
  EXPECT_FALSE(w.active());
  // Worker 1 stays idle.
  ASSERT_TRUE(w.Hand({7, std::nullopt, 9}));
  EXPECT_TRUE(w.active());
  EXPECT_FALSE(w.Hand({1, 2, 3})) << "already serving";
  w.Stop();
  EXPECT_FALSE(w.active());
  // Stop returned after both serving workers did (each returns only once it saw the stop).
  EXPECT_EQ(r.returned.load(), 2);
  EXPECT_EQ(r.sum.load(), 7 + 209);
  // Again, after a stop: the same threads serve the next activation.
  ASSERT_TRUE(w.Hand({std::nullopt, 5, std::nullopt}));
  w.Stop();
  EXPECT_EQ(r.returned.load(), 3);
  EXPECT_EQ(r.sum.load(), 7 + 209 + 105);
}

TEST(QueueWorkersTest, RefusesWorkOfTheWrongShapeAndStopsWhenIdle) {
  Recorder r;
  QueueWorkers<int> w;
  ASSERT_OK(w.Start(2, "test", r.Serve()));
  EXPECT_FALSE(w.Hand({1}));
  EXPECT_FALSE(w.active());
  w.Stop();  // Nothing to stop.
  EXPECT_EQ(r.served.load(), 0);
}

TEST(QueueWorkersTest, DestructionStopsAndJoinsServingWorkers) {
  Recorder r;
  {
    QueueWorkers<int> w;
    ASSERT_OK(w.Start(2, "test", r.Serve()));
    ASSERT_TRUE(w.Hand({1, 2}));
  }
  EXPECT_EQ(r.returned.load(), 2);
}

}  // namespace
}  // namespace vmmkit::virtio
