// File: kvm/kvm.h
// -----------------------------------------------------------------------------
// Kvm owns the KVM system fd (/dev/kvm): capability checks, what the host supports (CPUID, MSRs)
// and creating VMs. Opening checks that the API version is 12, the only stable one.
//
//   ASSIGN_OR_RETURN(Kvm kvm, Kvm::Open());
//   ASSIGN_OR_RETURN(int slots, kvm.CheckExtension(KVM_CAP_NR_MEMSLOTS));
//   ASSIGN_OR_RETURN(std::unique_ptr<Vm> vm, kvm.CreateVm());
//
// Thread-safety: all methods are const and may be called from any thread.

#ifndef VMMKIT_KVM_KVM_H_
#define VMMKIT_KVM_KVM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "kvm/cpuid.h"

namespace vmmkit::kvm {

class Vm;

class Kvm {
 public:
  // Opens `path` (O_RDWR | O_CLOEXEC) and checks KVM_GET_API_VERSION == 12.
  static absl::StatusOr<Kvm> Open(const std::string& path = "/dev/kvm");
  // Adopts an already open system fd (for example one passed by a privileged parent); checks the
  // API version like Open.
  static absl::StatusOr<Kvm> FromFd(ScopedFd fd);

  Kvm(Kvm&&) = default;
  Kvm& operator=(Kvm&&) = default;

  int fd() const { return fd_.get(); }

  // KVM_GET_API_VERSION.
  absl::StatusOr<int> GetApiVersion() const;
  // KVM_CHECK_EXTENSION: 0 if unsupported, otherwise a capability-specific positive value.
  absl::StatusOr<int> CheckExtension(int capability) const;
  // KVM_GET_VCPU_MMAP_SIZE: the size of each vCPU's shared kvm_run area.
  absl::StatusOr<size_t> GetVcpuMmapSize() const;
  // KVM_GET_SUPPORTED_CPUID: every leaf KVM can expose on this host.
  absl::StatusOr<Cpuid> GetSupportedCpuid() const;
  // KVM_GET_MSR_INDEX_LIST: MSRs that KVM_GET_MSRS / KVM_SET_MSRS can save and restore.
  absl::StatusOr<std::vector<uint32_t>> GetMsrIndexList() const;
  // KVM_GET_MSR_FEATURE_INDEX_LIST: feature MSRs (read with KVM_GET_MSRS on the system fd).
  absl::StatusOr<std::vector<uint32_t>> GetMsrFeatureIndexList() const;

  // KVM_CREATE_VM with `type` (0 on x86). The Vm keeps what it needs from this Kvm (vCPU mmap size,
  // memory slot limit); the Kvm object may be destroyed afterwards.
  absl::StatusOr<std::unique_ptr<Vm>> CreateVm(unsigned long type = 0) const;

 private:
  explicit Kvm(ScopedFd fd) : fd_(std::move(fd)) {}
  absl::StatusOr<std::vector<uint32_t>> GetMsrList(unsigned long request, const char* name) const;

  ScopedFd fd_;
};

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_KVM_H_
