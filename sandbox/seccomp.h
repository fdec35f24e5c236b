// File: sandbox/seccomp.h
// -----------------------------------------------------------------------------
// Seccomp allow-lists, one per kind of thread, built with Debian's libseccomp. A VMM gives each
// thread type (vCPU, event loop, API server, device workers) the syscalls that type needs and no
// more, and installs the list on the thread before it handles guest or client input. A filter
// is per thread and inherited by threads the filtered thread starts (stacked under their own).
//
//   SeccompPolicy vcpu("vcpu");
//   vcpu.Allow({SYS_futex, SYS_write}).AllowIoctl(KVM_RUN);
//   InstallSigsysReporter();                        // Once, early: names a refused syscall.
//   RETURN_IF_ERROR(InstallSeccomp(vcpu, SeccompMode::kOn));   // On the vCPU thread.

#ifndef VMMKIT_SANDBOX_SECCOMP_H_
#define VMMKIT_SANDBOX_SECCOMP_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace vmmkit::sandbox {

// What a filter does with a syscall outside its allow-list.
enum class SeccompMode {
  kOn,   // Refuse it with SIGSYS: the process ends (see InstallSigsysReporter).
  kLog,  // Allow it, and the kernel logs it ("audit: type=1326 ... comm=... syscall=N"): for
         // finding what a new code path needs.
  kOff,  // Install nothing.
};

// "on", "log" or "off"; anything else is INVALID_ARGUMENT naming the accepted values.
absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text);
absl::string_view SeccompModeName(SeccompMode mode);

// An allow-list: syscalls allowed outright, ioctls allowed by request number, and syscalls
// allowed only with one argument equal to a value (under a mask). Everything else takes the
// mode's action, except syscalls given a fixed errno with Refuse() (e.g. clone3 -> ENOSYS, so
// that glibc falls back to clone, whose flags a filter can inspect).
class SeccompPolicy {
 public:
  explicit SeccompPolicy(std::string name) : name_(std::move(name)) {}

  SeccompPolicy& Allow(int syscall_number);
  SeccompPolicy& Allow(std::initializer_list<int> syscall_numbers);
  // ioctl(fd, request, ...) for this request (compared as the kernel does: 32 bits).
  SeccompPolicy& AllowIoctl(uint32_t request);
  SeccompPolicy& AllowIoctls(absl::Span<const uint32_t> requests);
  // syscall(...) when (argument `arg` & mask) == value.
  SeccompPolicy& AllowIf(int syscall_number, unsigned arg, uint64_t mask, uint64_t value);
  // The syscall fails with `errnum` instead of taking the mode's action.
  SeccompPolicy& Refuse(int syscall_number, int errnum);
  // Adds everything `other` allows.
  SeccompPolicy& Merge(const SeccompPolicy& other);

  const std::string& name() const { return name_; }
  // Whether the syscall is allowed in some form (outright, by ioctl request or by argument).
  bool Mentions(int syscall_number) const;
  bool AllowsIoctl(uint32_t request) const { return ioctls_.count(request) > 0; }

 private:
  friend absl::Status InstallSeccomp(const SeccompPolicy&, SeccompMode);
  struct ArgRule {
    unsigned arg;
    uint64_t mask;
    uint64_t value;
    bool operator<(const ArgRule& o) const {
      return std::tie(arg, mask, value) < std::tie(o.arg, o.mask, o.value);
    }
  };

  std::string name_;
  std::set<int> syscalls_;
  std::set<uint32_t> ioctls_;
  std::map<int, std::set<ArgRule>> conditional_;
  std::map<int, int> refused_;
};

// Installs `policy` on the calling thread (kOff: nothing). Also sets no_new_privs on the thread,
// as an unprivileged process must before it can install a filter. Errors name the policy.
absl::Status InstallSeccomp(const SeccompPolicy& policy, SeccompMode mode);

// Installs a SIGSYS handler for refused syscalls: it writes one line to stderr naming the
// thread's policy, its tid and the syscall ("seccomp: vcpu thread 1234 made syscall 41
// (socket), which its filter refuses; exiting") and ends the process with status `exit_status`.
// Without it, a refused syscall kills the process with SIGSYS and a core dump, unexplained.
// Call once, before any filter is installed; the handler's only syscalls are write, gettid and
// exit_group, which every policy must allow (see BasePolicy).
void InstallSigsysReporter(int exit_status);

// What every thread of a C++ program needs whatever its job: memory (malloc, thread stacks),
// futexes, signal return, time, exit, writes to stderr, and the reporter's syscalls.
// In ASan, TSan and UBSan builds BasePolicy also allows what their runtimes call (opening
// /proc/self/maps for a report, among others), so a thread's list is wider there.
SeccompPolicy BasePolicy(std::string name);
bool BuiltWithSanitizer();

}  // namespace vmmkit::sandbox

#endif  // VMMKIT_SANDBOX_SECCOMP_H_
