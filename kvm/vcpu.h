// File: kvm/vcpu.h
// -----------------------------------------------------------------------------
// Vcpu owns one KVM vCPU fd and its mmapped kvm_run area: register state (one getter/setter pair
// per ioctl) and Run(), which enters the guest and returns a typed VcpuExit.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Vcpu> vcpu, vm->CreateVcpu(0));
//   for (;;) {
//     ASSIGN_OR_RETURN(VcpuExit exit, vcpu->Run());
//     if (auto* out = std::get_if<exit::IoOut>(&exit)) { ... }
//     else if (std::holds_alternative<exit::Hlt>(exit)) break;
//   }
//
// Kick() makes a Run() in progress on another thread return exit::Interrupted promptly, or the
// next Run() return it immediately: it sets kvm_run.immediate_exit and sends the running thread
// KickSignal(), for which vmmkit installs a no-op handler (without SA_RESTART) on first use. The
// vCPU thread must not block that signal.
//
// Thread-safety: Run() and the register accessors belong to one thread at a time (the vCPU
// thread); Kick() may be called from any thread at any time.

#ifndef VMMKIT_KVM_VCPU_H_
#define VMMKIT_KVM_VCPU_H_

#include <linux/kvm.h>
#include <pthread.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "kvm/cpuid.h"
#include "kvm/vcpu_exit.h"

namespace vmmkit::kvm {

// The legacy 4 KiB XSAVE area exchanged by KVM_GET_XSAVE / KVM_SET_XSAVE, in the kernel's layout
// (the C++ view of struct kvm_xsave is larger; see kvm/internal/kvm_abi.h).
struct Xsave {
  uint32_t region[1024];
};
static_assert(sizeof(Xsave) == 4096);

class Vcpu {
 public:
  // Adopts a vCPU fd (one from KVM_CREATE_VCPU, possibly passed from another process) and maps
  // its `run_size`-byte kvm_run area (KVM_GET_VCPU_MMAP_SIZE). Vm::CreateVcpu uses this.
  static absl::StatusOr<std::unique_ptr<Vcpu>> Adopt(uint32_t id, ScopedFd fd, size_t run_size);

  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu();  // Unmaps kvm_run, then closes the fd.

  // The signal Kick() sends: SIGRTMIN, the first real-time signal glibc leaves to applications.
  static int KickSignal();

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  // The raw shared area, for exits this wrapper does not decode. Valid for the Vcpu's lifetime.
  kvm_run* run_area() const { return run_; }

  // KVM_RUN. A failing ioctl is an error naming KVM_RUN; EINTR (a signal, Kick) and EAGAIN (an
  // AP that just received its startup IPI) are exit::Interrupted: call Run() again. Malformed exit
  // data from the kernel is an INTERNAL error, never a crash.
  absl::StatusOr<VcpuExit> Run();
  // Thread-safe: interrupts a Run() in progress, or makes the next one return at once.
  void Kick();

  absl::StatusOr<kvm_regs> GetRegs() const;                   // KVM_GET_REGS
  absl::Status SetRegs(const kvm_regs& regs);                 // KVM_SET_REGS
  absl::StatusOr<kvm_sregs> GetSregs() const;                 // KVM_GET_SREGS
  absl::Status SetSregs(const kvm_sregs& sregs);              // KVM_SET_SREGS
  absl::StatusOr<kvm_fpu> GetFpu() const;                     // KVM_GET_FPU
  absl::Status SetFpu(const kvm_fpu& fpu);                    // KVM_SET_FPU
  absl::StatusOr<kvm_lapic_state> GetLapic() const;           // KVM_GET_LAPIC
  absl::Status SetLapic(const kvm_lapic_state& lapic);        // KVM_SET_LAPIC
  absl::StatusOr<kvm_mp_state> GetMpState() const;            // KVM_GET_MP_STATE
  absl::Status SetMpState(const kvm_mp_state& state);         // KVM_SET_MP_STATE
  absl::StatusOr<kvm_xcrs> GetXcrs() const;                   // KVM_GET_XCRS
  absl::Status SetXcrs(const kvm_xcrs& xcrs);                 // KVM_SET_XCRS
  absl::StatusOr<Xsave> GetXsave() const;                     // KVM_GET_XSAVE
  absl::Status SetXsave(const Xsave& xsave);                  // KVM_SET_XSAVE
  absl::StatusOr<kvm_vcpu_events> GetVcpuEvents() const;      // KVM_GET_VCPU_EVENTS
  absl::Status SetVcpuEvents(const kvm_vcpu_events& events);  // KVM_SET_VCPU_EVENTS
  // KVM_SET_CPUID2 / KVM_GET_CPUID2.
  absl::Status SetCpuid2(const Cpuid& cpuid);
  absl::StatusOr<Cpuid> GetCpuid2() const;
  // KVM_GET_MSRS: the values of `indices`. An MSR KVM cannot read is an error naming it.
  absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(absl::Span<const uint32_t> indices) const;
  // KVM_SET_MSRS: all or an error naming the first MSR KVM refused.
  absl::Status SetMsrs(absl::Span<const kvm_msr_entry> entries);

 private:
  Vcpu(uint32_t id, ScopedFd fd, kvm_run* run, size_t run_size)
      : id_(id), fd_(std::move(fd)), run_(run), run_size_(run_size) {}

  const uint32_t id_;
  ScopedFd fd_;
  kvm_run* const run_;
  const size_t run_size_;

  // The thread inside Run(), so that Kick() only ever signals a live thread that is running this
  // vCPU. Held briefly around KVM_RUN's entry and exit, never across it.
  Mutex kick_mu_;
  bool in_run_ ABSL_GUARDED_BY(kick_mu_) = false;
  pthread_t run_thread_ ABSL_GUARDED_BY(kick_mu_) = {};
};

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_VCPU_H_
