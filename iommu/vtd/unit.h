// File: iommu/vtd/unit.h
// -----------------------------------------------------------------------------
// RemappingUnit: a guest-visible Intel VT-d DMA-remapping unit (legacy mode, caching mode) as a
// 4 KiB MMIO register block. It implements what a Linux guest's intel-iommu driver uses: the
// capability registers, GCMD/GSTS (translation enable, root-table pointer, queued invalidation),
// register-based and queued invalidation (context cache, IOTLB global/domain/page, wait with a
// status write or an interrupt), fault recording and the fault-event interrupt; optionally
// interrupt remapping (IRTA, SIRTP, IRE, CFI, interrupt entry cache invalidation). Guest tables
// are read by iommu/vtd/tables.h.
//
// Each device (requester id) behind the unit has an IommuAddressSpace whose model resolves the
// device's context and walks its page table. Each invalidation becomes exactly the corresponding
// IommuAddressSpace call (page -> InvalidateRange, domain -> InvalidateAll on the domain's spaces,
// global -> all, a context change -> InvalidateContext), whose notifiers then act on the host: a
// VfioShadow maps and unmaps (MAP notifiers), a device IOTLB drops what it cached (UNMAP-only).
//
// Caching mode (CAP.CM, the default) is what MAP notifiers need: the guest then invalidates after
// every map as well as every unmap, and Linux flushes each unmap at once (strict), so every DMA
// map and unmap of the guest is a trapped invalidation. Without it the guest invalidates only
// what it removes, in batches (Linux's lazy flush queue: one domain invalidation per 256 unmaps
// or 10 ms), which serves emulated devices and device IOTLBs; MAP notifiers are refused.
//
//   RemappingUnit unit(ram, {.send_msi = [&](uint64_t a, uint32_t d) { vm.SignalMsi(a, d); }});
//   RETURN_IF_ERROR(mmio.Insert(unit_device, kVtdBase, RemappingUnit::kSize));
//   RETURN_IF_ERROR(unit.RegisterNotifier(/*source_id=*/0x0018, shadow.get()));  // replays
//
// A hostile guest: every register access is bounded work except the invalidations, which walk
// at most SecondLevelWalk's read budget per space; reserved bits, bad descriptors and a tail
// beyond the queue raise the queue error the spec defines; broken tables become fault records.
//
// Thread-safety: all methods take the unit's lock; notifiers run under it, so they must not call
// back into the unit.

#ifndef VMMKIT_IOMMU_VTD_UNIT_H_
#define VMMKIT_IOMMU_VTD_UNIT_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "base/mutex.h"
#include "devices/bus.h"
#include "iommu/iommu.h"
#include "iommu/vtd/tables.h"
#include "irq/msi.h"
#include "memory/guest_memory.h"

namespace vmmkit::iommu::vtd {

// Register offsets (legacy mode).
inline constexpr uint64_t kRegVer = 0x00, kRegCap = 0x08, kRegEcap = 0x10, kRegGcmd = 0x18,
                          kRegGsts = 0x1c, kRegRtaddr = 0x20, kRegCcmd = 0x28, kRegFsts = 0x34,
                          kRegFectl = 0x38, kRegFedata = 0x3c, kRegFeaddr = 0x40,
                          kRegFeuaddr = 0x44, kRegIqh = 0x80, kRegIqt = 0x88, kRegIqa = 0x90,
                          kRegIcs = 0x9c, kRegIectl = 0xa0, kRegIedata = 0xa4, kRegIeaddr = 0xa8,
                          kRegIeuaddr = 0xac, kRegIrta = 0xb8, kRegIva = 0xf0, kRegIotlb = 0xf8,
                          kRegFrcd = 0x220;
// Global command/status bits.
inline constexpr uint32_t kGcmdTe = 1u << 31, kGcmdSrtp = 1u << 30, kGcmdQie = 1u << 26,
                          kGcmdIre = 1u << 25, kGcmdSirtp = 1u << 24, kGcmdCfi = 1u << 23;
// Fault status bits.
inline constexpr uint32_t kFstsPfo = 1u << 0, kFstsPpf = 1u << 1, kFstsIqe = 1u << 4;

struct UnitOptions {
  bool caching_mode = true;
  int address_width = 39;  // MGAW + 1 and the host address width; 3-level tables.
  // Delivers the unit's own interrupts (fault events, invalidation-wait completions), which are
  // not themselves remapped.
  std::function<void(uint64_t address, uint32_t data)> send_msi;
  // Interrupt remapping (ECAP.IR, xAPIC destinations only: no EIM). The unit is then the
  // irq::MsiTranslator of the machine's interrupt routes.
  bool interrupt_remapping = false;
  // Called after a register write that changed what interrupts translate to (a new table latched,
  // remapping or compatibility format turned on or off, an interrupt entry cache invalidation),
  // without the unit's lock: the caller re-translates its routes (irq::MsiRoutes::Retranslate).
  std::function<void()> on_interrupt_entries_changed;
};

// What the unit has done, for GetVm/GetDevice and for tests.
struct UnitCounters {
  uint64_t context_invalidations = 0;
  uint64_t page_invalidations = 0, domain_invalidations = 0, global_invalidations = 0;
  uint64_t waits = 0, queue_errors = 0, faults_recorded = 0;
  uint64_t interrupt_entry_invalidations = 0, interrupts_remapped = 0, interrupts_blocked = 0;
};

class RemappingUnit : public devices::BusDevice, public irq::MsiTranslator {
 public:
  static constexpr uint64_t kSize = 0x1000;
  static constexpr size_t kFaultRecords = 1;

  // `ram` must outlive the unit.
  RemappingUnit(const GuestMemory& ram, UnitOptions options);
  ~RemappingUnit() override;

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

  // Notifiers of requester `source_id`'s (bus << 8 | devfn) address space, which is created on
  // first use and kept for the unit's life. Registering a MAP notifier replays what the device's
  // domain maps now; FAILED_PRECONDITION for one without caching mode (the guest would not say
  // what it maps); ALREADY_EXISTS if `notifier` is registered already (a re-plugged device never
  // gets two). `events` kUnmapEvents alone: a device IOTLB (iommu.h), told every invalidated range.
  absl::Status RegisterNotifier(uint16_t source_id, IommuNotifier* notifier,
                                uint8_t events = kMapEvents | kUnmapEvents);
  absl::Status UnregisterNotifier(uint16_t source_id, IommuNotifier* notifier);
  size_t NotifierCount(uint16_t source_id);
  // Mappings the device's MAP notifiers were last told of (0 while it has none).
  uint64_t TrackedMappings(uint16_t source_id);
  // The device's current guest domain (nullopt: translation off, pass-through or no context).
  std::optional<uint16_t> Domain(uint16_t source_id);
  // A DMA access by an emulated device: translates or records a fault (and raises the fault
  // event) as the hardware would.
  absl::StatusOr<IotlbEntry> TranslateDma(uint16_t source_id, Iova iova, IommuAccess access);

  // irq::MsiTranslator: an interrupt request from `source_id` as the guest's interrupt remapping
  // makes it: with remapping off, compatibility format passes and remappable format is refused;
  // on, remappable requests go through the table, compatibility ones pass only while CFI is set.
  // A refused request is a fault record (unless the entry sets FPD, or the translation is the
  // re-check that on_interrupt_entries_changed asked for: the guest raised nothing then).
  absl::StatusOr<irq::MsiMessage> Translate(const irq::MsiMessage& msg,
                                            uint16_t source_id) override;
  bool interrupt_remapping_enabled();

  UnitCounters counters();
  // The invalidations that reached requester `source_id`'s address space (the queue's and the
  // fault counts stay zero).
  UnitCounters DeviceCounters(uint16_t source_id);
  bool translation_enabled();
  bool caching_mode() const { return options_.caching_mode; }
  uint64_t capability() const { return cap_; }
  uint64_t extended_capability() const { return ecap_; }

 private:
  class DeviceModel;
  // The unit's two interrupts: control (IM, IP), data, address and upper address registers.
  struct EventInterrupt {
    uint32_t control = 1u << 31;  // Masked at reset.
    uint32_t data = 0, address = 0, upper = 0;
  };

  struct Device {
    std::unique_ptr<DeviceModel> model;
    std::unique_ptr<IommuAddressSpace> space;
    // The context as last invalidated (the context cache): what the address space translates by.
    std::optional<DeviceContext> context;
    UnitCounters counters;  // Invalidations that reached this device.
  };

  uint32_t ReadDword(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteDword(uint64_t offset, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Command(uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ProcessQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // false: an invalid descriptor (the queue error is the caller's).
  bool Execute(uint64_t qw0, uint64_t qw1) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Context-cache invalidation of the devices `match` selects: re-resolve, resync what changed.
  void InvalidateContexts(const std::function<bool(uint16_t sid, const Device&)>& match)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Context-cache invalidation: granularity 1 global, 2 domain `did`, 3 device `sid` (`fm`
  // masking function bits).
  void ContextCacheInvalidate(int granularity, uint16_t did, uint16_t sid, int fm)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // IOTLB invalidation: granularity 1 global, 2 domain, 3 page ([addr, addr + size)).
  void InvalidateIotlb(int granularity, uint16_t domain, uint64_t addr, uint64_t size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordFault(uint16_t source_id, FaultReason reason, uint64_t address, bool write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueError() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FaultEvent() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The interrupt whose four registers (control, data, address, upper address; FECTL.. or
  // IECTL..) hold dword `off`, and which of them it is (`index`, 0-3); null for any other.
  EventInterrupt* EventRegisters(uint64_t off, size_t* index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a fault record holds a fault the guest has not cleared.
  bool FaultRecorded() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks `e` pending and sends it unless masked.
  void Signal(EventInterrupt& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A guest write of `e`'s control register: unmasking sends what is pending.
  void WriteControl(EventInterrupt& e, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendMsi(uint64_t address, uint32_t data);
  Device& DeviceFor(uint16_t source_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<DeviceContext> Resolve(uint16_t source_id, bool record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TableLimits limits() const;

  const GuestMemory& ram_;
  const UnitOptions options_;
  const uint64_t cap_, ecap_;

  Mutex mu_;
  uint32_t gsts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rtaddr_ ABSL_GUARDED_BY(mu_) = 0;      // As written.
  uint64_t root_table_ ABSL_GUARDED_BY(mu_) = 0;  // As latched by SRTP.
  uint64_t ccmd_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t fsts_ ABSL_GUARDED_BY(mu_) = 0;           // PFO, IQE (PPF and FRI are computed).
  EventInterrupt fault_event_ ABSL_GUARDED_BY(mu_);  // FECTL, FEDATA, FEADDR, FEUADDR.
  uint64_t iqa_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t iq_head_ ABSL_GUARDED_BY(mu_) = 0, iq_tail_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t ics_ ABSL_GUARDED_BY(mu_) = 0;
  EventInterrupt wait_event_ ABSL_GUARDED_BY(mu_);  // IECTL, IEDATA, IEADDR, IEUADDR.
  uint64_t iva_ ABSL_GUARDED_BY(mu_) = 0, iotlb_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t irta_ ABSL_GUARDED_BY(mu_) = 0;               // As written.
  InterruptTable interrupt_table_ ABSL_GUARDED_BY(mu_);  // As latched by SIRTP.
  // Set by what changes interrupt translation; the register write that set it calls
  // on_interrupt_entries_changed once it has released the lock.
  bool interrupt_entries_changed_ ABSL_GUARDED_BY(mu_) = false;
  bool rechecking_ ABSL_GUARDED_BY(mu_) = false;
  std::array<std::array<uint64_t, 2>, kFaultRecords> frcd_ ABSL_GUARDED_BY(mu_) = {};
  size_t next_record_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint16_t, Device> devices_ ABSL_GUARDED_BY(mu_);
  UnitCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vmmkit::iommu::vtd

#endif  // VMMKIT_IOMMU_VTD_UNIT_H_
