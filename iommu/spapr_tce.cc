#include "iommu/spapr_tce.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::iommu {
namespace {

IommuAccess TcePerm(uint64_t tce) { return static_cast<IommuAccess>(tce & (kTceRead | kTceWrite)); }

}  // namespace

absl::StatusOr<std::unique_ptr<SpaprTceTable>> SpaprTceTable::Create(
    std::string name, uint64_t bus_offset, uint32_t page_shift, uint64_t entries,
    std::unique_ptr<TceStorage> elsewhere) {
  const std::string what = absl::StrCat("sPAPR TCE table ", name);
  if (page_shift != 12 && page_shift != 16 && page_shift != 21 && page_shift != 24) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": page shift ", page_shift, " is not 12, 16, 21 or 24"));
  }
  if (entries == 0 || entries > (uint64_t{1} << 32) || bus_offset % (uint64_t{1} << page_shift) ||
      !RangeLast(bus_offset, entries << page_shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad window ", Hex(bus_offset), " + ", entries, " pages"));
  }
  if (elsewhere != nullptr && elsewhere->size() != entries) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the in-kernel view has ",
                                                   elsewhere->size(), " entries, not ", entries));
  }
  return std::unique_ptr<SpaprTceTable>(
      new SpaprTceTable(std::move(name), bus_offset, page_shift, entries, std::move(elsewhere)));
}

SpaprTceTable::SpaprTceTable(std::string name, uint64_t bus_offset, uint32_t page_shift,
                             uint64_t entries, std::unique_ptr<TceStorage> elsewhere)
    : name_(std::move(name)),
      bus_offset_(bus_offset),
      page_shift_(page_shift),
      // No userspace copy while the view lives elsewhere: the table can be gigabytes of TCEs.
      userspace_(elsewhere ? 0 : entries),
      elsewhere_(std::move(elsewhere)),
      space_(name_, *this) {}

absl::StatusOr<uint64_t> SpaprTceTable::Index(uint64_t ioba, const char* op) const {
  if (ioba < bus_offset_ || ((ioba - bus_offset_) >> page_shift_) >= view().size() ||
      ioba % page_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", op, " ioba ", Hex(ioba),
                                                   ": outside the window or not page aligned"));
  }
  return (ioba - bus_offset_) >> page_shift_;
}

absl::Status SpaprTceTable::PutTce(uint64_t ioba, uint64_t tce) {
  ASSIGN_OR_RETURN(uint64_t index, Index(ioba, "H_PUT_TCE"));
  if ((tce & ~(kTceRead | kTceWrite)) % page_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": H_PUT_TCE ioba ", Hex(ioba), " tce ",
                                                   Hex(tce), ": address not page aligned"));
  }
  if (elsewhere_ != nullptr) {
    elsewhere_->Put(index, tce);  // What KVM would do in the kernel; no notifier is listening.
    return absl::OkStatus();
  }
  userspace_.Put(index, tce);
  space_.InvalidateRange(Iova(ioba), page_size());
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SpaprTceTable::GetTce(uint64_t ioba) const {
  ASSIGN_OR_RETURN(uint64_t index, Index(ioba, "H_GET_TCE"));
  return view().Get(index);
}

absl::Status SpaprTceTable::AttachPassthrough(IommuNotifier* hardware) {
  if (elsewhere_ != nullptr) {
    // Reallocate the guest view in userspace, then learn every entry (no notifier yet, so this
    // only fills the tracking the replay below reads).
    const uint64_t n = elsewhere_->size();
    userspace_ = VectorTceStorage(n);
    for (uint64_t i = 0; i < n; ++i) userspace_.Put(i, elsewhere_->Get(i));
    elsewhere_.reset();
    space_.InvalidateAll();
  }
  const Iova last(bus_offset_ + ((view().size() << page_shift_) - 1));
  return space_.RegisterNotifier(hardware, Iova(bus_offset_), last, kMapEvents | kUnmapEvents);
}

absl::Status SpaprTceTable::DetachPassthrough(IommuNotifier* hardware) {
  return space_.UnregisterNotifier(hardware);
}

absl::StatusOr<IotlbEntry> SpaprTceTable::Translate(Iova iova, IommuAccess access) {
  const uint64_t page_start = iova.raw() & ~(page_size() - 1);
  auto index = Index(page_start, "translate");
  if (!index.ok()) return absl::NotFoundError(index.status().message());
  const uint64_t tce = view().Get(*index);
  if (TcePerm(tce) == IommuAccess::kNone) {
    return absl::NotFoundError(absl::StrCat(name_, ": no TCE for ", iova.ToString()));
  }
  if (!Allows(TcePerm(tce), access)) {
    return absl::PermissionDeniedError(
        absl::StrCat(name_, ": TCE for ", iova.ToString(), " does not allow ", AccessName(access)));
  }
  return IotlbEntry{Iova(page_start), tce & ~(kTceRead | kTceWrite), page_size() - 1, TcePerm(tce)};
}

void SpaprTceTable::Walk(Iova start, Iova last,
                         const std::function<void(const IotlbEntry&)>& visit) {
  const uint64_t window_last = bus_offset_ + ((view().size() << page_shift_) - 1);
  if (last.raw() < bus_offset_ || start.raw() > window_last) return;
  const uint64_t first_index =
      start.raw() <= bus_offset_ ? 0 : (start.raw() - bus_offset_) >> page_shift_;
  const uint64_t last_index = (std::min(last.raw(), window_last) - bus_offset_) >> page_shift_;
  for (uint64_t i = first_index; i <= last_index; ++i) {
    const uint64_t tce = view().Get(i);
    if (TcePerm(tce) == IommuAccess::kNone) continue;
    visit({Iova(bus_offset_ + (i << page_shift_)), tce & ~(kTceRead | kTceWrite), page_size() - 1,
           TcePerm(tce)});
  }
}

}  // namespace vmmkit::iommu
