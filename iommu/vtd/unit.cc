#include "iommu/vtd/unit.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::iommu::vtd {
namespace {

constexpr uint32_t kVersion = 0x10;  // 1.0
constexpr uint64_t kIro = kRegIva / 16;
constexpr uint64_t kFro = kRegFrcd / 16;
constexpr uint64_t kMamv = 18;  // Page-selective invalidations of up to 2^18 pages (1 GiB).
constexpr uint64_t kPageShift = 12;

// Status bits that are pending events (one fault event covers them all).
constexpr uint32_t kFstsEventBits = kFstsPfo | kFstsPpf | kFstsIqe;
constexpr uint32_t kIcsIwc = 1;
constexpr uint32_t kInterruptMask = 1u << 31, kInterruptPending = 1u << 30;

uint64_t Capability(const UnitOptions& o) {
  uint64_t cap = 0;
  cap |= 2;                                                 // ND: 256 domain ids.
  if (o.caching_mode) cap |= 1u << 7;                       // CM.
  cap |= uint64_t{1u << 1} << 8;                            // SAGAW: 39-bit, 3 levels.
  cap |= uint64_t(o.address_width - 1) << 16;               // MGAW.
  cap |= kFro << 24;                                        // Fault records at FRO * 16.
  cap |= uint64_t{0x3} << 34;                               // SLLPS: 2 MiB and 1 GiB pages.
  cap |= uint64_t{1} << 39;                                 // PSI.
  cap |= uint64_t{RemappingUnit::kFaultRecords - 1} << 40;  // NFR - 1.
  cap |= kMamv << 48;
  return cap;
}

uint64_t ExtendedCapability(const UnitOptions& o) {
  // QI, PT (pass-through contexts), IRO. No device TLBs, snoop control, EIM or scalable mode (a
  // Linux guest turns scalable mode on by default when it is offered). With interrupt remapping,
  // IR and MHMV 15 (multiple-MSI blocks of up to 2^15 vectors).
  uint64_t ecap = (1u << 1) | (1u << 6) | (kIro << 8);
  if (o.interrupt_remapping) ecap |= (1u << 3) | (uint64_t{0xf} << 20);
  return ecap;
}

}  // namespace

// The IommuModel of one device: its context as last invalidated. Called by its address space,
// which the unit only uses under its lock.
class RemappingUnit::DeviceModel : public IommuModel {
 public:
  DeviceModel(RemappingUnit& unit, uint16_t sid) : unit_(unit), sid_(sid) {}

  absl::StatusOr<IotlbEntry> Translate(Iova iova, IommuAccess access) override {
    unit_.mu_.AssertHeld();
    const std::optional<DeviceContext>& c = unit_.devices_[sid_].context;
    if (!c) return absl::NotFoundError(absl::StrCat("no context for ", Hex(sid_)));
    if (c->type == TranslationType::kPassThrough) {
      return IotlbEntry{Iova(iova.raw() & ~uint64_t{0xfff}), iova.raw() & ~uint64_t{0xfff}, 0xfff,
                        IommuAccess::kReadWrite};
    }
    SecondLevelWalk walk(unit_.ram_, c->table, unit_.options_.address_width);
    PageLookup p = walk.Translate(iova.raw());
    if (p.fault == FaultReason::kNone && !Allows(p.page->perm, access)) {
      p.fault = Allows(p.page->perm, IommuAccess::kRead) ? FaultReason::kWriteDenied
                                                         : FaultReason::kReadDenied;
    }
    if (p.fault == FaultReason::kReadDenied && access == IommuAccess::kWrite) {
      p.fault = FaultReason::kWriteDenied;
    }
    last_fault_ = p.fault;
    if (p.fault == FaultReason::kNone) return *p.page;
    const std::string why = absl::StrCat(iova.ToString(), ": ", FaultReasonName(p.fault));
    if (p.fault == FaultReason::kReadDenied || p.fault == FaultReason::kWriteDenied) {
      return p.page ? absl::PermissionDeniedError(why) : absl::NotFoundError(why);
    }
    return absl::FailedPreconditionError(why);
  }

  void Walk(Iova start, Iova last, const std::function<void(const IotlbEntry&)>& visit) override {
    unit_.mu_.AssertHeld();
    const std::optional<DeviceContext>& c = unit_.devices_[sid_].context;
    if (!c) return;
    if (c->type == TranslationType::kPassThrough) {
      // Identity over guest RAM, in the largest naturally aligned pages.
      for (const auto& region : unit_.ram_.regions()) {
        uint64_t a = std::max(region->start().raw(), start.raw());
        const uint64_t end = std::min(region->start().raw() + region->size() - 1, last.raw());
        while (a <= end && a >= start.raw()) {
          uint64_t size = uint64_t{1} << 30;
          while (size > 0x1000 && ((a & (size - 1)) != 0 || a + size - 1 > end)) size >>= 1;
          visit(IotlbEntry{Iova(a), a, size - 1, IommuAccess::kReadWrite});
          if (a + size < a) break;
          a += size;
        }
      }
      return;
    }
    SecondLevelWalk walk(unit_.ram_, c->table, unit_.options_.address_width);
    walk.Walk(start.raw(), last.raw(), visit);
  }

  FaultReason last_fault() const { return last_fault_; }

 private:
  RemappingUnit& unit_;
  const uint16_t sid_;
  FaultReason last_fault_ = FaultReason::kNone;
};

RemappingUnit::RemappingUnit(const GuestMemory& ram, UnitOptions options)
    : ram_(ram),
      options_(std::move(options)),
      cap_(Capability(options_)),
      ecap_(ExtendedCapability(options_)) {}

RemappingUnit::~RemappingUnit() = default;

TableLimits RemappingUnit::limits() const {
  return {.haw = options_.address_width, .sagaw = 1u << 1, .pass_through = true};
}

RemappingUnit::Device& RemappingUnit::DeviceFor(uint16_t source_id) {
  Device& d = devices_[source_id];
  if (d.space == nullptr) {
    d.model = std::make_unique<DeviceModel>(*this, source_id);
    d.space = std::make_unique<IommuAddressSpace>(
        absl::StrCat("vtd ", Hex(source_id >> 8), ":", Hex((source_id >> 3) & 0x1f), ".",
                     source_id & 7),
        *d.model);
    d.context = Resolve(source_id, /*record=*/false);
  }
  return d;
}

std::optional<DeviceContext> RemappingUnit::Resolve(uint16_t source_id, bool record) {
  if (!(gsts_ & kGcmdTe)) {
    return DeviceContext{.domain = 0, .type = TranslationType::kPassThrough};
  }
  ContextLookup c = LookupContext(ram_, root_table_, source_id, limits());
  if (c.fault != FaultReason::kNone) {
    // A present but broken entry is the guest's error to see; an absent one is just a device
    // without a domain (until its driver attaches one).
    if (record && c.fault != FaultReason::kRootNotPresent &&
        c.fault != FaultReason::kContextNotPresent) {
      RecordFault(source_id, c.fault, 0, false);
    }
    return std::nullopt;
  }
  return c.context;
}

absl::Status RemappingUnit::RegisterNotifier(uint16_t source_id, IommuNotifier* notifier,
                                             uint8_t events) {
  if ((events & kMapEvents) && !options_.caching_mode) {
    return absl::FailedPreconditionError(absl::StrCat(
        "follow the mappings of ", Hex(source_id),
        ": the unit has no caching mode, so the guest does not invalidate after a map"));
  }
  MutexLock lock(mu_);
  return DeviceFor(source_id).space->RegisterNotifier(notifier, Iova(0), Iova(~uint64_t{0}),
                                                      events);
}

absl::Status RemappingUnit::UnregisterNotifier(uint16_t source_id, IommuNotifier* notifier) {
  MutexLock lock(mu_);
  return DeviceFor(source_id).space->UnregisterNotifier(notifier);
}

size_t RemappingUnit::NotifierCount(uint16_t source_id) {
  MutexLock lock(mu_);
  return DeviceFor(source_id).space->notifier_count();
}

uint64_t RemappingUnit::TrackedMappings(uint16_t source_id) {
  MutexLock lock(mu_);
  return DeviceFor(source_id).space->tracked().size();
}

std::optional<uint16_t> RemappingUnit::Domain(uint16_t source_id) {
  MutexLock lock(mu_);
  const Device& d = DeviceFor(source_id);
  if (!d.context || !(gsts_ & kGcmdTe)) return std::nullopt;
  return d.context->domain;
}

absl::StatusOr<IotlbEntry> RemappingUnit::TranslateDma(uint16_t source_id, Iova iova,
                                                       IommuAccess access) {
  MutexLock lock(mu_);
  Device& d = DeviceFor(source_id);
  if (!d.context) {
    // The hardware reads the tables on a context-cache miss: so does a DMA.
    ContextLookup c = LookupContext(ram_, root_table_, source_id, limits());
    RecordFault(source_id,
                c.fault == FaultReason::kNone ? FaultReason::kContextNotPresent : c.fault,
                iova.raw(), access == IommuAccess::kWrite);
    return absl::NotFoundError(
        absl::StrCat("DMA from ", Hex(source_id), " to ", iova.ToString(), ": no context"));
  }
  absl::StatusOr<IotlbEntry> e = d.space->Translate(iova, access);
  if (!e.ok() && !d.context->fault_processing_disabled) {
    FaultReason r = d.model->last_fault();
    if (r == FaultReason::kNone) {
      r = access == IommuAccess::kWrite ? FaultReason::kWriteDenied : FaultReason::kReadDenied;
    }
    RecordFault(source_id, r, iova.raw(), access == IommuAccess::kWrite);
  }
  return e;
}

UnitCounters RemappingUnit::counters() {
  MutexLock lock(mu_);
  return counters_;
}

UnitCounters RemappingUnit::DeviceCounters(uint16_t source_id) {
  MutexLock lock(mu_);
  return DeviceFor(source_id).counters;
}

bool RemappingUnit::translation_enabled() {
  MutexLock lock(mu_);
  return gsts_ & kGcmdTe;
}

void RemappingUnit::SendMsi(uint64_t address, uint32_t data) {
  if (options_.send_msi) options_.send_msi(address, data);
}

RemappingUnit::EventInterrupt* RemappingUnit::EventRegisters(uint64_t off, size_t* index) {
  for (auto [base, e] : {std::pair{kRegFectl, &fault_event_}, std::pair{kRegIectl, &wait_event_}}) {
    if (off >= base && off < base + 16) {
      *index = (off - base) / 4;
      return e;
    }
  }
  return nullptr;
}

bool RemappingUnit::FaultRecorded() const {
  for (const auto& r : frcd_) {
    if (r[1] >> 63) return true;  // F.
  }
  return false;
}

void RemappingUnit::Signal(EventInterrupt& e) {
  e.control |= kInterruptPending;
  if (!(e.control & kInterruptMask)) {
    SendMsi(e.address | (uint64_t{e.upper} << 32), e.data);
    e.control &= ~kInterruptPending;
  }
}

void RemappingUnit::WriteControl(EventInterrupt& e, uint32_t value) {
  e.control = (e.control & ~kInterruptMask) | (value & kInterruptMask);
  if (!(e.control & kInterruptMask) && (e.control & kInterruptPending)) {
    e.control &= ~kInterruptPending;
    Signal(e);
  }
}

void RemappingUnit::FaultEvent() { Signal(fault_event_); }

void RemappingUnit::RecordFault(uint16_t source_id, FaultReason reason, uint64_t address,
                                bool write) {
  const bool pending = FaultRecorded();
  if (fsts_ & kFstsPfo) return;
  for (const auto& r : frcd_) {
    if ((r[1] >> 63) && static_cast<uint16_t>(r[1]) == source_id) return;  // Compressed.
  }
  auto& rec = frcd_[next_record_];
  if (rec[1] >> 63) {
    fsts_ |= kFstsPfo;
    return;
  }
  const bool event = !pending && !(fsts_ & (kFstsPfo | kFstsIqe));
  rec[0] = address & ~uint64_t{0xfff};
  rec[1] = source_id | (uint64_t{static_cast<uint8_t>(reason)} << 32) |
           (write ? 0 : uint64_t{1} << 62) | (uint64_t{1} << 63);
  next_record_ = (next_record_ + 1) % kFaultRecords;
  ++counters_.faults_recorded;
  if (event) FaultEvent();
}

void RemappingUnit::QueueError() {
  const bool event = !(fsts_ & kFstsEventBits);
  const bool pending = FaultRecorded();
  fsts_ |= kFstsIqe;
  ++counters_.queue_errors;
  if (event && !pending) FaultEvent();
}

void RemappingUnit::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= kSize) {
    return;
  }
  MutexLock lock(mu_);
  uint32_t lo = ReadDword(offset);
  std::memcpy(data.data(), &lo, 4);
  if (data.size() == 8) {
    uint32_t hi = ReadDword(offset + 4);
    std::memcpy(data.data() + 4, &hi, 4);
  }
}

void RemappingUnit::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= kSize) {
    return;
  }
  {
    MutexLock lock(mu_);
    uint32_t lo;
    std::memcpy(&lo, data.data(), 4);
    WriteDword(offset, lo);
    if (data.size() == 8) {
      // The low half first: a command bit (CCMD.ICC, IOTLB.IVT) is in the high half.
      uint32_t hi;
      std::memcpy(&hi, data.data() + 4, 4);
      WriteDword(offset + 4, hi);
    }
    if (!interrupt_entries_changed_ || !options_.on_interrupt_entries_changed) return;
    interrupt_entries_changed_ = false;
    rechecking_ = true;
  }
  options_.on_interrupt_entries_changed();
  MutexLock lock(mu_);
  rechecking_ = false;
}

bool RemappingUnit::interrupt_remapping_enabled() {
  MutexLock lock(mu_);
  return gsts_ & kGcmdIre;
}

absl::StatusOr<irq::MsiMessage> RemappingUnit::Translate(const irq::MsiMessage& msg,
                                                         uint16_t source_id) {
  MutexLock lock(mu_);
  const bool remappable = irq::IsRemappableFormat(msg);
  if (!(gsts_ & kGcmdIre)) {
    if (!remappable) return msg;
    return absl::FailedPreconditionError(
        absl::StrCat("a remappable-format interrupt from ", Hex(source_id),
                     ", but the guest has not enabled interrupt remapping"));
  }
  InterruptLookup r;
  if (!remappable) {
    if (gsts_ & kGcmdCfi) {
      ++counters_.interrupts_remapped;
      return msg;
    }
    r.fault = FaultReason::kIrCompatibilityBlocked;
    r.msg = absl::PermissionDeniedError(
        absl::StrCat("a compatibility-format interrupt ", Hex(msg.address), "/", Hex(msg.data),
                     " from ", Hex(source_id), ": blocked while CFI is clear"));
  } else {
    r = RemapInterrupt(ram_, interrupt_table_, msg, source_id);
  }
  if (r.msg.ok()) {
    ++counters_.interrupts_remapped;
    return r.msg;
  }
  ++counters_.interrupts_blocked;
  if (!rechecking_ && !r.fault_processing_disabled) {
    // An interrupt fault's record holds the entry index in bits 63:48 of its low quadword.
    RecordFault(source_id, r.fault, uint64_t{r.index} << 48, /*write=*/true);
  }
  return r.msg.status();
}

uint32_t RemappingUnit::ReadDword(uint64_t off) {
  size_t index;
  if (EventInterrupt* e = EventRegisters(off, &index)) {
    const uint32_t regs[] = {e->control, e->data, e->address, e->upper};
    return regs[index];
  }
  auto half = [&](uint64_t v) { return static_cast<uint32_t>(off % 8 ? v >> 32 : v); };
  switch (off & ~uint64_t{7}) {
    case kRegCap:
      return half(cap_);
    case kRegEcap:
      return half(ecap_);
    case kRegRtaddr:
      return half(rtaddr_);
    case kRegCcmd:
      return half(ccmd_);
    case kRegIqh:
      return half(uint64_t{iq_head_} << 4);
    case kRegIqt:
      return half(uint64_t{iq_tail_} << 4);
    case kRegIqa:
      return half(iqa_);
    case kRegIrta:
      return half(irta_);
    case kRegIva:
      return 0;  // Write-only.
    case kRegIotlb:
      return half(iotlb_);
    default:
      break;
  }
  if (off >= kRegFrcd && off < kRegFrcd + 16 * kFaultRecords) {
    const auto& r = frcd_[(off - kRegFrcd) / 16];
    const uint64_t q = (off - kRegFrcd) % 16 < 8 ? r[0] : r[1];
    return half(q);
  }
  switch (off) {
    case kRegVer:
      return kVersion;
    case kRegGsts:
      return gsts_;
    case kRegFsts: {
      uint32_t v = fsts_;
      for (size_t i = 0; i < kFaultRecords; ++i) {
        if (frcd_[i][1] >> 63) {
          if (!(v & kFstsPpf)) v |= kFstsPpf | (uint32_t(i) << 8);
        }
      }
      return v;
    }
    case kRegIcs:
      return ics_;
    default:
      return 0;
  }
}

void RemappingUnit::WriteDword(uint64_t off, uint32_t v) {
  size_t index;
  if (EventInterrupt* e = EventRegisters(off, &index)) {
    switch (index) {
      case 0:
        WriteControl(*e, v);
        break;
      case 1:
        e->data = v & 0xffff;
        break;
      case 2:
        e->address = v & ~3u;  // Dword-aligned.
        break;
      default:
        break;  // The upper address: zero without extended interrupt mode.
    }
    return;
  }
  auto set_half = [&](uint64_t& reg, uint64_t mask) {
    const uint64_t shifted = off % 8 ? uint64_t{v} << 32 : v;
    const uint64_t lane = off % 8 ? 0xffffffff00000000ull : 0xffffffffull;
    reg = (reg & ~(lane & mask)) | (shifted & lane & mask);
  };
  const uint64_t addr_mask = ((uint64_t{1} << options_.address_width) - 1) & ~uint64_t{0xfff};
  switch (off & ~uint64_t{7}) {
    case kRegRtaddr:
      set_half(rtaddr_, addr_mask);  // TTM (legacy only) and reserved bits read as zero.
      return;
    case kRegCcmd:
      set_half(ccmd_, 0xe0000003ffffffffull);
      if (off % 8 && (ccmd_ >> 63)) {
        const int granularity = static_cast<int>((ccmd_ >> 61) & 3);
        if (granularity != 0) {
          ContextCacheInvalidate(granularity, static_cast<uint16_t>(ccmd_),
                                 static_cast<uint16_t>(ccmd_ >> 16),
                                 static_cast<int>((ccmd_ >> 32) & 3));
        }
        // Done at once; the actual granularity is the one asked for (0 for an invalid request).
        ccmd_ =
            (ccmd_ & ~(uint64_t{1} << 63) & ~(uint64_t{3} << 59)) | (uint64_t(granularity) << 59);
      }
      return;
    case kRegIqt:
      if (off % 8) return;
      iq_tail_ = (v >> 4) & 0x7fff;
      ProcessQueue();
      return;
    case kRegIqa:
      set_half(iqa_, addr_mask | 0x7);  // 128-bit descriptors only: DW is reserved.
      return;
    case kRegIva:
      set_half(iva_, addr_mask | 0x7f);
      return;
    case kRegIrta:
      // The table's base and size (S); EIME is reserved without ECAP.EIM.
      if (options_.interrupt_remapping) set_half(irta_, addr_mask | 0xf);
      return;
    case kRegIotlb:
      set_half(iotlb_, 0xb003ffff00000000ull);
      if (off % 8 && (iotlb_ >> 63)) {
        const int granularity = static_cast<int>((iotlb_ >> 60) & 3);
        const uint16_t did = static_cast<uint16_t>(iotlb_ >> 32);
        const uint64_t am = iva_ & 0x3f;
        int actual = granularity;
        if (granularity == 0 || (granularity == 3 && am > kMamv)) {
          actual = 0;
        } else {
          const uint64_t size = uint64_t{1} << (kPageShift + am);
          InvalidateIotlb(granularity, did, (iva_ & ~uint64_t{0xfff}) & ~(size - 1), size);
        }
        iotlb_ = (iotlb_ & ~(uint64_t{1} << 63) & ~(uint64_t{3} << 57)) | (uint64_t(actual) << 57);
      }
      return;
    default:
      break;
  }
  if (off >= kRegFrcd && off < kRegFrcd + 16 * kFaultRecords) {
    if ((off - kRegFrcd) % 16 == 12 && (v >> 31)) {
      frcd_[(off - kRegFrcd) / 16][1] &= ~(uint64_t{1} << 63);  // F is write-1-to-clear.
    }
    return;
  }
  switch (off) {
    case kRegGcmd:
      Command(v);
      return;
    case kRegFsts: {
      fsts_ &= ~(v & (kFstsPfo | kFstsIqe));
      const bool pending = FaultRecorded();
      if (!(fsts_ & kFstsEventBits) && !pending) fault_event_.control &= ~kInterruptPending;
      if (!(fsts_ & kFstsIqe) && iq_head_ != iq_tail_) ProcessQueue();
      return;
    }
    case kRegIcs:
      if (v & kIcsIwc) {
        ics_ &= ~kIcsIwc;
        wait_event_.control &= ~kInterruptPending;
      }
      return;
    default:
      return;  // Read-only, reserved or not offered: ignored.
  }
}

void RemappingUnit::Command(uint32_t v) {
  const uint32_t changed = v ^ gsts_;
  if (options_.interrupt_remapping) {
    // Linux keeps the persistent bits (TE, QIE, IRE, CFI) in every GCMD write and adds one-shot
    // ones (SRTP, SIRTP).
    if (v & kGcmdSirtp) {
      interrupt_table_ = {.base = irta_ & ~uint64_t{0xfff}, .entries = 1u << ((irta_ & 0xf) + 1)};
      gsts_ |= kGcmdSirtp;  // IRTPS.
      interrupt_entries_changed_ = true;
    }
    if (changed & (kGcmdIre | kGcmdCfi)) {
      gsts_ ^= changed & (kGcmdIre | kGcmdCfi);  // IRES, CFIS.
      interrupt_entries_changed_ = true;
    }
  }
  if (v & kGcmdSrtp) {
    root_table_ = rtaddr_;
    gsts_ |= kGcmdSrtp;  // RTPS.
    if (gsts_ & kGcmdTe) InvalidateContexts([](uint16_t, const Device&) { return true; });
  }
  if (changed & kGcmdQie) {
    if (v & kGcmdQie) {
      iq_head_ = 0;
      gsts_ |= kGcmdQie;
      ProcessQueue();
    } else if (iq_head_ == iq_tail_) {
      gsts_ &= ~kGcmdQie;
      iq_head_ = 0;
    }
  }
  if (changed & kGcmdTe) {
    gsts_ ^= kGcmdTe;
    // Translation on or off changes every device's translation at once.
    InvalidateContexts([](uint16_t, const Device&) { return true; });
  }
}

void RemappingUnit::InvalidateContexts(
    const std::function<bool(uint16_t sid, const Device&)>& match) {
  for (auto& [sid, d] : devices_) {
    if (!match(sid, d)) continue;
    ++d.counters.context_invalidations;
    std::optional<DeviceContext> now = Resolve(sid, /*record=*/true);
    const bool same = now.has_value() == d.context.has_value() &&
                      (!now || (now->domain == d.context->domain && now->type == d.context->type &&
                                now->table.root == d.context->table.root &&
                                now->table.levels == d.context->table.levels));
    d.context = now;
    if (!same) d.space->InvalidateContext();
  }
}

void RemappingUnit::ContextCacheInvalidate(int granularity, uint16_t did, uint16_t sid, int fm) {
  ++counters_.context_invalidations;
  if (granularity == 3) {
    // Device-selective: by requester id, whatever the domain (Linux names the old domain on a
    // detach and domain 0 on an attach). FM masks the function number's top 1-3 bits.
    const uint16_t ignored = static_cast<uint16_t>(((1u << fm) - 1) << (3 - fm));
    InvalidateContexts([&](uint16_t s, const Device&) { return (s | ignored) == (sid | ignored); });
  } else if (granularity == 2) {
    InvalidateContexts(
        [&](uint16_t, const Device& d) { return d.context && d.context->domain == did; });
  } else {
    InvalidateContexts([](uint16_t, const Device&) { return true; });
  }
}

void RemappingUnit::InvalidateIotlb(int granularity, uint16_t domain, uint64_t addr,
                                    uint64_t size) {
  for (auto& [sid, d] : devices_) {
    if (granularity == 1) ++d.counters.global_invalidations;  // Every device receives it.
    if (!d.context || d.context->type != TranslationType::kMultiLevel) continue;
    if (granularity == 1) {
      d.space->InvalidateAll();
    } else if (d.context->domain == domain) {
      if (granularity == 2) {
        ++d.counters.domain_invalidations;
        d.space->InvalidateAll();
      } else {
        ++d.counters.page_invalidations;
        d.space->InvalidateRange(Iova(addr), size);
      }
    }
  }
  if (granularity == 1) ++counters_.global_invalidations;
  if (granularity == 2) ++counters_.domain_invalidations;
  if (granularity == 3) ++counters_.page_invalidations;
}

void RemappingUnit::ProcessQueue() {
  if (!(gsts_ & kGcmdQie) || (fsts_ & kFstsIqe)) return;
  const uint32_t entries = 1u << (8 + (iqa_ & 7));
  if (iq_tail_ >= entries) {
    QueueError();
    return;
  }
  const uint64_t base = iqa_ & ~uint64_t{0xfff};
  // At most one pass over the queue per tail write: head chases tail.
  while (iq_head_ != iq_tail_) {
    absl::StatusOr<uint64_t> qw0 = ram_.ReadObj<uint64_t>(GuestAddress(base + 16 * iq_head_));
    absl::StatusOr<uint64_t> qw1 = ram_.ReadObj<uint64_t>(GuestAddress(base + 16 * iq_head_ + 8));
    if (!qw0.ok() || !qw1.ok() || !Execute(*qw0, *qw1)) {
      QueueError();  // The head stays at the descriptor in error.
      return;
    }
    iq_head_ = (iq_head_ + 1) % entries;
  }
}

bool RemappingUnit::Execute(uint64_t qw0, uint64_t qw1) {
  const int granularity = static_cast<int>((qw0 >> 4) & 3);
  switch (qw0 & 0xf) {
    case 1: {  // Context-cache invalidation.
      if ((qw0 & 0xfffc00000000ffc0ull) || qw1 != 0 || granularity == 0) return false;
      ContextCacheInvalidate(granularity, static_cast<uint16_t>(qw0 >> 16),
                             static_cast<uint16_t>(qw0 >> 32), static_cast<int>((qw0 >> 48) & 3));
      return true;
    }
    case 2: {  // IOTLB invalidation.
      if ((qw0 & 0xffffffff0000ff00ull) || (qw1 & 0xf80) || granularity == 0) return false;
      const uint64_t am = qw1 & 0x3f;
      if (granularity == 3 && am > kMamv) return false;
      const uint64_t size = uint64_t{1} << (kPageShift + am);
      // The address is aligned down to the mask (a guest may send it unaligned).
      InvalidateIotlb(granularity, static_cast<uint16_t>(qw0 >> 16),
                      (qw1 & ~uint64_t{0xfff}) & ~(size - 1), size);
      return true;
    }
    case 4:  // Interrupt entry cache, global (G clear) or IM-aligned entries from IIDX.
      if (!options_.interrupt_remapping || (qw0 & 0xffff000007ffffe0ull) || qw1 != 0) {
        return false;
      }
      ++counters_.interrupt_entry_invalidations;
      // Nothing is cached but the routes made from entries: all of them are checked again.
      interrupt_entries_changed_ = true;
      return true;
    case 5: {  // Invalidation wait.
      if ((qw0 & 0xffffff80ull) || (qw1 & 3)) return false;
      ++counters_.waits;
      if (qw0 & (1u << 5)) {  // Status write.
        const uint32_t status = static_cast<uint32_t>(qw0 >> 32);
        if (!ram_.WriteObj(GuestAddress(qw1), status).ok()) return false;
      }
      if (qw0 & (1u << 4)) {  // Interrupt.
        const bool was = ics_ & kIcsIwc;
        ics_ |= kIcsIwc;
        if (!was) Signal(wait_event_);
      }
      return true;
    }
    default:  // Device TLBs are not offered; the rest is scalable mode's.
      return false;
  }
}

}  // namespace vmmkit::iommu::vtd
