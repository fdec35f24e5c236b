// File: iommu/vtd/tables.h
// -----------------------------------------------------------------------------
// The translation structures an Intel VT-d guest driver writes in its own memory, in legacy
// (non-scalable) mode, read the way the hardware reads them: the root table (one entry per bus),
// the context tables (one entry per device and function: its domain, translation type and
// second-level page table), the second-level page tables (3 levels for a 39-bit, 4 for a
// 48-bit address width; 2 MiB and 1 GiB pages), and the interrupt remapping table. Every read goes
// through GuestMemory, so a guest that points a table anywhere but its RAM gets a fault, never a
// host access.
//
//   ContextLookup c = LookupContext(ram, root_table, /*source_id=*/0x0018, kHaw);
//   if (c.fault != FaultReason::kNone) RecordFault(...);
//   SecondLevelWalk walk(ram, c.context->table, kHaw);
//   PageLookup p = walk.Translate(iova);
//
// Each read is one 8-byte load from guest RAM; the guest may change a table at any time, so a
// result is only as current as the invalidation that asked for it.
// Thread-safety: stateless functions; a SecondLevelWalk is used by one thread.

#ifndef VMMKIT_IOMMU_VTD_TABLES_H_
#define VMMKIT_IOMMU_VTD_TABLES_H_

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "iommu/msi_remapper.h"
#include "iommu/types.h"
#include "memory/guest_memory.h"

namespace vmmkit::iommu::vtd {

// The fault reasons of legacy-mode DMA remapping (the values the fault recording registers hold).
enum class FaultReason : uint8_t {
  kNone = 0,
  kRootNotPresent = 0x1,
  kContextNotPresent = 0x2,
  kContextInvalid = 0x3,      // A translation type or address width the unit does not support.
  kAddressBeyondAgaw = 0x4,   // The IOVA is above the context's address width.
  kWriteDenied = 0x5,         // Also: a write to a page that is not present.
  kReadDenied = 0x6,          // Also: a read of a page that is not present.
  kPageTableAccess = 0x7,     // A page-table pointer outside guest RAM.
  kRootTableAccess = 0x8,     // The root table outside guest RAM.
  kContextTableAccess = 0x9,  // A context table outside guest RAM.
  kRootReserved = 0xa,
  kContextReserved = 0xb,
  kPageTableReserved = 0xc,
  // Interrupt remapping.
  kIrRequestReserved = 0x20,  // Reserved bits in the interrupt request (address, data).
  kIrIndexBeyondTable = 0x21,
  kIrteNotPresent = 0x22,
  kIrTableAccess = 0x23,  // The entry lies outside guest RAM.
  kIrteReserved = 0x24,
  kIrCompatibilityBlocked = 0x25,  // A compatibility-format request while CFI is clear.
  kIrSourceIdMismatch = 0x26,
};
const char* FaultReasonName(FaultReason reason);

enum class TranslationType : uint8_t { kMultiLevel = 0, kDeviceTlb = 1, kPassThrough = 2 };

// A second-level page table: its root (4 KiB aligned, guest-physical) and its depth.
struct SecondLevelTable {
  uint64_t root = 0;
  int levels = 3;  // 3: 39-bit IOVAs; 4: 48-bit.
  uint64_t iova_limit() const { return uint64_t{1} << (12 + 9 * levels); }
};

struct DeviceContext {
  uint16_t domain = 0;
  TranslationType type = TranslationType::kMultiLevel;
  SecondLevelTable table;  // For kMultiLevel.
  bool fault_processing_disabled = false;
};

// What the unit supports, for validating context entries.
struct TableLimits {
  int haw = 39;  // Host (guest-physical) address width: pointer bits above it are reserved.
  uint8_t sagaw = 1u << 1;   // Supported widths (CAP.SAGAW): bit 1 3-level, bit 2 4-level.
  bool pass_through = true;  // ECAP.PT.
};

struct ContextLookup {
  FaultReason fault = FaultReason::kNone;
  std::optional<DeviceContext> context;  // Set when fault is kNone.
};

// The context of `source_id` (bus << 8 | devfn) under the root table at `root_table`.
ContextLookup LookupContext(const GuestMemory& ram, uint64_t root_table, uint16_t source_id,
                            const TableLimits& limits);

struct PageLookup {
  // kNone with `page` set; a not-present page is kReadDenied (the caller turns it into
  // kWriteDenied for a write).
  FaultReason fault = FaultReason::kNone;
  std::optional<IotlbEntry> page;
};

// Walks one second-level page table. A hostile guest can make a table point at itself at every
// level, so a walk reads at most `max_reads` entries; Walk reports whether it finished.
class SecondLevelWalk {
 public:
  static constexpr uint64_t kDefaultMaxReads = uint64_t{1} << 20;

  SecondLevelWalk(const GuestMemory& ram, const SecondLevelTable& table, int haw,
                  uint64_t max_reads = kDefaultMaxReads)
      : ram_(ram), table_(table), haw_(haw), reads_left_(max_reads) {}

  // The page holding `iova`.
  PageLookup Translate(uint64_t iova);
  // Calls visit() for every present page overlapping [start, last], in IOVA order. Entries with
  // reserved bits set or pointing outside guest RAM are skipped and counted in faults(). False
  // if the read budget ran out (the rest was not visited).
  bool Walk(uint64_t start, uint64_t last, const std::function<void(const IotlbEntry&)>& visit);

  // Malformed entries met by Walk: the first one's reason, and how many.
  FaultReason first_fault() const { return first_fault_; }
  uint64_t faults() const { return faults_; }

 private:
  // One entry of the table at `table` (a guest-physical address); nullopt if unreadable.
  std::optional<uint64_t> ReadEntry(uint64_t table, uint64_t index);
  bool WalkTable(uint64_t table, int level, uint64_t base, uint64_t start, uint64_t last,
                 const std::function<void(const IotlbEntry&)>& visit);
  void NoteFault(FaultReason reason);

  const GuestMemory& ram_;
  const SecondLevelTable table_;
  const int haw_;
  uint64_t reads_left_;
  FaultReason first_fault_ = FaultReason::kNone;
  uint64_t faults_ = 0;
};

// The interrupt remapping table a guest latched with SIRTP: 2^(S+1) 16-byte entries.
struct InterruptTable {
  uint64_t base = 0;
  uint32_t entries = 0;
};

struct InterruptLookup {
  FaultReason fault = FaultReason::kNone;
  uint32_t index = 0;                      // The entry the request named (for the fault record).
  bool fault_processing_disabled = false;  // The entry's FPD: a fault is not recorded.
  absl::StatusOr<MsiMessage> msg = absl::UnknownError("not looked up");
};

// Remaps a remappable-format interrupt request from `source_id` through the entry it names,
// read from guest RAM now (xAPIC destinations: no extended interrupt mode). The decoding and
// the source-id check are iommu/msi_remapper.h's.
InterruptLookup RemapInterrupt(const GuestMemory& ram, const InterruptTable& table,
                               const MsiMessage& request, uint16_t source_id);

// The reserved bits of a present second-level entry at `level` (1-4), leaf or not, for a unit
// whose guest-physical addresses have `haw` bits. Exposed for tests and the fuzz target.
uint64_t SecondLevelReservedBits(int level, bool large_page, int haw);

}  // namespace vmmkit::iommu::vtd

#endif  // VMMKIT_IOMMU_VTD_TABLES_H_
