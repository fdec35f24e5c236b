#include "kvm/kvm.h"

#include <fcntl.h>
#include <linux/kvm.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/ioctl.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "kvm/internal/kvm_abi.h"
#include "kvm/vm.h"

namespace vmmkit::kvm {

absl::StatusOr<Kvm> Kvm::Open(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open ", path);
  return FromFd(std::move(fd));
}

absl::StatusOr<Kvm> Kvm::FromFd(ScopedFd fd) {
  Kvm kvm(std::move(fd));
  ASSIGN_OR_RETURN(int version, kvm.GetApiVersion());
  if (version != internal::kKvmApiVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KVM_GET_API_VERSION returned ", version, "; vmmkit requires ", internal::kKvmApiVersion));
  }
  return kvm;
}

absl::StatusOr<int> Kvm::GetApiVersion() const {
  return Ioctl(fd_.get(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
}

absl::StatusOr<int> Kvm::CheckExtension(int capability) const {
  return Ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability, "KVM_CHECK_EXTENSION cap=", capability);
}

absl::StatusOr<size_t> Kvm::GetVcpuMmapSize() const {
  ASSIGN_OR_RETURN(int size, Ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE"));
  if (size < static_cast<int>(sizeof(kvm_run))) {
    return absl::InternalError(
        absl::StrCat("KVM_GET_VCPU_MMAP_SIZE returned ", size, ", smaller than struct kvm_run"));
  }
  return static_cast<size_t>(size);
}

absl::StatusOr<Cpuid> Kvm::GetSupportedCpuid() const {
  // The kernel answers E2BIG until the buffer holds every entry; grow until it fits.
  for (uint32_t nent = 128; nent <= 4096; nent *= 2) {
    internal::VarBuffer<internal::Cpuid2Header, kvm_cpuid_entry2> buf(nent);
    buf.header()->nent = nent;
    absl::StatusOr<int> r = Ioctl(fd_.get(), internal::kGetSupportedCpuid, buf.data(),
                                  "KVM_GET_SUPPORTED_CPUID nent=", nent);
    if (!r.ok() && errno == E2BIG) continue;
    RETURN_IF_ERROR(r.status());
    return Cpuid(
        std::vector<kvm_cpuid_entry2>(buf.elements(), buf.elements() + buf.header()->nent));
  }
  return absl::ResourceExhaustedError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

absl::StatusOr<std::vector<uint32_t>> Kvm::GetMsrList(unsigned long request,
                                                      const char* name) const {
  // First ask for the count (the kernel fills nmsrs and answers E2BIG), then fetch.
  internal::MsrListHeader probe{};
  absl::StatusOr<int> r = Ioctl(fd_.get(), request, &probe, name, " nmsrs=0");
  if (r.ok()) return std::vector<uint32_t>();
  if (errno != E2BIG) return r.status();
  internal::VarBuffer<internal::MsrListHeader, uint32_t> buf(probe.nmsrs);
  buf.header()->nmsrs = probe.nmsrs;
  RETURN_IF_ERROR(Ioctl(fd_.get(), request, buf.data(), name, " nmsrs=", probe.nmsrs).status());
  return std::vector<uint32_t>(buf.elements(), buf.elements() + buf.header()->nmsrs);
}

absl::StatusOr<std::vector<uint32_t>> Kvm::GetMsrIndexList() const {
  return GetMsrList(internal::kGetMsrIndexList, "KVM_GET_MSR_INDEX_LIST");
}

absl::StatusOr<std::vector<uint32_t>> Kvm::GetMsrFeatureIndexList() const {
  return GetMsrList(internal::kGetMsrFeatureIndexList, "KVM_GET_MSR_FEATURE_INDEX_LIST");
}

absl::StatusOr<std::unique_ptr<Vm>> Kvm::CreateVm(unsigned long type) const {
  ASSIGN_OR_RETURN(size_t mmap_size, GetVcpuMmapSize());
  ASSIGN_OR_RETURN(int slots, CheckExtension(KVM_CAP_NR_MEMSLOTS));
  ASSIGN_OR_RETURN(int fd, Ioctl(fd_.get(), KVM_CREATE_VM, type, "KVM_CREATE_VM type=", type));
  return std::make_unique<Vm>(ScopedFd(fd), mmap_size,
                              slots > 0 ? static_cast<uint32_t>(slots) : 32);
}

}  // namespace vmmkit::kvm
