// File: kvm/vm.h
// -----------------------------------------------------------------------------
// Vm owns one KVM VM fd: vCPUs, guest memory slots, the in-kernel interrupt controllers and the
// fd-based interrupt and I/O plumbing (irqfd, ioeventfd, GSI routing, MSIs), and the dirty log.
// One method per ioctl; every error names the ioctl and its key argument.
//
// Memory slots are managed here: AddMemoryRegion takes a memory/ GuestRegion, picks a free slot
// number, rejects overlaps before calling the kernel, and keeps the region alive while mapped.
//
//   ASSIGN_OR_RETURN(auto vm, kvm.CreateVm());
//   ASSIGN_OR_RETURN(uint32_t slot, vm->AddMemoryRegion(ram));
//   RETURN_IF_ERROR(vm->CreateIrqchip());
//   ASSIGN_OR_RETURN(std::unique_ptr<Vcpu> vcpu, vm->CreateVcpu(0));
//
// Thread-safety: every method may be called from any thread; slot bookkeeping is guarded by a
// mutex, everything else is a single ioctl that the kernel serializes.

#ifndef VMMKIT_KVM_VM_H_
#define VMMKIT_KVM_VM_H_

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "memory/address.h"
#include "memory/guest_region.h"

namespace vmmkit::kvm {

class Vcpu;

struct MemorySlotFlags {
  bool log_dirty = false;  // KVM_MEM_LOG_DIRTY_PAGES.
  bool readonly = false;   // KVM_MEM_READONLY: guest writes exit to userspace as MMIO.
};

// A GSI routed to a pin of an in-kernel interrupt controller.
struct IrqchipRoute {
  uint32_t irqchip;  // KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC.
  uint32_t pin;
};
// A GSI that delivers an MSI message.
struct MsiRoute {
  uint64_t address;
  uint32_t data;
  std::optional<uint32_t> devid;  // Sets KVM_MSI_VALID_DEVID (needed by some irqchips, not x86).
};
struct GsiRoute {
  uint32_t gsi;
  std::variant<IrqchipRoute, MsiRoute> target;
};

// The routing KVM installs with KVM_CREATE_IRQCHIP on x86: GSIs 0-15 to both PICs and the IOAPIC,
// 16-23 to the IOAPIC (GSI 0 goes to IOAPIC pin 2, as on PC hardware). KVM_SET_GSI_ROUTING
// replaces the whole table, so start from this when adding MSI routes.
std::vector<GsiRoute> DefaultIrqchipRoutes();

enum class IoBus { kPio, kMmio };

class Vm {
 public:
  // Adopts a VM fd. `vcpu_mmap_size` and `max_slots` come from the system fd
  // (KVM_GET_VCPU_MMAP_SIZE, KVM_CAP_NR_MEMSLOTS); Kvm::CreateVm fills them in.
  Vm(ScopedFd fd, size_t vcpu_mmap_size, uint32_t max_slots)
      : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size), max_slots_(max_slots) {}
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;
  // Closing the VM fd frees the slots; vCPU fds keep the kernel VM alive until they close too.
  ~Vm() = default;

  int fd() const { return fd_.get(); }

  // KVM_CHECK_EXTENSION on the VM fd (some answers are per VM).
  absl::StatusOr<int> CheckExtension(int capability) const;
  // KVM_ENABLE_CAP on the VM.
  absl::Status EnableCap(uint32_t capability, absl::Span<const uint64_t> args = {},
                         uint32_t flags = 0);

  // KVM_CREATE_VCPU, then mmap of its kvm_run area.
  absl::StatusOr<std::unique_ptr<Vcpu>> CreateVcpu(uint32_t id);

  // KVM_SET_USER_MEMORY_REGION: maps all of `region` at region->start(). Returns the slot number.
  // INVALID_ARGUMENT for a null region, ALREADY_EXISTS if it overlaps a mapped slot,
  // RESOURCE_EXHAUSTED when every slot is used: all before any ioctl. The Vm holds a reference to
  // `region` until RemoveMemoryRegion, so the host memory outlives the mapping.
  absl::StatusOr<uint32_t> AddMemoryRegion(std::shared_ptr<GuestRegion> region,
                                           MemorySlotFlags flags = {});
  // KVM_SET_USER_MEMORY_REGION with size 0 for `slot`. NOT_FOUND for an unknown slot.
  absl::Status RemoveMemoryRegion(uint32_t slot);
  // The slot that maps `gpa`, if any.
  std::optional<uint32_t> SlotAt(GuestAddress gpa) const;
  size_t slot_count() const;

  // KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and per-vCPU LAPICs. Call before creating vCPUs.
  absl::Status CreateIrqchip();
  // KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP): per-vCPU LAPICs in the kernel, the IOAPIC (and PIC and
  // PIT) left to userspace. GSIs [0, ioapic_pins) are the userspace IOAPIC's: MSI routes there make
  // KVM exit with KVM_EXIT_IOAPIC_EOI when the guest EOIs a level-triggered vector they deliver.
  // Instead of CreateIrqchip, before creating vCPUs; KVM then refuses KVM_CREATE_PIT2 (ENOENT) and
  // irqchip routes (EINVAL).
  absl::Status EnableSplitIrqchip(uint32_t ioapic_pins);
  // KVM_GET_IRQCHIP / KVM_SET_IRQCHIP for one chip (KVM_IRQCHIP_PIC_MASTER, ..._SLAVE, ..._IOAPIC).
  absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip) const;
  absl::Status SetIrqchip(const kvm_irqchip& chip);
  // KVM_CREATE_PIT2: the in-kernel i8254. `flags`: KVM_PIT_SPEAKER_DUMMY to also handle port 0x61.
  absl::Status CreatePit2(uint32_t flags = 0);
  // KVM_SET_TSS_ADDR: three pages of guest-physical space KVM needs on Intel hosts. Below 4 GiB.
  absl::Status SetTssAddress(GuestAddress address);
  // KVM_SET_IDENTITY_MAP_ADDR: one page for the real-mode identity map on Intel hosts.
  absl::Status SetIdentityMapAddress(GuestAddress address);

  // KVM_IRQFD: a write to `event` injects `gsi`.
  absl::Status AssignIrqfd(const EventFd& event, uint32_t gsi);
  // KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE: level-triggered; `resample` fires when the guest EOIs,
  // so the device can re-assert if still pending (VFIO INTx).
  absl::Status AssignIrqfdWithResample(const EventFd& event, const EventFd& resample, uint32_t gsi);
  // KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN. The kernel accepts deassigning an irqfd that is not
  // assigned, so this succeeds then too.
  absl::Status DeassignIrqfd(const EventFd& event, uint32_t gsi);

  // KVM_IOEVENTFD: a guest write of `length` bytes (0 = any, 1, 2, 4, 8) to `address` on `bus`
  // signals `event` without a userspace exit; with `datamatch`, only writes of that value do.
  absl::Status RegisterIoevent(const EventFd& event, IoBus bus, uint64_t address, uint32_t length,
                               std::optional<uint64_t> datamatch = std::nullopt);
  // KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN; the arguments must match the registration.
  absl::Status UnregisterIoevent(const EventFd& event, IoBus bus, uint64_t address, uint32_t length,
                                 std::optional<uint64_t> datamatch = std::nullopt);

  // KVM_SET_GSI_ROUTING: replaces the whole routing table.
  absl::Status SetGsiRouting(absl::Span<const GsiRoute> routes);
  // KVM_SIGNAL_MSI: injects one MSI. True if delivered, false if the guest blocked it.
  absl::StatusOr<bool> SignalMsi(uint64_t address, uint32_t data,
                                 std::optional<uint32_t> devid = std::nullopt);
  // KVM_IRQ_LINE: sets the level of an in-kernel irqchip input.
  absl::Status SetIrqLine(uint32_t irq, bool level);

  // KVM_GET_DIRTY_LOG for `slot` (mapped with log_dirty): one bit per 4 KiB page, in 64-bit words.
  absl::StatusOr<std::vector<uint64_t>> GetDirtyLog(uint32_t slot) const;
  // KVM_CLEAR_DIRTY_LOG for pages [first_page, first_page + num_pages) of `slot`: re-protects them
  // so the next write is logged again. Needs KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled (see
  // EnableCap). first_page must be a multiple of 64; num_pages too, unless the range ends the slot.
  absl::Status ClearDirtyLog(uint32_t slot, uint64_t first_page, uint64_t num_pages);

 private:
  struct Slot {
    std::shared_ptr<GuestRegion> region;
    MemorySlotFlags flags;
  };
  absl::Status Irqfd(const EventFd& event, uint32_t gsi, uint32_t flags, int resample_fd,
                     const char* what);
  absl::Status Ioevent(const EventFd& event, IoBus bus, uint64_t address, uint32_t length,
                       std::optional<uint64_t> datamatch, bool deassign);
  absl::StatusOr<uint64_t> SlotPages(uint32_t slot) const;

  ScopedFd fd_;
  const size_t vcpu_mmap_size_;
  const uint32_t max_slots_;
  mutable Mutex slots_mu_;
  std::map<uint32_t, Slot> slots_ ABSL_GUARDED_BY(slots_mu_);
};

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_VM_H_
