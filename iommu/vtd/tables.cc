#include "iommu/vtd/tables.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::iommu::vtd {
namespace {

constexpr uint64_t kPresent = 1;
constexpr uint64_t kRead = 1u << 0, kWrite = 1u << 1, kPageSize = 1u << 7;
// Bits software may use and the unit ignores: 63 and 61-52.
constexpr uint64_t kIgnoredHigh = 0xbff0000000000000ull;
constexpr uint64_t kSnoop = 1u << 11;  // Reserved: the unit does not advertise snoop control.

uint64_t AddressBits(int haw) { return ((uint64_t{1} << haw) - 1) & ~uint64_t{0xfff}; }

// Reads the 16-byte entry `index` of the 4 KiB table at `table`.
bool Read128(const GuestMemory& ram, uint64_t table, uint64_t index, uint64_t* lo, uint64_t* hi) {
  absl::StatusOr<uint64_t> l = ram.ReadObj<uint64_t>(GuestAddress(table + 16 * index));
  absl::StatusOr<uint64_t> h = ram.ReadObj<uint64_t>(GuestAddress(table + 16 * index + 8));
  if (!l.ok() || !h.ok()) return false;
  *lo = *l;
  *hi = *h;
  return true;
}

}  // namespace

const char* FaultReasonName(FaultReason reason) {
  switch (reason) {
    case FaultReason::kNone:
      return "no fault";
    case FaultReason::kRootNotPresent:
      return "root entry not present";
    case FaultReason::kContextNotPresent:
      return "context entry not present";
    case FaultReason::kContextInvalid:
      return "context entry invalid";
    case FaultReason::kAddressBeyondAgaw:
      return "address beyond the context's width";
    case FaultReason::kWriteDenied:
      return "write not allowed";
    case FaultReason::kReadDenied:
      return "read not allowed";
    case FaultReason::kPageTableAccess:
      return "page table outside guest RAM";
    case FaultReason::kRootTableAccess:
      return "root table outside guest RAM";
    case FaultReason::kContextTableAccess:
      return "context table outside guest RAM";
    case FaultReason::kRootReserved:
      return "reserved bits in a root entry";
    case FaultReason::kContextReserved:
      return "reserved bits in a context entry";
    case FaultReason::kPageTableReserved:
      return "reserved bits in a page-table entry";
    case FaultReason::kIrRequestReserved:
      return "reserved bits in an interrupt request";
    case FaultReason::kIrIndexBeyondTable:
      return "interrupt index beyond the remapping table";
    case FaultReason::kIrteNotPresent:
      return "interrupt remapping entry not present";
    case FaultReason::kIrTableAccess:
      return "interrupt remapping table outside guest RAM";
    case FaultReason::kIrteReserved:
      return "reserved bits in an interrupt remapping entry";
    case FaultReason::kIrCompatibilityBlocked:
      return "compatibility-format interrupt blocked";
    case FaultReason::kIrSourceIdMismatch:
      return "interrupt from a requester the entry does not allow";
  }
  return "unknown fault";
}

ContextLookup LookupContext(const GuestMemory& ram, uint64_t root_table, uint16_t source_id,
                            const TableLimits& limits) {
  const uint64_t addr_bits = AddressBits(limits.haw);
  uint64_t lo, hi;
  if (!Read128(ram, root_table, source_id >> 8, &lo, &hi)) {
    return {FaultReason::kRootTableAccess, std::nullopt};
  }
  if (!(lo & kPresent)) return {FaultReason::kRootNotPresent, std::nullopt};
  if (hi != 0 || (lo & ~(addr_bits | kPresent)) != 0) {
    return {FaultReason::kRootReserved, std::nullopt};
  }
  const uint64_t context_table = lo & addr_bits;
  if (!Read128(ram, context_table, source_id & 0xff, &lo, &hi)) {
    return {FaultReason::kContextTableAccess, std::nullopt};
  }
  if (!(lo & kPresent)) return {FaultReason::kContextNotPresent, std::nullopt};
  // Low: P (0), FPD (1), TT (3:2), reserved 11:4, SLPTPTR. High: AW (2:0), ignored (6:3),
  // reserved 7, DID (23:8), reserved 63:24.
  constexpr uint64_t kLowFields = 0xf;
  constexpr uint64_t kHighFields = 0x7 | 0x78 | (uint64_t{0xffff} << 8);
  if ((lo & ~(addr_bits | kLowFields)) != 0 || (hi & ~kHighFields) != 0) {
    return {FaultReason::kContextReserved, std::nullopt};
  }
  DeviceContext c;
  c.fault_processing_disabled = lo & 2;
  c.domain = static_cast<uint16_t>(hi >> 8);
  const uint64_t tt = (lo >> 2) & 3;
  const uint64_t aw = hi & 7;
  if (tt == 0) {
    c.type = TranslationType::kMultiLevel;
  } else if (tt == 2 && limits.pass_through) {
    c.type = TranslationType::kPassThrough;
  } else {
    return {FaultReason::kContextInvalid, std::nullopt};  // Device TLBs are not offered.
  }
  if (c.type == TranslationType::kMultiLevel) {
    // AW 1: 39-bit (3 levels), 2: 48-bit (4 levels); only the widths SAGAW offers.
    if ((aw != 1 && aw != 2) || !(limits.sagaw & (1u << aw))) {
      return {FaultReason::kContextInvalid, std::nullopt};
    }
    c.table = {.root = lo & addr_bits, .levels = static_cast<int>(aw) + 2};
  }
  return {FaultReason::kNone, c};
}

uint64_t SecondLevelReservedBits(int level, bool large_page, int haw) {
  uint64_t reserved = ~(((uint64_t{1} << haw) - 1) | kIgnoredHigh) | kSnoop;
  if (level == 4) reserved |= kPageSize;
  if (large_page && level == 2) reserved |= 0x1ff000;    // A 2 MiB page's bits 20:12.
  if (large_page && level == 3) reserved |= 0x3ffff000;  // A 1 GiB page's bits 29:12.
  return reserved;
}

std::optional<uint64_t> SecondLevelWalk::ReadEntry(uint64_t table, uint64_t index) {
  if (reads_left_ == 0) return std::nullopt;
  --reads_left_;
  absl::StatusOr<uint64_t> e = ram_.ReadObj<uint64_t>(GuestAddress(table + 8 * index));
  if (!e.ok()) return std::nullopt;
  return *e;
}

void SecondLevelWalk::NoteFault(FaultReason reason) {
  if (faults_++ == 0) first_fault_ = reason;
}

PageLookup SecondLevelWalk::Translate(uint64_t iova) {
  if (iova >= table_.iova_limit()) return {FaultReason::kAddressBeyondAgaw, std::nullopt};
  uint64_t table = table_.root;
  for (int level = table_.levels; level >= 1; --level) {
    const int shift = 12 + 9 * (level - 1);
    const std::optional<uint64_t> e = ReadEntry(table, (iova >> shift) & 0x1ff);
    if (!e) return {FaultReason::kPageTableAccess, std::nullopt};
    if (!(*e & (kRead | kWrite))) return {FaultReason::kReadDenied, std::nullopt};
    const bool leaf = level == 1 || ((level == 2 || level == 3) && (*e & kPageSize));
    if (*e & SecondLevelReservedBits(level, leaf && level > 1, haw_)) {
      return {FaultReason::kPageTableReserved, std::nullopt};
    }
    const uint64_t address = *e & AddressBits(haw_);
    if (leaf) {
      const uint64_t mask = (uint64_t{1} << shift) - 1;
      IotlbEntry page{Iova(iova & ~mask), address & ~mask, mask,
                      static_cast<IommuAccess>((*e & kRead ? 1 : 0) | (*e & kWrite ? 2 : 0))};
      return {FaultReason::kNone, page};
    }
    table = address;
  }
  return {FaultReason::kReadDenied, std::nullopt};  // Unreachable: level 1 is a leaf.
}

bool SecondLevelWalk::WalkTable(uint64_t table, int level, uint64_t base, uint64_t start,
                                uint64_t last,
                                const std::function<void(const IotlbEntry&)>& visit) {
  const int shift = 12 + 9 * (level - 1);
  const uint64_t span = uint64_t{1} << shift;
  const uint64_t first_index = start > base ? (start - base) >> shift : 0;
  const uint64_t last_index = std::min<uint64_t>(511, (last - base) >> shift);
  for (uint64_t i = first_index; i <= last_index; ++i) {
    if (reads_left_ == 0) return false;
    const std::optional<uint64_t> e = ReadEntry(table, i);
    if (!e) {
      NoteFault(FaultReason::kPageTableAccess);
      return true;  // The whole table is outside RAM: nothing in it is present.
    }
    if (!(*e & (kRead | kWrite))) continue;
    const bool leaf = level == 1 || ((level == 2 || level == 3) && (*e & kPageSize));
    if (*e & SecondLevelReservedBits(level, leaf && level > 1, haw_)) {
      NoteFault(FaultReason::kPageTableReserved);
      continue;
    }
    const uint64_t entry_base = base + i * span;
    const uint64_t address = *e & AddressBits(haw_);
    if (leaf) {
      visit(IotlbEntry{Iova(entry_base), address & ~(span - 1), span - 1,
                       static_cast<IommuAccess>((*e & kRead ? 1 : 0) | (*e & kWrite ? 2 : 0))});
      continue;
    }
    if (!WalkTable(address, level - 1, entry_base, std::max(start, entry_base),
                   std::min(last, entry_base + span - 1), visit)) {
      return false;
    }
  }
  return true;
}

bool SecondLevelWalk::Walk(uint64_t start, uint64_t last,
                           const std::function<void(const IotlbEntry&)>& visit) {
  const uint64_t limit = table_.iova_limit();
  if (start > last || start >= limit) return true;
  return WalkTable(table_.root, table_.levels, 0, start, std::min(last, limit - 1), visit);
}

InterruptLookup RemapInterrupt(const GuestMemory& ram, const InterruptTable& table,
                               const MsiMessage& request, uint16_t source_id) {
  InterruptLookup r;
  const auto fail = [&](FaultReason reason, absl::Status why) {
    r.fault = reason;
    r.msg = std::move(why);
    return r;
  };
  const std::string what = absl::StrCat("interrupt ", Hex(request.address), "/", Hex(request.data),
                                        " from ", Hex(source_id));
  absl::StatusOr<uint32_t> index = InterruptIndex(request);
  const bool shv = (request.address >> 3) & 1;
  if (!index.ok() || (shv && (request.data >> 16) != 0)) {
    return fail(FaultReason::kIrRequestReserved,
                absl::InvalidArgumentError(absl::StrCat(what, ": malformed request")));
  }
  r.index = *index;
  if (*index >= table.entries) {
    return fail(FaultReason::kIrIndexBeyondTable,
                absl::OutOfRangeError(absl::StrCat(what, ": index ", *index, " beyond the ",
                                                   table.entries, "-entry table")));
  }
  const GuestAddress at(table.base + 16 * uint64_t{*index});
  absl::StatusOr<uint64_t> low = ram.ReadObj<uint64_t>(at);
  absl::StatusOr<uint64_t> high = ram.ReadObj<uint64_t>(GuestAddress(at.raw() + 8));
  if (!low.ok() || !high.ok()) {
    return fail(FaultReason::kIrTableAccess,
                absl::FailedPreconditionError(absl::StrCat(what, ": IRTE ", *index, " at ",
                                                           at.ToString(), " is outside RAM")));
  }
  const Irte e = Irte::Decode(*low, *high, /*x2apic=*/false);
  if (!e.present) {
    return fail(FaultReason::kIrteNotPresent,
                absl::NotFoundError(absl::StrCat(what, ": IRTE ", *index, " is not present")));
  }
  r.fault_processing_disabled = e.fault_processing_disable;
  if (Irte::HasReservedBits(*low, *high, /*x2apic=*/false)) {
    return fail(FaultReason::kIrteReserved, absl::InvalidArgumentError(absl::StrCat(
                                                what, ": IRTE ", *index, " sets reserved bits")));
  }
  absl::StatusOr<MsiMessage> out = RemapThrough(e, *index, source_id, what);
  if (!out.ok()) return fail(FaultReason::kIrSourceIdMismatch, out.status());
  r.msg = *out;
  return r;
}

}  // namespace vmmkit::iommu::vtd
