#include "vmm/confinement.h"

#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/landlock.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/thread_start.h"
#include "kvm/ioctls.h"
#include "sandbox/landlock.h"
#include "sandbox/privileges.h"
#include "vfio/ioctls.h"
#include "vhost/vhost.h"

namespace vmmkit::vmm {
namespace {

using sandbox::SeccompPolicy;

// What a running NIC asks of its tap (virtio_net::TapBackend): the guest's receive offloads, the
// queues it uses.
constexpr uint32_t kTapRuntimeIoctls[] = {TUNSETOFFLOAD, TUNSETQUEUE};

// clone only for threads (what std::thread does); clone3 fails with ENOSYS, and glibc falls
// back to clone, whose flags a filter can read (clone3's are behind a pointer).
void AllowThreadCreation(SeccompPolicy& p) {
  p.AllowIf(SYS_clone, 0, CLONE_THREAD, CLONE_THREAD).Refuse(SYS_clone3, ENOSYS);
  // pthread_create reads its creator's scheduling (gRPC's pools start threads that way).
  p.Allow({SYS_sched_getparam, SYS_sched_getscheduler});
}

// For threads that start threads which confine themselves (ConfineThread), on top of the
// starter's own filter: no_new_privs, the ambient set, Landlock and seccomp can only take away.
// The starter has no capabilities left, so capset is never reached.
void AllowStartingConfinedThreads(SeccompPolicy& p) {
  p.Allow({SYS_capget, SYS_landlock_restrict_self, SYS_seccomp});
  p.AllowIf(SYS_prctl, 0, ~0ull, PR_SET_NO_NEW_PRIVS)
      .AllowIf(SYS_prctl, 0, ~0ull, PR_CAP_AMBIENT)
      .AllowIf(SYS_prctl, 0, ~0ull, PR_SET_SECCOMP);
}

// For threads that open no files: glibc's malloc opens /proc/sys/vm/overcommit_memory once, on
// the first shrink of a thread's arena, wherever that happens, and copes with a refusal.
void RefuseOpening(SeccompPolicy& p) { p.Refuse(SYS_openat, EACCES).Refuse(SYS_open, EACCES); }

SeccompPolicy VcpuPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadVcpu));
  // Device models: eventfds (irqfds, MSI-X vectors; pending bits are polled on them),
  // passed-through config space, split-irqchip INTx re-armed through the IOAPIC lines' epoll; a
  // guest's eject detaches a device here (close, munmap, an Alongside helper overlapping the
  // device's reset).
  p.Allow({SYS_read, SYS_pread64, SYS_pwrite64, SYS_poll, SYS_ppoll, SYS_eventfd2, SYS_close,
           SYS_epoll_ctl, SYS_fcntl, SYS_newfstatat, SYS_fstat});
  AllowThreadCreation(p);
  RefuseOpening(p);
  // An ejected disk's io_uring gives its image back (uring::Ring's destructor), and nothing else.
  p.AllowIf(SYS_io_uring_register, 1, ~0ull, IORING_UNREGISTER_FILES);
  // A NIC's activation gives its tap the guest's receive offloads and queue count.
  p.AllowIoctls(kTapRuntimeIoctls);
  p.AllowIoctls(kvm::VcpuIoctls());
  p.AllowIoctls(kvm::VmRuntimeIoctls());
  p.AllowIoctls(vfio::RuntimeIoctls());
  return p;
}

SeccompPolicy EventLoopPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadEventLoop));
  p.Allow({
      // The loop itself: epoll, its eventfds, timerfd and signalfd; the console.
      SYS_epoll_wait,
      SYS_epoll_pwait,
      SYS_epoll_ctl,
      SYS_read,
      SYS_readv,
      SYS_writev,
      SYS_poll,
      SYS_ppoll,
      SYS_eventfd2,
      SYS_timerfd_create,
      SYS_timerfd_settime,
      SYS_timerfd_gettime,
      SYS_fcntl,
      SYS_close,
      SYS_dup,
      SYS_fsync,
      SYS_fdatasync,
      // A hot-added disk: its image is locked; its workers start here and keep this filter
      // under theirs; the io_uring engine's rings are made here (uring::Ring: confined to the
      // image before any request).
      SYS_flock,
      SYS_preadv,
      SYS_pwritev,
      SYS_fallocate,
      SYS_io_uring_setup,
      SYS_io_uring_register,
      SYS_io_uring_enter,
      // Attaching a passed-through device: its group and device nodes, sysfs, config space,
      // BAR and DMA mappings; CountResources' /proc/self listings.
      SYS_openat,
      SYS_newfstatat,
      SYS_fstat,
      SYS_statx,
      SYS_readlink,
      SYS_readlinkat,
      SYS_getdents64,
      SYS_lseek,
      SYS_pread64,
      SYS_pwrite64,
      SYS_mlock,
      SYS_munlock,
      SYS_sched_getaffinity,
      SYS_prlimit64,
      SYS_getrlimit,
      SYS_uname,
      SYS_faccessat,
      SYS_faccessat2,
      SYS_geteuid,
      SYS_getuid,
      SYS_sysinfo,
  });
  AllowThreadCreation(p);
  AllowStartingConfinedThreads(p);
  p.AllowIoctls(kvm::VmRuntimeIoctls());
  p.AllowIoctls(vfio::AllIoctls());
  // A hot-added NIC's tap, attached by name (its workers start here, as a disk's do), and its
  // vhost-net devices.
  p.AllowIoctls({TUNSETIFF, TUNGETIFF, TUNSETVNETHDRSZ, TUNSETSNDBUF});
  p.AllowIoctls(kTapRuntimeIoctls);
  p.AllowIoctls(vhost::SetupIoctls());
  p.AllowIoctls(vhost::RingIoctls());
  // Restoring the terminal at exit (tcsetattr) and checking for one.
  p.AllowIoctls({TCGETS, TCSETS, TCSETSW, TCSETSF});
  return p;
}

SeccompPolicy ApiPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadApi));
  p.Allow({
      // gRPC's poller and its connections.
      SYS_epoll_create1,
      SYS_epoll_ctl,
      SYS_epoll_wait,
      SYS_epoll_pwait,
      SYS_poll,
      SYS_ppoll,
      SYS_eventfd2,
      SYS_pipe2,
      SYS_read,
      SYS_readv,
      SYS_writev,
      SYS_recvmsg,
      SYS_recvfrom,
      SYS_sendmsg,
      SYS_sendto,
      SYS_getsockopt,
      SYS_setsockopt,
      SYS_getsockname,
      SYS_getpeername,
      SYS_shutdown,
      SYS_close,
      SYS_fcntl,
      SYS_sched_getaffinity,
      SYS_getrlimit,
      SYS_prlimit64,
      // The socket: claiming its path (probing and removing a stale one), creating it, accepting.
      SYS_connect,
      SYS_bind,
      SYS_listen,
      SYS_accept4,
      SYS_unlink,
      SYS_umask,
      SYS_chmod,
      SYS_fchmodat,
      SYS_newfstatat,
      SYS_lstat,
      // The accepting thread compares a peer's uid with vmm's; gRPC sizes its memory quota by
      // the host's RAM (sysconf: sysinfo) and may read its own usage.
      SYS_geteuid,
      SYS_getuid,
      SYS_getegid,
      SYS_getgid,
      SYS_sysinfo,
      SYS_getrusage,
      SYS_uname,
  });
  p.AllowIf(SYS_socket, 0, ~0ull, AF_UNIX);
  p.AllowIf(SYS_prctl, 0, ~0ull, PR_SET_NAME);
  AllowThreadCreation(p);
  RefuseOpening(p);
  return p;
}

SeccompPolicy IoapicLinesPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadIoapicLines));
  p.Allow({SYS_epoll_wait, SYS_epoll_pwait, SYS_read, SYS_close});
  RefuseOpening(p);
  p.AllowIoctls({KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_SIGNAL_MSI});
  return p;
}

SeccompPolicy VirtioBlkPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadVirtioBlk));
  // A request's segments move with one preadv or pwritev on guest memory (DmaSpace::ReadFromFd);
  // pread and pwrite where the DMA space bounces. The io_uring engine submits to and waits on
  // its ring, which can do nothing but read, write and fdatasync the image (uring::Ring).
  p.Allow({SYS_read, SYS_poll, SYS_ppoll, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev,
           SYS_fdatasync, SYS_fallocate, SYS_io_uring_enter});
  RefuseOpening(p);
  p.AllowIoctls({KVM_SIGNAL_MSI});
  return p;
}

SeccompPolicy VirtioNetPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadVirtioNet));
  // Frames to and from the tap (one write or writev, one read each), the notifier eventfds; the
  // control queue sets the tap's offloads and queues. With vhost-net, the rings go to the kernel
  // at activation and come back at reset.
  p.Allow({SYS_read, SYS_write, SYS_writev, SYS_poll, SYS_ppoll});
  RefuseOpening(p);
  p.AllowIoctls(kTapRuntimeIoctls);
  p.AllowIoctls(vhost::RingIoctls());
  p.AllowIoctls({KVM_SIGNAL_MSI});
  return p;
}

SeccompPolicy VirtioVsockPolicy() {
  SeccompPolicy p = sandbox::BasePolicy(std::string(kThreadVirtioVsock));
  // The kernel's interrupts (eventfds) relayed to the guest; the rings handed to vhost-vsock at
  // activation and taken back at reset.
  p.Allow({SYS_read, SYS_poll, SYS_ppoll});
  RefuseOpening(p);
  p.AllowIoctls(vhost::RingIoctls());
  p.AllowIoctls({KVM_SIGNAL_MSI});
  return p;
}

// The process's confinement, set once by SetUpConfinement before any thread exists; read-only
// afterwards (threads only read it, in the hook).
struct Confinement {
  sandbox::SeccompMode seccomp = sandbox::SeccompMode::kOff;
  std::optional<sandbox::LandlockRuleset> landlock;
};
Confinement* g_confinement = nullptr;

[[noreturn]] void Fail(absl::string_view kind, const absl::Status& s) {
  LogError("vmm: cannot confine the ", kind, " thread: ", s.message());
  std::_Exit(1);
}

void ConfineThread(absl::string_view kind) {
  const Confinement& c = *g_confinement;
  // Capabilities first: Landlock and seccomp do not allow capset afterwards.
  if (absl::Status s = sandbox::DropCapabilities({CAP_IPC_LOCK}); !s.ok()) Fail(kind, s);
  if (absl::Status s = sandbox::SetNoNewPrivs(); !s.ok()) Fail(kind, s);
  if (c.landlock.has_value()) {
    if (absl::Status s = c.landlock->RestrictSelf(); !s.ok()) Fail(kind, s);
  }
  absl::StatusOr<SeccompPolicy> policy = SeccompPolicyFor(kind);
  if (!policy.ok()) Fail(kind, policy.status());
  if (absl::Status s = sandbox::InstallSeccomp(*policy, c.seccomp); !s.ok()) Fail(kind, s);
}

}  // namespace

absl::StatusOr<SeccompPolicy> SeccompPolicyFor(absl::string_view kind) {
  if (kind == kThreadVcpu) return VcpuPolicy();
  if (kind == kThreadEventLoop) return EventLoopPolicy();
  if (kind == kThreadApi) return ApiPolicy();
  if (kind == kThreadIoapicLines) return IoapicLinesPolicy();
  if (kind == kThreadVirtioBlk) return VirtioBlkPolicy();
  if (kind == kThreadVirtioNet) return VirtioNetPolicy();
  if (kind == kThreadVirtioVsock) return VirtioVsockPolicy();
  return absl::NotFoundError(absl::StrCat("no seccomp policy for a '", kind, "' thread"));
}

std::vector<std::pair<std::string, uint64_t>> LandlockRules(const VmmConfig& config) {
  using sandbox::kLandlockRead;
  using sandbox::kLandlockReadWrite;
  std::vector<std::pair<std::string, uint64_t>> rules = {
      {config.kernel_path, kLandlockRead},
      {"/dev/kvm", kLandlockReadWrite},
      {"/dev/vfio", kLandlockReadWrite},
      {"/dev/iommu", kLandlockReadWrite},
      {"/dev/net/tun", kLandlockReadWrite},
      {"/dev/vhost-net", kLandlockReadWrite},
      {"/dev/vhost-vsock", kLandlockReadWrite},
      // A hot-added device's sysfs node, its IOMMU group link and the group's members.
      {"/sys/bus/pci", kLandlockRead},
      {"/sys/devices", kLandlockRead},
      {"/sys/kernel/iommu_groups", kLandlockRead},
      // GetVm's fd and thread counts list /proc/self/fd and /proc/self/task. (The rule is on
      // /proc: one on /proc/<pid> would not hold, proc's inodes are made per lookup.)
      {"/proc", kLandlockRead},
  };
  if (!config.initrd_path.empty()) rules.emplace_back(config.initrd_path, kLandlockRead);
  for (const DiskConfig& d : config.disks) {
    rules.emplace_back(d.path, d.read_only ? kLandlockRead : kLandlockReadWrite);
  }
  for (const std::string& dir : config.disk_dirs) rules.emplace_back(dir, kLandlockReadWrite);
  if (config.serial == SerialMode::kFile) {
    rules.emplace_back(config.serial_path, kLandlockReadWrite);
  }
  if (!config.api_socket.empty()) {
    const size_t slash = config.api_socket.rfind('/');
    std::string dir = slash == std::string::npos ? "."
                      : slash == 0               ? "/"
                                                 : config.api_socket.substr(0, slash);
    rules.emplace_back(std::move(dir),
                       LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REMOVE_FILE);
  }
  return rules;
}

absl::Status SetUpConfinement(const VmmConfig& config) {
  auto c = std::make_unique<Confinement>();
  c->seccomp = config.seccomp;
  if (config.landlock) {
    absl::StatusOr<sandbox::LandlockRuleset> rules = sandbox::LandlockRuleset::Create();
    if (rules.status().code() == absl::StatusCode::kFailedPrecondition) {
      LogWarning("vmm: ", rules.status().message(), "; running without Landlock");
    } else {
      RETURN_IF_ERROR(rules.status());
      for (const auto& [path, access] : LandlockRules(config)) {
        absl::Status s = rules->AllowPath(path, access);
        // What this host lacks (no /dev/vfio, no /dev/iommu) needs no rule.
        if (s.code() == absl::StatusCode::kNotFound) continue;
        RETURN_IF_ERROR(s);
      }
      c->landlock = std::move(*rules);
    }
  }
  if (config.seccomp != sandbox::SeccompMode::kOff) sandbox::InstallSigsysReporter(1);
  g_confinement = c.release();  // Lives as long as the process: threads read it to the end.
  SetThreadStartHook(ConfineThread);
  return absl::OkStatus();
}

}  // namespace vmmkit::vmm
