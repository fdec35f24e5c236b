#include "uring/ring.h"

#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::uring {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

class RingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path = ::testing::TempDir() + "/ring_test.XXXXXX";
    const int fd = ::mkstemp(path.data());
    ASSERT_GE(fd, 0);
    ::unlink(path.c_str());
    file_ = ScopedFd(fd);
    if (absl::Status s = Ring::Available(); !s.ok()) {
      GTEST_SKIP() << "no usable io_uring here: " << s;
    }
  }
  // Every completion waiting, as tag -> result.
  static std::map<uint64_t, int32_t> Drain(Ring& ring, size_t want) {
    std::map<uint64_t, int32_t> got;
    while (got.size() < want) {
      EXPECT_OK(ring.WaitOne());
      ring.Reap([&](uint64_t tag, int32_t result) { got[tag] = result; });
    }
    return got;
  }
  ScopedFd file_;
};

TEST_F(RingTest, RefusesBadSizesAndNoFiles) {
  for (uint32_t entries : {0u, 3u, 8192u}) {
    EXPECT_THAT(Ring::Create(entries, {file_.get()}).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power of two")));
  }
  EXPECT_THAT(Ring::Create(8, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no files")));
}

TEST_F(RingTest, WritesSyncsAndReadsBackScattered) {
  ASSERT_OK_AND_ASSIGN(Ring ring, Ring::Create(8, {file_.get()}));
  std::string a(4096, 'a'), b(512, 'b');
  const iovec out[] = {{a.data(), a.size()}, {b.data(), b.size()}};
  ASSERT_OK(ring.QueueWritev(0, out, 4096, /*tag=*/1));
  ASSERT_OK(ring.Submit());
  EXPECT_THAT(Drain(ring, 1), UnorderedElementsAre(Pair(1, 4608)));
  ASSERT_OK(ring.QueueFdatasync(0, /*tag=*/2));
  ASSERT_OK(ring.Submit());
  EXPECT_THAT(Drain(ring, 1), UnorderedElementsAre(Pair(2, 0)));

  std::string x(512, 0), y(4096, 0), z(64, 0);
  const iovec in[] = {{x.data(), x.size()}, {y.data(), y.size()}};
  const iovec tail[] = {{z.data(), z.size()}};
  ASSERT_OK(ring.QueueReadv(0, in, 4096, /*tag=*/3));
  ASSERT_OK(ring.QueueReadv(0, tail, 8704, /*tag=*/4));  // At the end: nothing to read.
  ASSERT_OK(ring.Submit());
  EXPECT_THAT(Drain(ring, 2), UnorderedElementsAre(Pair(3, 4608), Pair(4, 0)));
  EXPECT_EQ(x, std::string(512, 'a'));
  EXPECT_EQ(y, std::string(3584, 'a') + std::string(512, 'b'));
}

TEST_F(RingTest, ReportsTheFilesErrno) {
  // A file open for reading only: a write through the ring fails as write(2) would.
  char name[] = "/proc/self/fd/XXXXXXXXXX";
  snprintf(name, sizeof(name), "/proc/self/fd/%d", file_.get());
  ScopedFd read_only(::open(name, O_RDONLY | O_CLOEXEC));
  ASSERT_GE(read_only.get(), 0);
  ASSERT_OK_AND_ASSIGN(Ring ring, Ring::Create(2, {read_only.get()}));
  char byte = 1;
  const iovec out[] = {{&byte, 1}};
  ASSERT_OK(ring.QueueWritev(0, out, 0, /*tag=*/9));
  ASSERT_OK(ring.Submit());
  EXPECT_THAT(Drain(ring, 1), UnorderedElementsAre(Pair(9, -EBADF)));
}

TEST_F(RingTest, RefusesUnregisteredFilesAndAFullRing) {
  ASSERT_OK_AND_ASSIGN(Ring ring, Ring::Create(2, {file_.get()}));
  EXPECT_THAT(ring.QueueFdatasync(1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("file 1 (1 registered)")));
  ASSERT_OK(ring.QueueFdatasync(0, 1));
  ASSERT_OK(ring.QueueFdatasync(0, 2));
  EXPECT_THAT(ring.QueueFdatasync(0, 3),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("ring full (2 entries)")));
  ASSERT_OK(ring.Submit());
  EXPECT_THAT(Drain(ring, 2), UnorderedElementsAre(Pair(1, 0), Pair(2, 0)));
}

TEST_F(RingTest, IsReadableWhileCompletionsWait) {
  ASSERT_OK_AND_ASSIGN(Ring ring, Ring::Create(2, {file_.get()}));
  pollfd p = {ring.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  ASSERT_OK(ring.QueueFdatasync(0, 5));
  ASSERT_OK(ring.Submit());
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_THAT(Drain(ring, 1), UnorderedElementsAre(Pair(5, 0)));
  EXPECT_EQ(::poll(&p, 1, 0), 0);
}

TEST_F(RingTest, KernelRefusesAnyFurtherRegistration) {
  // The restrictions hold whatever the process does with the ring's fd: registering another file
  // (which would widen what the ring reaches) or buffers is refused.
  ASSERT_OK_AND_ASSIGN(Ring ring, Ring::Create(2, {file_.get()}));
  int more[] = {file_.get()};
  EXPECT_EQ(::syscall(__NR_io_uring_register, ring.fd(), IORING_REGISTER_FILES_UPDATE, more, 1),
            -1);
  EXPECT_EQ(errno, EACCES);
  char buffer[64];
  iovec v = {buffer, sizeof(buffer)};
  EXPECT_EQ(::syscall(__NR_io_uring_register, ring.fd(), IORING_REGISTER_BUFFERS, &v, 1), -1);
  EXPECT_EQ(errno, EACCES);
}

TEST_F(RingTest, HoldsNoFileOnceDestroyed) {
  // A file locked through one open: while a ring has it registered the lock stays taken even
  // after that fd is closed; once the ring is gone, so is the lock.
  char name[64];
  snprintf(name, sizeof(name), "/proc/self/fd/%d", file_.get());
  const int locked = ::open(name, O_RDWR | O_CLOEXEC);
  ASSERT_EQ(::flock(locked, LOCK_EX | LOCK_NB), 0);
  {
    ASSERT_OK_AND_ASSIGN(Ring ring, Ring::Create(2, {locked}));
    ::close(locked);
    ScopedFd other(::open(name, O_RDWR | O_CLOEXEC));
    EXPECT_EQ(::flock(other.get(), LOCK_EX | LOCK_NB), -1);
  }
  ScopedFd other(::open(name, O_RDWR | O_CLOEXEC));
  EXPECT_EQ(::flock(other.get(), LOCK_EX | LOCK_NB), 0);
}

TEST_F(RingTest, MovesOwnership) {
  ASSERT_OK_AND_ASSIGN(Ring a, Ring::Create(2, {file_.get()}));
  const int fd = a.fd();
  Ring b = std::move(a);
  EXPECT_EQ(b.fd(), fd);
  ASSERT_OK(b.QueueFdatasync(0, 7));
  ASSERT_OK(b.Submit());
  EXPECT_THAT(Drain(b, 1), UnorderedElementsAre(Pair(7, 0)));
}

}  // namespace
}  // namespace vmmkit::uring
