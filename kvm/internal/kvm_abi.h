// File: kvm/internal/kvm_abi.h
// -----------------------------------------------------------------------------
// The KVM ABI vmmkit is built against, in one place. Every ioctl number and struct size the kvm/
// package relies on is pinned here, so a header or ABI change breaks the build instead of
// silently changing what is sent to the kernel. Values are the kernel's (x86-64, as a C compiler
// computes them from include/uapi/linux/kvm.h).
//
// Why some numbers are defined here instead of taken from <linux/kvm.h>: since Linux 6.x the
// uapi headers declare flexible arrays with __DECLARE_FLEX_ARRAY, which wraps them in a struct
// holding an empty struct. An empty struct has size 0 in C but 1 in C++, so in C++ the
// variable-length ioctl structs (kvm_msr_list, kvm_msrs, kvm_cpuid2, kvm_irq_routing, kvm_xsave)
// are larger than the kernel's, their arrays start at the wrong offset, and the ioctl numbers
// built from their sizes are ones the kernel does not know. For those, vmmkit uses the C-layout
// headers and kernel ioctl numbers below; the arrays follow the header directly.

#ifndef VMMKIT_KVM_INTERNAL_KVM_ABI_H_
#define VMMKIT_KVM_INTERNAL_KVM_ABI_H_

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vmmkit::kvm::internal {

inline constexpr int kKvmApiVersion = 12;

// System ioctls (/dev/kvm).
static_assert(KVM_GET_API_VERSION == 0xae00);
static_assert(KVM_CREATE_VM == 0xae01);
static_assert(KVM_CHECK_EXTENSION == 0xae03);
static_assert(KVM_GET_VCPU_MMAP_SIZE == 0xae04);

// VM ioctls.
static_assert(KVM_CREATE_VCPU == 0xae41);
static_assert(KVM_GET_DIRTY_LOG == 0x4010ae42);
static_assert(KVM_SET_USER_MEMORY_REGION == 0x4020ae46);
static_assert(KVM_SET_TSS_ADDR == 0xae47);
static_assert(KVM_SET_IDENTITY_MAP_ADDR == 0x4008ae48);
static_assert(KVM_CREATE_IRQCHIP == 0xae60);
static_assert(KVM_IRQ_LINE == 0x4008ae61);
static_assert(KVM_GET_IRQCHIP == 0xc208ae62);
static_assert(KVM_SET_IRQCHIP == 0x8208ae63);
static_assert(KVM_IRQFD == 0x4020ae76);
static_assert(KVM_CREATE_PIT2 == 0x4040ae77);
static_assert(KVM_IOEVENTFD == 0x4040ae79);
static_assert(KVM_ENABLE_CAP == 0x4068aea3);
static_assert(KVM_SIGNAL_MSI == 0x4020aea5);
static_assert(KVM_CLEAR_DIRTY_LOG == 0xc018aec0);

// vCPU ioctls.
static_assert(KVM_RUN == 0xae80);
static_assert(KVM_GET_REGS == 0x8090ae81);
static_assert(KVM_SET_REGS == 0x4090ae82);
static_assert(KVM_GET_SREGS == 0x8138ae83);
static_assert(KVM_SET_SREGS == 0x4138ae84);
static_assert(KVM_GET_FPU == 0x81a0ae8c);
static_assert(KVM_SET_FPU == 0x41a0ae8d);
static_assert(KVM_GET_LAPIC == 0x8400ae8e);
static_assert(KVM_SET_LAPIC == 0x4400ae8f);
static_assert(KVM_GET_MP_STATE == 0x8004ae98);
static_assert(KVM_SET_MP_STATE == 0x4004ae99);
static_assert(KVM_GET_VCPU_EVENTS == 0x8040ae9f);
static_assert(KVM_SET_VCPU_EVENTS == 0x4040aea0);
static_assert(KVM_GET_XCRS == 0x8188aea6);
static_assert(KVM_SET_XCRS == 0x4188aea7);

// Struct sizes (x86-64).
static_assert(sizeof(kvm_regs) == 144);
static_assert(sizeof(kvm_sregs) == 312);
static_assert(sizeof(kvm_fpu) == 416);
static_assert(sizeof(kvm_run) == 2352);
static_assert(sizeof(kvm_userspace_memory_region) == 32);
static_assert(sizeof(kvm_irqfd) == 32);
static_assert(sizeof(kvm_ioeventfd) == 64);
static_assert(sizeof(kvm_irq_routing_entry) == 48);
static_assert(sizeof(kvm_msi) == 32);
static_assert(sizeof(kvm_lapic_state) == 1024);
static_assert(sizeof(kvm_xcrs) == 392);
static_assert(sizeof(kvm_vcpu_events) == 64);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_dirty_log) == 16);
static_assert(sizeof(kvm_clear_dirty_log) == 24);
static_assert(sizeof(kvm_enable_cap) == 104);
static_assert(sizeof(kvm_irqchip) == 520);
static_assert(sizeof(kvm_pit_config) == 64);
static_assert(sizeof(kvm_mp_state) == 4);

// C-layout headers of the variable-length structs; the array follows at sizeof(header).
struct MsrListHeader {  // kvm_msr_list; u32 indices[nmsrs] follow.
  __u32 nmsrs;
};
struct MsrsHeader {  // kvm_msrs; kvm_msr_entry entries[nmsrs] follow.
  __u32 nmsrs;
  __u32 pad;
};
struct Cpuid2Header {  // kvm_cpuid2; kvm_cpuid_entry2 entries[nent] follow.
  __u32 nent;
  __u32 padding;
};
struct IrqRoutingHeader {  // kvm_irq_routing; kvm_irq_routing_entry entries[nr] follow.
  __u32 nr;
  __u32 flags;
};
static_assert(sizeof(MsrListHeader) == 4);
static_assert(sizeof(MsrsHeader) == 8);
static_assert(sizeof(Cpuid2Header) == 8);
static_assert(sizeof(IrqRoutingHeader) == 8);
inline constexpr size_t kXsaveSize = 4096;  // struct kvm_xsave in C: u32 region[1024].
static_assert(sizeof(kvm_xsave) >= kXsaveSize);

// The kernel's numbers for the ioctls whose C++ macro values are wrong (see above).
inline constexpr unsigned long kGetMsrIndexList =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x02, sizeof(MsrListHeader));
inline constexpr unsigned long kGetSupportedCpuid =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, sizeof(Cpuid2Header));
inline constexpr unsigned long kGetMsrFeatureIndexList =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x0a, sizeof(MsrListHeader));
inline constexpr unsigned long kSetGsiRouting =
    _IOC(_IOC_WRITE, KVMIO, 0x6a, sizeof(IrqRoutingHeader));
inline constexpr unsigned long kGetMsrs =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, sizeof(MsrsHeader));
inline constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, sizeof(MsrsHeader));
inline constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, sizeof(Cpuid2Header));
inline constexpr unsigned long kGetCpuid2 =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x91, sizeof(Cpuid2Header));
inline constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, kXsaveSize);
inline constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, kXsaveSize);
static_assert(kGetMsrIndexList == 0xc004ae02);
static_assert(kGetSupportedCpuid == 0xc008ae05);
static_assert(kGetMsrFeatureIndexList == 0xc004ae0a);
static_assert(kSetGsiRouting == 0x4008ae6a);
static_assert(kGetMsrs == 0xc008ae88);
static_assert(kSetMsrs == 0x4008ae89);
static_assert(kSetCpuid2 == 0x4008ae90);
static_assert(kGetCpuid2 == 0xc008ae91);
static_assert(kGetXsave == 0x9000aea4);
static_assert(kSetXsave == 0x5000aea5);

// A header followed by `n` elements of T, in one suitably aligned, zeroed buffer.
template <typename Header, typename T>
class VarBuffer {
 public:
  explicit VarBuffer(size_t n) : words_((sizeof(Header) + n * sizeof(T) + 7) / 8) {}
  Header* header() { return reinterpret_cast<Header*>(words_.data()); }
  T* elements() {
    return reinterpret_cast<T*>(reinterpret_cast<char*>(words_.data()) + sizeof(Header));
  }
  void* data() { return words_.data(); }

 private:
  std::vector<uint64_t> words_;
};

}  // namespace vmmkit::kvm::internal

#endif  // VMMKIT_KVM_INTERNAL_KVM_ABI_H_
