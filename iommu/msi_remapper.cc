#include "iommu/msi_remapper.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::iommu {
namespace {

uint64_t Bits(uint64_t v, int hi, int lo) {
  return (v >> lo) & ((uint64_t{1} << (hi - lo + 1)) - 1);
}

}  // namespace

Irte Irte::Decode(uint64_t low, uint64_t high, bool x2apic) {
  Irte e;
  e.present = Bits(low, 0, 0);
  e.fault_processing_disable = Bits(low, 1, 1);
  e.dest_logical = Bits(low, 2, 2);
  e.redirection_hint = Bits(low, 3, 3);
  e.level_triggered = Bits(low, 4, 4);
  e.delivery_mode = static_cast<uint8_t>(Bits(low, 7, 5));
  e.vector = static_cast<uint8_t>(Bits(low, 23, 16));
  e.destination = static_cast<uint32_t>(x2apic ? Bits(low, 63, 32) : Bits(low, 47, 40));
  e.source_id = static_cast<uint16_t>(Bits(high, 15, 0));
  e.source_qualifier = static_cast<uint8_t>(Bits(high, 17, 16));
  e.source_validation = static_cast<uint8_t>(Bits(high, 19, 18));
  return e;
}

bool Irte::HasReservedBits(uint64_t low, uint64_t high, bool x2apic) {
  uint64_t reserved_low = (uint64_t{0x7} << 12) | (uint64_t{1} << 15) | (uint64_t{0xff} << 24);
  if (!x2apic) reserved_low |= (uint64_t{0xff} << 32) | (uint64_t{0xffff} << 48);
  return (low & reserved_low) != 0 || (high >> 20) != 0;
}

absl::StatusOr<uint32_t> InterruptIndex(const MsiMessage& msg) {
  if (Bits(msg.address, 31, 20) != 0xfee || Bits(msg.address, 63, 32) != 0) {
    return absl::InvalidArgumentError("not an MSI address");
  }
  if (!irq::IsRemappableFormat(msg)) return absl::InvalidArgumentError("compatibility format");
  // Handle: address bits 19:5 and bit 2 (handle[15]); with SHV (bit 3), plus the subhandle.
  uint64_t index = Bits(msg.address, 19, 5) | (Bits(msg.address, 2, 2) << 15);
  if (Bits(msg.address, 3, 3)) index += msg.data & 0xffff;
  return static_cast<uint32_t>(index);  // At most 0xffff + 0xffff.
}

absl::StatusOr<MsiMessage> RemapThrough(const Irte& e, uint32_t index, uint16_t source_id,
                                        absl::string_view what) {
  if (!e.present) {
    return absl::NotFoundError(absl::StrCat(what, ": IRTE ", index, " is not present"));
  }
  bool source_ok = true;
  if (e.source_validation == 1) {
    // SQ 1, 2, 3 ignore function bit 2, bits 2:1, bits 2:0.
    static constexpr uint16_t kIgnore[4] = {0, 0x4, 0x6, 0x7};
    const uint16_t ignore = kIgnore[e.source_qualifier & 3];
    source_ok = (source_id & ~ignore) == (e.source_id & ~ignore);
  } else if (e.source_validation == 2) {
    // SID bits 15:8 the first bus, 7:0 the last.
    const uint8_t bus = static_cast<uint8_t>(source_id >> 8);
    source_ok = bus >= (e.source_id >> 8) && bus <= (e.source_id & 0xff);
  } else if (e.source_validation == 3) {
    source_ok = false;  // Reserved.
  }
  if (!source_ok) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, ": IRTE ", index, " belongs to requester ", absl::Hex(e.source_id, absl::kZeroPad4)));
  }
  MsiMessage out;
  out.address = 0xfee00000 | (uint64_t{e.destination & 0xff} << 12) |
                (uint64_t{e.redirection_hint} << 3) | (uint64_t{e.dest_logical} << 2) |
                (uint64_t{e.destination >> 8} << 32);
  out.data = e.vector | (uint32_t{e.delivery_mode} << 8) |
             (e.level_triggered ? (1u << 15) | (1u << 14) : 0u);
  return out;
}

InterruptRemappingTable::InterruptRemappingTable(uint32_t entries)
    : table_(std::min<uint32_t>(entries, 65536)) {}

absl::Status InterruptRemappingTable::Set(uint32_t index, const Irte& irte) {
  if (index >= table_.size()) {
    return absl::OutOfRangeError(
        absl::StrCat("IRTE ", index, ": the table has ", table_.size(), " entries"));
  }
  if (irte.source_validation > 2 || irte.source_qualifier > 3 || irte.delivery_mode == 3 ||
      irte.delivery_mode == 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("IRTE ", index, ": reserved SVT, SQ or delivery mode"));
  }
  table_[index] = irte;
  return absl::OkStatus();
}

absl::Status InterruptRemappingTable::Clear(uint32_t index) {
  if (index >= table_.size()) {
    return absl::OutOfRangeError(
        absl::StrCat("IRTE ", index, ": the table has ", table_.size(), " entries"));
  }
  table_[index] = Irte{};
  return absl::OkStatus();
}

bool InterruptRemappingTable::IsRemappable(const MsiMessage& msg) {
  return irq::IsRemappableFormat(msg);
}

absl::StatusOr<MsiMessage> InterruptRemappingTable::Remap(const MsiMessage& msg,
                                                          uint16_t source_id) const {
  const auto what = [&] {
    return absl::StrCat("interrupt remapping of MSI ", Hex(msg.address), "/", Hex(msg.data),
                        " from ", absl::Hex(source_id, absl::kZeroPad4));
  };
  absl::StatusOr<uint32_t> index = InterruptIndex(msg);
  if (!index.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": ", index.status().message()));
  }
  if (*index >= table_.size()) {
    return absl::OutOfRangeError(
        absl::StrCat(what(), ": index ", *index, " is past the ", table_.size(), "-entry table"));
  }
  return RemapThrough(table_[*index], *index, source_id, what());
}

absl::Status MsiIovaWindow::Register(Iova base, uint64_t size) {
  const auto what = [&] {
    return absl::StrCat("MSI IOVA window ", base.ToString(), "+", Hex(size));
  };
  if (window_) {
    return absl::FailedPreconditionError(absl::StrCat(what(), ": the domain has a window already [",
                                                      window_->first.ToString(), ", ",
                                                      window_->second.ToString(), "]"));
  }
  if (size == 0 || size % page_size_ != 0 || !base.IsAligned(page_size_) ||
      !RangeLast(base.raw(), size)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what(), ": must be whole ", Hex(page_size_), "-byte pages, not past 2^64"));
  }
  window_ = {base, Iova(base.raw() + (size - 1))};
  return absl::OkStatus();
}

uint32_t MsiIovaWindow::references(uint64_t doorbell) const {
  auto it = pages_.find(doorbell & ~(page_size_ - 1));
  return it == pages_.end() ? 0 : it->second.refs;
}

void MsiIovaWindow::Drop(uint64_t page) {
  auto it = pages_.find(page);
  if (it == pages_.end() || --it->second.refs > 0) return;
  (void)mapper_.UnmapDoorbell(it->second.iova, page_size_);
  allocated_.Remove(it->second.iova, page_size_);
  pages_.erase(it);
}

absl::StatusOr<std::vector<Iova>> MsiIovaWindow::Acquire(absl::Span<const uint64_t> doorbells) {
  if (!window_) {
    return absl::FailedPreconditionError(
        "MSI doorbells: no MSI IOVA window registered for this domain");
  }
  std::vector<Iova> out;
  std::vector<uint64_t> taken;  // Pages referenced so far by this call, for the rollback.
  auto rollback = [&] {
    for (auto it = taken.rbegin(); it != taken.rend(); ++it) Drop(*it);
  };
  for (uint64_t doorbell : doorbells) {
    const uint64_t page = doorbell & ~(page_size_ - 1);
    auto it = pages_.find(page);
    if (it == pages_.end()) {
      absl::StatusOr<Iova> iova = allocated_.Allocate(window_->first, window_->second, page_size_,
                                                      page_size_, page, IommuAccess::kWrite);
      if (!iova.ok()) {
        rollback();
        const uint64_t capacity = (window_->second.raw() - window_->first.raw()) / page_size_ + 1;
        return absl::ResourceExhaustedError(absl::StrCat(
            "MSI doorbells: the MSI IOVA window [", window_->first.ToString(), ", ",
            window_->second.ToString(), "] holds ", capacity,
            " doorbell pages and they are in use; enabling these ", doorbells.size(),
            " vectors needs doorbell page ", Hex(page), " too (register a larger window)"));
      }
      if (absl::Status s = mapper_.MapDoorbell(*iova, page, page_size_); !s.ok()) {
        allocated_.Remove(*iova, page_size_);
        rollback();
        return Prefixed(s, "MSI doorbells: map doorbell page ", Hex(page), " at ",
                        iova->ToString());
      }
      it = pages_.emplace(page, Page{*iova, 0}).first;
    }
    ++it->second.refs;
    taken.push_back(page);
    out.push_back(Iova(it->second.iova.raw() + (doorbell - page)));
  }
  return out;
}

absl::Status MsiIovaWindow::Release(absl::Span<const uint64_t> doorbells) {
  std::map<uint64_t, uint32_t> want;
  for (uint64_t doorbell : doorbells) ++want[doorbell & ~(page_size_ - 1)];
  for (auto [page, n] : want) {
    auto it = pages_.find(page);
    if (it == pages_.end() || it->second.refs < n) {
      return absl::NotFoundError(absl::StrCat("MSI doorbells: release of doorbell page ", Hex(page),
                                              " that holds fewer than ", n, " references"));
    }
  }
  for (uint64_t doorbell : doorbells) Drop(doorbell & ~(page_size_ - 1));
  return absl::OkStatus();
}

}  // namespace vmmkit::iommu
