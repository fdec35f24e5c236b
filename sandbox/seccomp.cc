#include "sandbox/seccomp.h"

#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::sandbox {
namespace {

// The reporter's view: the exit status, syscall names resolved before any filter exists (the
// handler must not allocate), and the policy of the thread it runs on.
int g_exit_status = 1;
constexpr int kMaxSyscallNumber = 512;
const char* g_syscall_names[kMaxSyscallNumber] = {};
thread_local char t_policy_name[32] = "";

// Async-signal-safe formatting: appends to buf, never past end.
char* Append(char* out, char* end, const char* s) {
  while (*s != '\0' && out < end) *out++ = *s++;
  return out;
}
char* AppendNumber(char* out, char* end, long v) {
  char digits[24];
  int n = 0;
  unsigned long u = v < 0 ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && n < 23);
  if (v < 0 && out < end) *out++ = '-';
  while (n > 0 && out < end) *out++ = digits[--n];
  return out;
}

void ReportRefusedSyscall(int, siginfo_t* info, void* context) {
  char line[512];
  char* end = line + sizeof(line) - 1;
  char* p = Append(line, end, "vmm: seccomp: ");
  // A thread that installed its own filter names its policy; one that inherited its creator's
  // (a gRPC or helper thread) is named by its comm.
  char comm[17] = {};
  if (t_policy_name[0] != '\0') {
    p = Append(p, end, t_policy_name);
  } else if (::prctl(PR_GET_NAME, comm, 0, 0, 0) == 0) {
    p = Append(p, end, "'");
    p = Append(p, end, comm);
    p = Append(p, end, "' (inherited filter)");
  }
  p = Append(p, end, " thread ");
  p = AppendNumber(p, end, static_cast<long>(::syscall(SYS_gettid)));
  p = Append(p, end, " made syscall ");
  const int nr = info->si_syscall;
  p = AppendNumber(p, end, nr);
  if (nr >= 0 && nr < kMaxSyscallNumber && g_syscall_names[nr] != nullptr) {
    p = Append(p, end, " (");
    p = Append(p, end, g_syscall_names[nr]);
    p = Append(p, end, ")");
  }
  // The path of a refused open: what a new code path wanted.
  const auto* uc = static_cast<const ucontext_t*>(context);
  if (nr == SYS_openat && uc != nullptr) {
    p = Append(p, end, " of ");
    p = Append(p, end, reinterpret_cast<const char*>(uc->uc_mcontext.gregs[REG_RSI]));
  }
  p = Append(p, end, ", which its filter refuses; exiting\n");
  (void)!::write(STDERR_FILENO, line, static_cast<size_t>(p - line));
  ::syscall(SYS_exit_group, g_exit_status);
}

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

absl::Status Check(int rc, const SeccompPolicy& policy, const char* what, int syscall_number) {
  if (rc == 0) return absl::OkStatus();
  return ErrnoStatus(-rc, "seccomp filter ", policy.name(), ": ", what, " for syscall ",
                     syscall_number);
}

}  // namespace

absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text) {
  if (text == "on") return SeccompMode::kOn;
  if (text == "log") return SeccompMode::kLog;
  if (text == "off") return SeccompMode::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("seccomp mode must be on, log or off, not '", text.substr(0, 16), "'"));
}

absl::string_view SeccompModeName(SeccompMode mode) {
  switch (mode) {
    case SeccompMode::kOn:
      return "on";
    case SeccompMode::kLog:
      return "log";
    case SeccompMode::kOff:
      return "off";
  }
  return "?";
}

SeccompPolicy& SeccompPolicy::Allow(int syscall_number) {
  syscalls_.insert(syscall_number);
  return *this;
}

SeccompPolicy& SeccompPolicy::Allow(std::initializer_list<int> syscall_numbers) {
  syscalls_.insert(syscall_numbers.begin(), syscall_numbers.end());
  return *this;
}

SeccompPolicy& SeccompPolicy::AllowIoctl(uint32_t request) {
  ioctls_.insert(request);
  return *this;
}

SeccompPolicy& SeccompPolicy::AllowIoctls(absl::Span<const uint32_t> requests) {
  ioctls_.insert(requests.begin(), requests.end());
  return *this;
}

SeccompPolicy& SeccompPolicy::AllowIf(int syscall_number, unsigned arg, uint64_t mask,
                                      uint64_t value) {
  conditional_[syscall_number].insert({arg, mask, value});
  return *this;
}

SeccompPolicy& SeccompPolicy::Refuse(int syscall_number, int errnum) {
  refused_[syscall_number] = errnum;
  return *this;
}

SeccompPolicy& SeccompPolicy::Merge(const SeccompPolicy& other) {
  syscalls_.insert(other.syscalls_.begin(), other.syscalls_.end());
  ioctls_.insert(other.ioctls_.begin(), other.ioctls_.end());
  for (const auto& [nr, rules] : other.conditional_) {
    conditional_[nr].insert(rules.begin(), rules.end());
  }
  for (const auto& [nr, errnum] : other.refused_) refused_.emplace(nr, errnum);
  return *this;
}

bool SeccompPolicy::Mentions(int syscall_number) const {
  return syscalls_.count(syscall_number) > 0 || conditional_.count(syscall_number) > 0 ||
         (syscall_number == SYS_ioctl && !ioctls_.empty());
}

absl::Status InstallSeccomp(const SeccompPolicy& policy, SeccompMode mode) {
  if (mode == SeccompMode::kOff) return absl::OkStatus();
  // libseccomp takes negative numbers as its own pseudo-syscalls: never what a policy means.
  for (int nr : policy.syscalls_) {
    if (nr < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("seccomp filter ", policy.name(), ": ", nr, " is not a syscall number"));
    }
  }
  const uint32_t refuse = mode == SeccompMode::kOn ? SCMP_ACT_TRAP : SCMP_ACT_LOG;
  std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(refuse));
  if (ctx == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("seccomp filter ", policy.name(), ": seccomp_init failed"));
  }
  // A binary tree: vCPU threads pass KVM_RUN's ioctl through the filter on every exit.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc != 0) {
    return Check(rc, policy, "seccomp_attr_set(OPTIMIZE)", 0);
  }
  for (int nr : policy.syscalls_) {
    RETURN_IF_ERROR(
        Check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0), policy, "seccomp_rule_add", nr));
  }
  for (uint32_t request : policy.ioctls_) {
    RETURN_IF_ERROR(Check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, request)),
                          policy, "seccomp_rule_add(ioctl)", SYS_ioctl));
  }
  for (const auto& [nr, rules] : policy.conditional_) {
    if (policy.syscalls_.count(nr) > 0) continue;  // Allowed outright already.
    for (const SeccompPolicy::ArgRule& r : rules) {
      const scmp_arg_cmp cmp = {r.arg, SCMP_CMP_MASKED_EQ, r.mask, r.value};
      RETURN_IF_ERROR(Check(seccomp_rule_add_array(ctx.get(), SCMP_ACT_ALLOW, nr, 1, &cmp), policy,
                            "seccomp_rule_add(argument)", nr));
    }
  }
  for (const auto& [nr, errnum] : policy.refused_) {
    if (policy.syscalls_.count(nr) > 0) continue;  // Allowed outright wins (a sanitizer's openat).
    RETURN_IF_ERROR(
        Check(seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(static_cast<uint16_t>(errnum)), nr, 0),
              policy, "seccomp_rule_add(errno)", nr));
  }
  std::strncpy(t_policy_name, policy.name().c_str(), sizeof(t_policy_name) - 1);
  // libseccomp sets no_new_privs (SCMP_FLTATR_CTL_NNP defaults to on) before loading.
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    t_policy_name[0] = '\0';
    return ErrnoStatus(-rc, "seccomp filter ", policy.name(), ": loading it (seccomp_load)");
  }
  return absl::OkStatus();
}

void InstallSigsysReporter(int exit_status) {
  g_exit_status = exit_status;
  for (int nr = 0; nr < kMaxSyscallNumber; ++nr) {
    if (g_syscall_names[nr] == nullptr) {
      // Kept for the life of the process: the handler reads them.
      g_syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    }
  }
  struct sigaction action = {};
  action.sa_sigaction = ReportRefusedSyscall;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGSYS, &action, nullptr);
}

bool BuiltWithSanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(VMMKIT_UBSAN)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

SeccompPolicy BasePolicy(std::string name) {
  SeccompPolicy p(std::move(name));
  p.Allow({
      // Memory: malloc's arenas, thread stacks, guard pages.
      SYS_brk,
      SYS_mmap,
      SYS_munmap,
      SYS_mprotect,
      SYS_madvise,
      SYS_mremap,
      // Locks and condition variables (absl::Mutex, std::mutex), and glibc's thread exit.
      SYS_futex,
      SYS_sched_yield,
      SYS_exit,
      SYS_exit_group,
      SYS_set_robust_list,
      SYS_rseq,
      // Signals: return from a handler, masks (glibc blocks signals around some calls), abort().
      SYS_rt_sigreturn,
      SYS_rt_sigprocmask,
      SYS_restart_syscall,
      SYS_tgkill,
      SYS_getpid,
      SYS_gettid,
      // Time (the vDSO answers most calls; these are its fallbacks) and sleeping.
      SYS_clock_gettime,
      SYS_gettimeofday,
      SYS_clock_getres,
      SYS_clock_nanosleep,
      SYS_nanosleep,
      // Log lines to stderr (LogLine), random seeds (Abseil's hash).
      SYS_write,
      SYS_getrandom,
  });
  // The reporter names a thread by its comm.
  p.AllowIf(SYS_prctl, 0, ~0ull, PR_GET_NAME);
  if (BuiltWithSanitizer()) {
    // The sanitizer runtimes' own calls: reading /proc/self/maps for a report, their allocators'
    // and shadow memory's bookkeeping, their thread registry; UBSan's test of whether memory is
    // readable before it checks an object's dynamic type (a write of it into a pipe).
    p.Allow({SYS_openat, SYS_read, SYS_close, SYS_readlink, SYS_fstat, SYS_newfstatat, SYS_lseek,
             SYS_pread64, SYS_sched_getaffinity, SYS_prlimit64, SYS_getrlimit, SYS_sigaltstack,
             SYS_rt_sigaction, SYS_prctl, SYS_getppid, SYS_kill, SYS_uname, SYS_pipe2});
  }
  return p;
}

}  // namespace vmmkit::sandbox
