#include "vmm/confinement.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <thread>

#include "base/status_matchers.h"
#include "base/thread_start.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/landlock.h"
#include "uring/ring.h"
#include "vhost/vhost.h"

namespace vmmkit::vmm {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;

VmmConfig Config() {
  VmmConfig c{};
  c.kernel_path = "/tmp/bzImage";
  c.initrd_path = "/tmp/initrd";
  c.serial = SerialMode::kFile;
  c.serial_path = "/tmp/console.log";
  c.api_socket = "/run/vmm/vm0.sock";
  c.seccomp = sandbox::SeccompMode::kOn;
  c.landlock = true;
  return c;
}

TEST(ConfinementTest, EachKindHasItsOwnList) {
  for (absl::string_view kind : {kThreadVcpu, kThreadEventLoop, kThreadApi, kThreadIoapicLines,
                                 kThreadVirtioBlk, kThreadVirtioNet, kThreadVirtioVsock}) {
    ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy p, SeccompPolicyFor(kind));
    EXPECT_EQ(p.name(), kind);
    EXPECT_TRUE(p.Mentions(SYS_futex)) << kind;
    EXPECT_FALSE(p.Mentions(SYS_execve)) << kind;
    EXPECT_FALSE(p.Mentions(SYS_ptrace)) << kind;
  }
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy vcpu, SeccompPolicyFor(kThreadVcpu));
  EXPECT_TRUE(vcpu.AllowsIoctl(KVM_RUN));
  if (!sandbox::BuiltWithSanitizer()) {  // Whose runtime may open files (BasePolicy).
    EXPECT_FALSE(vcpu.Mentions(SYS_openat)) << "a vCPU opens no files (refused: EACCES)";
  }
  EXPECT_FALSE(vcpu.Mentions(SYS_socket));
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy loop, SeccompPolicyFor(kThreadEventLoop));
  EXPECT_FALSE(loop.AllowsIoctl(KVM_RUN)) << "only vCPU threads run the guest";
  EXPECT_TRUE(loop.Mentions(SYS_openat)) << "hot-adding a device opens its nodes";
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy api, SeccompPolicyFor(kThreadApi));
  EXPECT_FALSE(api.Mentions(SYS_ioctl)) << "the API thread asks the loop; it touches no device";
  EXPECT_TRUE(sandbox::BuiltWithSanitizer() || !api.Mentions(SYS_openat));
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy lines, SeccompPolicyFor(kThreadIoapicLines));
  EXPECT_TRUE(lines.AllowsIoctl(KVM_IRQ_LINE));
  EXPECT_FALSE(lines.Mentions(SYS_clone));
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy blk, SeccompPolicyFor(kThreadVirtioBlk));
  EXPECT_TRUE(blk.Mentions(SYS_fdatasync)) << "a FLUSH";
  EXPECT_TRUE(blk.Mentions(SYS_fallocate)) << "discard and write-zeroes";
  EXPECT_TRUE(blk.AllowsIoctl(KVM_SIGNAL_MSI));
  EXPECT_FALSE(blk.AllowsIoctl(KVM_RUN));
  EXPECT_FALSE(blk.Mentions(SYS_clone));
  EXPECT_FALSE(blk.Mentions(SYS_socket));
  EXPECT_TRUE(blk.Mentions(SYS_io_uring_enter)) << "the io_uring engine";
  EXPECT_FALSE(blk.Mentions(SYS_io_uring_setup)) << "rings are made before the workers start";
  EXPECT_FALSE(blk.Mentions(SYS_io_uring_register));
  EXPECT_TRUE(sandbox::BuiltWithSanitizer() || !blk.Mentions(SYS_openat));
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy net, SeccompPolicyFor(kThreadVirtioNet));
  EXPECT_TRUE(net.Mentions(SYS_writev)) << "a frame to the tap";
  EXPECT_TRUE(net.AllowsIoctl(TUNSETOFFLOAD)) << "the control queue's offloads";
  EXPECT_FALSE(net.AllowsIoctl(TUNSETIFF)) << "workers attach to no other tap";
  EXPECT_TRUE(net.AllowsIoctl(KVM_SIGNAL_MSI));
  EXPECT_FALSE(net.Mentions(SYS_clone));
  EXPECT_FALSE(net.Mentions(SYS_socket));
  EXPECT_TRUE(sandbox::BuiltWithSanitizer() || !net.Mentions(SYS_openat));
  EXPECT_TRUE(loop.AllowsIoctl(TUNSETIFF)) << "a hot-added NIC's tap";
  EXPECT_TRUE(vcpu.AllowsIoctl(TUNSETOFFLOAD)) << "a NIC's activation";
  EXPECT_FALSE(vcpu.AllowsIoctl(TUNSETIFF));
  for (uint32_t request : vhost::RingIoctls()) {
    EXPECT_TRUE(net.AllowsIoctl(request)) << "vhost-net's rings";
    EXPECT_TRUE(loop.AllowsIoctl(request)) << "what its workers do, their creator may";
  }
  ASSERT_OK_AND_ASSIGN(sandbox::SeccompPolicy vsock, SeccompPolicyFor(kThreadVirtioVsock));
  EXPECT_TRUE(vsock.AllowsIoctl(KVM_SIGNAL_MSI));
  EXPECT_FALSE(vsock.Mentions(SYS_writev)) << "it moves no data itself";
  EXPECT_TRUE(sandbox::BuiltWithSanitizer() || !vsock.Mentions(SYS_openat));
  for (uint32_t request : vhost::SetupIoctls()) {
    EXPECT_FALSE(net.AllowsIoctl(request)) << "set up before the workers start";
    EXPECT_TRUE(loop.AllowsIoctl(request)) << "a hot-added NIC's vhost-net";
  }
  // The event loop starts a hot-added disk's workers, whose filter stacks on its own.
  for (int nr : {SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev, SYS_fdatasync, SYS_fallocate,
                 SYS_poll, SYS_flock, SYS_io_uring_setup, SYS_io_uring_register}) {
    EXPECT_TRUE(loop.Mentions(nr)) << nr;
  }
  EXPECT_THAT(SeccompPolicyFor("gpu"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("gpu")));
}

TEST(ConfinementTest, LandlockRulesNameWhatTheVmWasGiven) {
  const auto rules = LandlockRules(Config());
  EXPECT_THAT(rules, ::testing::Contains(Pair("/tmp/bzImage", sandbox::kLandlockRead)));
  EXPECT_THAT(rules, ::testing::Contains(Pair("/tmp/initrd", sandbox::kLandlockRead)));
  EXPECT_THAT(rules, ::testing::Contains(Pair("/tmp/console.log", sandbox::kLandlockReadWrite)));
  EXPECT_THAT(rules, ::testing::Contains(Pair("/dev/kvm", sandbox::kLandlockReadWrite)));
  EXPECT_THAT(rules, ::testing::Contains(Pair("/run/vmm", LANDLOCK_ACCESS_FS_MAKE_SOCK |
                                                              LANDLOCK_ACCESS_FS_REMOVE_FILE)));
  EXPECT_THAT(rules, ::testing::Not(::testing::Contains(Pair("/var/vm/root.img", ::testing::_))));
  VmmConfig with_disks = Config();
  with_disks.disks = {{.id = "root", .path = "/var/vm/root.img"},
                      {.id = "iso", .path = "/var/vm/iso.img", .read_only = true}};
  with_disks.disk_dirs = {"/var/vm/volumes"};
  const auto disk_rules = LandlockRules(with_disks);
  EXPECT_THAT(disk_rules,
              ::testing::Contains(Pair("/var/vm/root.img", sandbox::kLandlockReadWrite)));
  EXPECT_THAT(disk_rules, ::testing::Contains(Pair("/var/vm/iso.img", sandbox::kLandlockRead)));
  EXPECT_THAT(disk_rules,
              ::testing::Contains(Pair("/var/vm/volumes", sandbox::kLandlockReadWrite)));
  for (const auto& [path, access] : rules) {
    EXPECT_NE(path, "/") << "never the whole file system";
    EXPECT_NE(path, "/tmp") << "not the directory of a file it was given";
  }
}

// In a death test's child: vmm's confinement as SetUpConfinement sets it up (exit 10 if it
// cannot); threads confine themselves with ThreadStarted(kind), as vmm's do.
void SetUpInChild(sandbox::SeccompMode seccomp, bool landlock) {
  VmmConfig c = Config();
  c.seccomp = seccomp;
  c.landlock = landlock;
  if (!SetUpConfinement(c).ok()) std::_Exit(10);
}

// A test per thread kind: a thread confined as that kind that makes a syscall outside its list
// ends the process with the reporter's line (in a child: the filter is for good).
class ConfinedThreadTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_P(ConfinedThreadTest, ASyscallOutsideTheListEndsVmm) {
  const std::string kind = GetParam();
  EXPECT_EXIT(
      {
        SetUpInChild(sandbox::SeccompMode::kOn, /*landlock=*/false);
        std::thread([&] {
          ThreadStarted(kind);
          (void)!::write(STDERR_FILENO, "confined\n", 9);
          // No thread kind may start a program.
          char* const argv[] = {nullptr};
          ::execve("/bin/true", argv, argv);
          std::_Exit(11);
        }).join();
        std::_Exit(12);
      },
      ::testing::ExitedWithCode(1),
      "confined\n.*seccomp: " + kind + " thread [0-9]+ made syscall 59 \\(execve\\)");
}

INSTANTIATE_TEST_SUITE_P(EveryKind, ConfinedThreadTest,
                         ::testing::Values("vcpu", "event-loop", "api", "ioapic-lines",
                                           "virtio-blk"));

// The end of a disk worker's death test: the worker says it did its I/O, then makes a syscall
// outside its filter (socket), which must end the process with the line kWorkerStrayed matches.
[[noreturn]] void WorkerDidItsIoThenStrays() {
  (void)!::write(STDERR_FILENO, "worker did its I/O\n", 19);
  (void)::socket(AF_INET, SOCK_STREAM, 0);
  std::_Exit(12);
}
constexpr char kWorkerStrayed[] =
    "worker did its I/O\n.*seccomp: virtio-blk thread [0-9]+ made syscall 41";

// A hot-added disk's worker is started by the (confined) event loop: it confines itself on top
// of the loop's filter, then does a disk's I/O; anything else still ends vmm.
TEST(ConfinementDeathTest, ADiskWorkerStartedByTheEventLoopConfinesItselfAndDoesItsIo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/worker.img";
  EXPECT_EXIT(
      {
        const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) std::_Exit(10);
        SetUpInChild(sandbox::SeccompMode::kOn, /*landlock=*/false);
        std::thread([fd] {
          ThreadStarted("event-loop");
          std::thread([fd] {
            ThreadStarted("virtio-blk");
            char block[512] = {1};
            iovec iov = {block, sizeof(block)};
            if (::pwrite(fd, block, sizeof(block), 0) != 512 ||
                ::pread(fd, block, sizeof(block), 0) != 512 || ::pwritev(fd, &iov, 1, 512) != 512 ||
                ::preadv(fd, &iov, 1, 512) != 512 || ::fdatasync(fd) != 0 ||
                ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 512) != 0) {
              std::_Exit(11);
            }
            WorkerDidItsIoThenStrays();
          }).join();
        }).join();
        std::_Exit(13);
      },
      ::testing::ExitedWithCode(1), kWorkerStrayed);
}

// With the io_uring engine, a hot-added disk's rings are made on the event loop and used by its
// workers, through nothing but io_uring_enter.
TEST(ConfinementDeathTest, ADiskWorkersRingIsMadeByTheEventLoopAndServesTheWorker) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/ring.img";
  if (absl::Status s = uring::Ring::Available(); !s.ok()) {
    GTEST_SKIP() << "no usable io_uring here: " << s;
  }
  EXPECT_EXIT(
      {
        const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) std::_Exit(10);
        SetUpInChild(sandbox::SeccompMode::kOn, /*landlock=*/false);
        std::thread([fd] {
          ThreadStarted("event-loop");
          absl::StatusOr<uring::Ring> ring = uring::Ring::Create(4, {fd});
          if (!ring.ok()) std::_Exit(14);
          std::thread([&ring] {
            ThreadStarted("virtio-blk");
            char block[512] = {1};
            iovec iov = {block, sizeof(block)};
            int done = 0;
            if (!ring->QueueWritev(0, {&iov, 1}, 0, 1).ok() || !ring->QueueFdatasync(0, 2).ok() ||
                !ring->Submit().ok()) {
              std::_Exit(11);
            }
            while (done < 2) {
              if (!ring->WaitOne().ok()) std::_Exit(15);
              ring->Reap([&](uint64_t, int32_t result) {
                if (result < 0) std::_Exit(16);
                ++done;
              });
            }
            WorkerDidItsIoThenStrays();
          }).join();
        }).join();
        std::_Exit(13);
      },
      ::testing::ExitedWithCode(1), kWorkerStrayed);
}

// A guest's eject destroys a disk on a vCPU thread: an io_uring engine's ring unregisters its
// image there (so the image's lock goes with the disk), and may do nothing else.
TEST(ConfinementDeathTest, AVcpuThreadTearsDownADisksRing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/eject.img";
  if (absl::Status s = uring::Ring::Available(); !s.ok()) {
    GTEST_SKIP() << "no usable io_uring here: " << s;
  }
  EXPECT_EXIT(
      {
        const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        absl::StatusOr<uring::Ring> ring = uring::Ring::Create(4, {fd});
        if (fd < 0 || !ring.ok()) std::_Exit(10);
        SetUpInChild(sandbox::SeccompMode::kOn, /*landlock=*/false);
        std::thread([&ring] {
          ThreadStarted("vcpu");
          { uring::Ring gone = *std::move(ring); }
          (void)!::write(STDERR_FILENO, "ring gone\n", 10);
          int more[] = {0};
          (void)::syscall(SYS_io_uring_register, 0, IORING_REGISTER_FILES, more, 1);
          std::_Exit(12);
        }).join();
        std::_Exit(13);
      },
      ::testing::ExitedWithCode(1), "ring gone\n.*seccomp: vcpu thread [0-9]+ made syscall 427");
}

TEST(ConfinementDeathTest, VcpuThreadsOpenNoFilesAndStartNoProcesses) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        SetUpInChild(sandbox::SeccompMode::kOn, /*landlock=*/false);
        std::thread([] {
          ThreadStarted("vcpu");
          if (!sandbox::BuiltWithSanitizer() &&
              (::open("/etc/passwd", O_RDONLY) >= 0 || errno != EACCES)) {
            std::_Exit(11);
          }
          (void)!::write(STDERR_FILENO, "open refused\n", 13);
          // A process: clone without CLONE_THREAD. Raw, not fork(): ThreadSanitizer's fork()
          // holds its locks across the call, and the reporter's write would wait on them.
          (void)::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
          std::_Exit(12);
        }).join();
        std::_Exit(13);
      },
      ::testing::ExitedWithCode(1),
      "open refused\n.*seccomp: vcpu thread [0-9]+ made syscall 56 \\(clone\\)");
}

// A thread started by a confined thread keeps its creator's filter, and the reporter names it.
TEST(ConfinementDeathTest, InheritedFiltersAreReportedByThreadName) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        SetUpInChild(sandbox::SeccompMode::kOn, /*landlock=*/false);
        std::thread([] {
          ThreadStarted("api");
          std::thread([] {
            pthread_setname_np(pthread_self(), "grpc-worker");
            (void)::socket(AF_INET, SOCK_STREAM, 0);
            std::_Exit(11);
          }).join();
        }).join();
        std::_Exit(12);
      },
      ::testing::ExitedWithCode(1),
      "seccomp: 'grpc-worker' \\(inherited filter\\) thread [0-9]+ made syscall 41");
}

TEST(ConfinementDeathTest, LogModeLetsThroughAndLandlockStillHolds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  if (sandbox::LandlockRuleset::AbiVersion() < 1) GTEST_SKIP() << "this kernel has no Landlock";
  EXPECT_EXIT(
      {
        SetUpInChild(sandbox::SeccompMode::kLog, /*landlock=*/true);
        int rc = 12;
        std::thread([&] {
          ThreadStarted("vcpu");
          // Allowed (and logged) by the filter; refused by Landlock: not a file it was given.
          const int fd = ::open("/etc/passwd", O_RDONLY);
          rc = fd < 0 && errno == EACCES ? 0 : 13;
        }).join();
        std::_Exit(rc);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace vmmkit::vmm
