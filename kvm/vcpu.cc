#include "kvm/vcpu.h"

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/ioctl.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "kvm/internal/kvm_abi.h"

namespace vmmkit::kvm {
namespace {

void KickHandler(int) {}  // Only exists so the signal interrupts KVM_RUN instead of killing us.

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa = {};
    sa.sa_handler = KickHandler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // No SA_RESTART: KVM_RUN must return EINTR.
    ::sigaction(Vcpu::KickSignal(), &sa, nullptr);
  });
}

std::atomic_ref<uint8_t> ImmediateExit(kvm_run* run) {
  return std::atomic_ref<uint8_t>(run->immediate_exit);
}

template <typename T>
absl::StatusOr<T> GetState(int fd, unsigned long request, const char* name, uint32_t id) {
  T value{};
  RETURN_IF_ERROR(Ioctl(fd, request, &value, name, " vcpu=", id).status());
  return value;
}

template <typename T>
absl::Status SetState(int fd, unsigned long request, const T& value, const char* name,
                      uint32_t id) {
  return Ioctl(fd, request, &value, name, " vcpu=", id).status();
}

using MsrBuffer = internal::VarBuffer<internal::MsrsHeader, kvm_msr_entry>;
using Cpuid2Buffer = internal::VarBuffer<internal::Cpuid2Header, kvm_cpuid_entry2>;

}  // namespace

int Vcpu::KickSignal() { return SIGRTMIN; }

absl::StatusOr<std::unique_ptr<Vcpu>> Vcpu::Adopt(uint32_t id, ScopedFd fd, size_t run_size) {
  if (run_size < sizeof(kvm_run)) {
    return absl::InvalidArgumentError(
        absl::StrCat("vcpu ", id, ": kvm_run size ", run_size, " is smaller than struct kvm_run"));
  }
  void* run = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED) return ErrnoStatus(errno, "mmap kvm_run of vcpu ", id);
  // Every Vcpu is made here, so Run() and Kick() can rely on the handler without checking again.
  InstallKickHandler();
  return std::unique_ptr<Vcpu>(new Vcpu(id, std::move(fd), static_cast<kvm_run*>(run), run_size));
}

Vcpu::~Vcpu() { ::munmap(run_, run_size_); }

absl::StatusOr<VcpuExit> Vcpu::Run() {
  {
    MutexLock lock(kick_mu_);
    in_run_ = true;
    run_thread_ = ::pthread_self();
  }
  const int ret = ::ioctl(fd_.get(), KVM_RUN, 0);
  const int err = errno;
  {
    MutexLock lock(kick_mu_);
    in_run_ = false;
  }
  if (ret < 0) {
    if (err == EINTR) {
      ImmediateExit(run_).store(0, std::memory_order_relaxed);
      return exit::Interrupted{};
    }
    // An AP leaving wait-for-SIPI (INIT/SIPI from the in-kernel LAPIC) makes KVM_RUN return
    // EAGAIN before the vCPU runs: call it again. Not a kick, so a pending one stays pending.
    if (err == EAGAIN) return exit::Interrupted{};
    return ErrnoStatus(err, "KVM_RUN vcpu=", id_);
  }
  // A kick that arrived as the guest was entered: consumed, like EINTR's.
  if (run_->exit_reason == KVM_EXIT_INTR) ImmediateExit(run_).store(0, std::memory_order_relaxed);
  return DecodeExit(*run_, run_size_, id_);
}

void Vcpu::Kick() {
  ImmediateExit(run_).store(1, std::memory_order_release);
  MutexLock lock(kick_mu_);
  if (in_run_) ::pthread_kill(run_thread_, KickSignal());
}

absl::StatusOr<kvm_regs> Vcpu::GetRegs() const {
  return GetState<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS", id_);
}
absl::Status Vcpu::SetRegs(const kvm_regs& regs) {
  return SetState(fd_.get(), KVM_SET_REGS, regs, "KVM_SET_REGS", id_);
}
absl::StatusOr<kvm_sregs> Vcpu::GetSregs() const {
  return GetState<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS", id_);
}
absl::Status Vcpu::SetSregs(const kvm_sregs& sregs) {
  return SetState(fd_.get(), KVM_SET_SREGS, sregs, "KVM_SET_SREGS", id_);
}
absl::StatusOr<kvm_fpu> Vcpu::GetFpu() const {
  return GetState<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU", id_);
}
absl::Status Vcpu::SetFpu(const kvm_fpu& fpu) {
  return SetState(fd_.get(), KVM_SET_FPU, fpu, "KVM_SET_FPU", id_);
}
absl::StatusOr<kvm_lapic_state> Vcpu::GetLapic() const {
  return GetState<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC", id_);
}
absl::Status Vcpu::SetLapic(const kvm_lapic_state& lapic) {
  return SetState(fd_.get(), KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC", id_);
}
absl::StatusOr<kvm_mp_state> Vcpu::GetMpState() const {
  return GetState<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE", id_);
}
absl::Status Vcpu::SetMpState(const kvm_mp_state& state) {
  return SetState(fd_.get(), KVM_SET_MP_STATE, state, "KVM_SET_MP_STATE", id_);
}
absl::StatusOr<kvm_xcrs> Vcpu::GetXcrs() const {
  return GetState<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS", id_);
}
absl::Status Vcpu::SetXcrs(const kvm_xcrs& xcrs) {
  return SetState(fd_.get(), KVM_SET_XCRS, xcrs, "KVM_SET_XCRS", id_);
}
absl::StatusOr<Xsave> Vcpu::GetXsave() const {
  static_assert(sizeof(Xsave) == internal::kXsaveSize);
  return GetState<Xsave>(fd_.get(), internal::kGetXsave, "KVM_GET_XSAVE", id_);
}
absl::Status Vcpu::SetXsave(const Xsave& xsave) {
  return SetState(fd_.get(), internal::kSetXsave, xsave, "KVM_SET_XSAVE", id_);
}
absl::StatusOr<kvm_vcpu_events> Vcpu::GetVcpuEvents() const {
  return GetState<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", id_);
}
absl::Status Vcpu::SetVcpuEvents(const kvm_vcpu_events& events) {
  return SetState(fd_.get(), KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS", id_);
}

absl::Status Vcpu::SetCpuid2(const Cpuid& cpuid) {
  const auto& entries = cpuid.entries();
  Cpuid2Buffer buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.elements());
  return Ioctl(fd_.get(), internal::kSetCpuid2, buf.data(), "KVM_SET_CPUID2 vcpu=", id_,
               " nent=", entries.size())
      .status();
}

absl::StatusOr<Cpuid> Vcpu::GetCpuid2() const {
  for (uint32_t nent = 128; nent <= 4096; nent *= 2) {
    Cpuid2Buffer buf(nent);
    buf.header()->nent = nent;
    absl::StatusOr<int> r =
        Ioctl(fd_.get(), internal::kGetCpuid2, buf.data(), "KVM_GET_CPUID2 vcpu=", id_);
    if (!r.ok() && errno == E2BIG) continue;
    RETURN_IF_ERROR(r.status());
    return Cpuid(
        std::vector<kvm_cpuid_entry2>(buf.elements(), buf.elements() + buf.header()->nent));
  }
  return absl::ResourceExhaustedError("KVM_GET_CPUID2: more than 4096 entries");
}

absl::StatusOr<std::vector<kvm_msr_entry>> Vcpu::GetMsrs(absl::Span<const uint32_t> indices) const {
  MsrBuffer buf(indices.size());
  buf.header()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buf.elements()[i].index = indices[i];
  ASSIGN_OR_RETURN(int read, Ioctl(fd_.get(), internal::kGetMsrs, buf.data(),
                                   "KVM_GET_MSRS vcpu=", id_, " nmsrs=", indices.size()));
  if (static_cast<size_t>(read) < indices.size()) {
    return absl::InvalidArgumentError(absl::StrCat("KVM_GET_MSRS vcpu=", id_,
                                                   ": KVM cannot read MSR ",
                                                   Hex(indices[static_cast<size_t>(read)])));
  }
  return std::vector<kvm_msr_entry>(buf.elements(), buf.elements() + indices.size());
}

absl::Status Vcpu::SetMsrs(absl::Span<const kvm_msr_entry> entries) {
  MsrBuffer buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.elements());
  ASSIGN_OR_RETURN(int written, Ioctl(fd_.get(), internal::kSetMsrs, buf.data(),
                                      "KVM_SET_MSRS vcpu=", id_, " nmsrs=", entries.size()));
  if (static_cast<size_t>(written) < entries.size()) {
    return absl::InvalidArgumentError(absl::StrCat("KVM_SET_MSRS vcpu=", id_, ": KVM refused MSR ",
                                                   Hex(entries[static_cast<size_t>(written)].index),
                                                   " (and any after it)"));
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::kvm
