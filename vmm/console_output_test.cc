#include "vmm/console_output.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

struct Pipe {
  ScopedFd read, write;
};
Pipe MakePipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  return {ScopedFd(fds[0]), ScopedFd(fds[1])};
}
std::string ReadAll(int fd) {
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}
absl::Span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
bool Readable(int fd) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) == 1;
}

TEST(ConsoleOutputTest, WritesReachTheReaderThroughFlush) {
  Pipe pipe = MakePipe();
  const int reader = pipe.read.get();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ConsoleOutput> out,
                       ConsoleOutput::Create(std::move(pipe.write)));
  EXPECT_FALSE(Readable(out->ready_fd()));
  out->Write(Bytes("hello, "));
  out->Write(Bytes("world\n"));
  EXPECT_TRUE(Readable(out->ready_fd()));  // The loop is woken once there is something.
  EXPECT_FALSE(out->Flush());
  EXPECT_FALSE(Readable(out->ready_fd()));
  EXPECT_EQ(ReadAll(reader), "hello, world\n");
  EXPECT_EQ(out->written(), 13u);
  EXPECT_EQ(out->dropped(), 0u);
}

TEST(ConsoleOutputTest, AStalledReaderNeverBlocksAWriterAndExcessIsCounted) {
  Pipe pipe = MakePipe();
  ASSERT_GE(::fcntl(pipe.write.get(), F_SETPIPE_SZ, 4096), 4096);
  const int reader = pipe.read.get();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ConsoleOutput> out,
                       ConsoleOutput::Create(std::move(pipe.write), /*capacity=*/8192));
  const std::string big(20000, 'x');
  out->Write(Bytes(big));  // Returns although nobody reads: 8192 kept, the rest dropped.
  EXPECT_EQ(out->dropped(), 20000u - 8192u);
  EXPECT_TRUE(out->Flush());  // The pipe took what it holds; the rest waits.
  const uint64_t first = out->written();
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, 8192u);
  EXPECT_EQ(ReadAll(reader).size(), first);                          // The reader catches up...
  while (out->Flush()) EXPECT_EQ(ReadAll(reader).size() > 0, true);  // ...and gets the rest.
  ReadAll(reader);
  EXPECT_EQ(out->written(), 8192u);
}

TEST(ConsoleOutputTest, TheSharedDescriptionKeepsItsFlags) {
  Pipe pipe = MakePipe();
  ScopedFd dup(::fcntl(pipe.write.get(), F_DUPFD_CLOEXEC, 0));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ConsoleOutput> out, ConsoleOutput::Create(std::move(dup)));
  EXPECT_EQ(::fcntl(pipe.write.get(), F_GETFL) & O_NONBLOCK, 0);  // The parent's stays blocking.
}

TEST(ConsoleOutputTest, AReaderThatGoesAwayEndsTheOutputNotTheWriter) {
  ::signal(SIGPIPE, SIG_IGN);  // As vmm's main does.
  Pipe pipe = MakePipe();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ConsoleOutput> out,
                       ConsoleOutput::Create(std::move(pipe.write)));
  pipe.read.reset();
  out->Write(Bytes("lost"));
  EXPECT_FALSE(out->Flush());
  out->Write(Bytes("more"));
  EXPECT_FALSE(Readable(out->ready_fd()));  // Closed: nothing more to flush.
  EXPECT_EQ(out->dropped(), 8u);
  EXPECT_EQ(out->written(), 0u);
}

TEST(ConsoleOutputTest, DrainWaitsForASlowReaderOnlyUpToItsLimit) {
  Pipe pipe = MakePipe();
  ASSERT_GE(::fcntl(pipe.write.get(), F_SETPIPE_SZ, 4096), 4096);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ConsoleOutput> out,
                       ConsoleOutput::Create(std::move(pipe.write), 16384));
  out->Write(Bytes(std::string(16384, 'y')));
  const absl::Time start = absl::Now();
  out->Drain(absl::Milliseconds(50));  // Nobody reads.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(out->written() + out->dropped(), 16384u);
  EXPECT_GT(out->dropped(), 0u);
}

TEST(ConsoleOutputTest, ARegularFileIsWrittenAtTheSharedOffset) {
  const std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                           "/console_output_test.txt";
  ScopedFd file(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_TRUE(file.valid());
  ASSERT_EQ(::write(file.get(), "log line\n", 9), 9);  // As stderr would, sharing the offset.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ConsoleOutput> out,
                       ConsoleOutput::Create(ScopedFd(::dup(file.get()))));
  out->Write(Bytes("console\n"));
  EXPECT_FALSE(out->Flush());
  char buf[64] = {};
  ASSERT_EQ(::pread(file.get(), buf, sizeof(buf), 0), 17);
  EXPECT_EQ(std::string(buf), "log line\nconsole\n");
}

}  // namespace
}  // namespace vmmkit::vmm
