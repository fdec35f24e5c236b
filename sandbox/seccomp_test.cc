#include "sandbox/seccomp.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::sandbox {
namespace {

using ::testing::HasSubstr;

constexpr int kRefusedExit = 42;

// Death tests fork; the filter lives and dies with the child.
class SeccompTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(SeccompTest, ParsesModes) {
  EXPECT_THAT(ParseSeccompMode("on"), IsOkAndHolds(SeccompMode::kOn));
  EXPECT_THAT(ParseSeccompMode("log"), IsOkAndHolds(SeccompMode::kLog));
  EXPECT_THAT(ParseSeccompMode("off"), IsOkAndHolds(SeccompMode::kOff));
  EXPECT_THAT(ParseSeccompMode("kill"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("on, log or off, not 'kill'")));
  EXPECT_EQ(SeccompModeName(SeccompMode::kLog), "log");
}

TEST_F(SeccompTest, PolicyRecordsWhatItAllows) {
  SeccompPolicy p("t");
  p.Allow(SYS_read).AllowIoctl(FIONREAD).AllowIf(SYS_socket, 0, ~0ull, AF_UNIX);
  EXPECT_TRUE(p.Mentions(SYS_read));
  EXPECT_TRUE(p.Mentions(SYS_ioctl));
  EXPECT_TRUE(p.Mentions(SYS_socket));
  EXPECT_FALSE(p.Mentions(SYS_ptrace));
  EXPECT_TRUE(p.AllowsIoctl(FIONREAD));
  SeccompPolicy q("q");
  q.Merge(p);
  EXPECT_TRUE(q.Mentions(SYS_read));
  EXPECT_TRUE(q.AllowsIoctl(FIONREAD));
}

TEST_F(SeccompTest, AllowedSyscallsWork) {
  EXPECT_EXIT(
      {
        InstallSigsysReporter(kRefusedExit);
        if (!InstallSeccomp(BasePolicy("base").Allow(SYS_getppid), SeccompMode::kOn).ok()) {
          std::_Exit(1);
        }
        (void)::getppid();
        (void)!::write(STDERR_FILENO, "still here\n", 11);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "still here");
}

TEST_F(SeccompTest, RefusedSyscallIsReportedAndEndsTheProcess) {
  EXPECT_EXIT(
      {
        InstallSigsysReporter(kRefusedExit);
        if (!InstallSeccomp(BasePolicy("vcpu"), SeccompMode::kOn).ok()) std::_Exit(1);
        (void)::socket(AF_INET, SOCK_STREAM, 0);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(kRefusedExit),
      "seccomp: vcpu thread [0-9]+ made syscall 41 \\(socket\\), which its filter refuses");
}

TEST_F(SeccompTest, WithoutReporterARefusedSyscallKillsWithSigsys) {
  EXPECT_EXIT(
      {
        signal(SIGSYS, SIG_DFL);
        if (!InstallSeccomp(BasePolicy("bare"), SeccompMode::kOn).ok()) std::_Exit(1);
        (void)::socket(AF_INET, SOCK_STREAM, 0);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGSYS), "");
}

TEST_F(SeccompTest, IoctlsAreAllowedByRequestNumber) {
  EXPECT_EXIT(
      {
        InstallSigsysReporter(kRefusedExit);
        int fds[2];
        if (::pipe(fds) != 0) std::_Exit(1);
        if (!InstallSeccomp(BasePolicy("io").AllowIoctl(FIONREAD), SeccompMode::kOn).ok()) {
          std::_Exit(1);
        }
        int n = 0;
        if (::ioctl(fds[0], FIONREAD, &n) != 0) std::_Exit(2);
        (void)!::write(STDERR_FILENO, "FIONREAD ok\n", 12);
        (void)::ioctl(fds[0], FIONBIO, &n);  // Not on the list.
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(kRefusedExit), "FIONREAD ok\n.*syscall 16 \\(ioctl\\)");
}

TEST_F(SeccompTest, ArgumentRulesAndRefusalsWithErrno) {
  EXPECT_EXIT(
      {
        InstallSigsysReporter(kRefusedExit);
        SeccompPolicy p = BasePolicy("args");
        p.AllowIf(SYS_socket, 0, ~0ull, AF_UNIX).Refuse(SYS_clone3, ENOSYS);
        if (!InstallSeccomp(p, SeccompMode::kOn).ok()) std::_Exit(1);
        const int unix_socket = ::socket(AF_UNIX, SOCK_STREAM, 0);
        if (unix_socket < 0) std::_Exit(2);
        if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) std::_Exit(3);
        (void)!::write(STDERR_FILENO, "unix ok, clone3 ENOSYS\n", 23);
        (void)::socket(AF_INET, SOCK_STREAM, 0);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(kRefusedExit), "unix ok, clone3 ENOSYS\n.*syscall 41");
}

TEST_F(SeccompTest, LogModeAllowsWhatTheListLacks) {
  EXPECT_EXIT(
      {
        InstallSigsysReporter(kRefusedExit);
        if (!InstallSeccomp(BasePolicy("log"), SeccompMode::kLog).ok()) std::_Exit(1);
        const int s = ::socket(AF_INET, SOCK_STREAM, 0);
        std::_Exit(s >= 0 ? 0 : 2);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(SeccompTest, OffInstallsNothing) {
  EXPECT_EXIT(
      {
        if (!InstallSeccomp(SeccompPolicy("none"), SeccompMode::kOff).ok()) std::_Exit(1);
        std::_Exit(::socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 2);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(SeccompTest, AnUnknownSyscallNumberIsAnErrorNamingThePolicy) {
  // In a child: were the check missing, the filter would be loaded.
  EXPECT_EXIT(
      {
        SeccompPolicy p = BasePolicy("bad");
        p.Allow(-1000);
        absl::Status s = InstallSeccomp(p, SeccompMode::kOn);
        (void)!::write(STDERR_FILENO, s.ToString().data(), s.ToString().size());
        std::_Exit(s.code() == absl::StatusCode::kInvalidArgument ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "seccomp filter bad: -1000 is not a syscall number");
}

}  // namespace
}  // namespace vmmkit::sandbox
