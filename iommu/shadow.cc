#include "iommu/shadow.h"

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::iommu {

absl::StatusOr<std::unique_ptr<VfioShadow>> VfioShadow::Create(vfio::DmaBackend& backend,
                                                               AddressSpace& system_memory) {
  std::unique_ptr<VfioShadow> shadow(new VfioShadow(backend, system_memory));
  if (backend.needs_pre_registration()) {
    shadow->prereg_ =
        std::make_unique<vfio::DmaPreRegistrationListener>(backend, "viommu-shadow-prereg");
    RETURN_IF_ERROR(system_memory.RegisterListener(shadow->prereg_.get()));
  }
  return shadow;
}

VfioShadow::~VfioShadow() {
  for (const IovaMapping& h : host_.mappings()) {
    if (absl::Status s = backend_.UnmapDma(h.iova, h.size); !s.ok()) LogWarning(s.ToString());
  }
  if (prereg_ != nullptr) {
    if (absl::Status s = system_memory_.UnregisterListener(prereg_.get()); !s.ok()) {
      LogWarning(s.ToString());
    }
  }
}

bool VfioShadow::AlreadyMapped(const IovaMapping& m) const {
  uint64_t covered = 0;
  for (const IovaMapping& h : host_.Overlapping(m.iova, m.size)) {
    // The same translation: h's guest address at m's IOVA must be m's.
    if (h.perm != m.perm || h.translated - h.iova.raw() != m.translated - m.iova.raw()) {
      return false;
    }
    const uint64_t lo = std::max(h.iova.raw(), m.iova.raw());
    const uint64_t hi = std::min(h.last().raw(), m.last().raw());
    covered += hi - lo + 1;
  }
  return covered == m.size;
}

absl::Status VfioShadow::MapHost(const IovaMapping& m) {
  auto what = [&] {
    return absl::StrCat("vIOMMU shadow into ", backend_.name(), ": map ", m.ToString());
  };
  if (m.perm == IommuAccess::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": no access allowed"));
  }
  const AddressSpaceRegion* r = system_memory_.Find(GuestAddress(m.translated));
  if (r == nullptr || r->kind != RegionKind::kRam) {
    return absl::FailedPreconditionError(
        absl::StrCat(what(), ": guest address 0x", absl::Hex(m.translated), " is not guest RAM",
                     r == nullptr ? "" : absl::StrCat(" (it is ", r->ToString(), ")")));
  }
  const uint64_t offset = m.translated - r->start.raw();
  if (m.size > r->size - offset) {
    return absl::OutOfRangeError(absl::StrCat(what(), ": runs past the end of ", r->ToString()));
  }
  RETURN_IF_ERROR(
      backend_.MapDma(m.iova, *r->ram, offset, m.size, Allows(m.perm, IommuAccess::kWrite)));
  ++map_calls_;
  // The checks above and the backend's map make the insert safe: nothing overlapped.
  (void)host_.Insert(m);
  regions_[m.iova.raw()] = r->ram;
  return absl::OkStatus();
}

absl::Status VfioShadow::Unmap(const IovaMapping& m) {
  absl::Status first_error;
  for (const IovaMapping& h : host_.Overlapping(m.iova, m.size)) {
    absl::Status s = backend_.UnmapDma(h.iova, h.size);
    ++unmap_calls_;
    host_.Remove(h.iova, h.size);
    regions_.erase(h.iova.raw());
    if (!s.ok()) {
      first_error.Update(s);
      continue;
    }
    // A coalesced host mapping that extends beyond the UNMAP: map the rest again.
    if (h.iova < m.iova) {
      first_error.Update(MapHost({h.iova, m.iova.raw() - h.iova.raw(), h.translated, h.perm}));
    }
    if (h.last() > m.last()) {
      const uint64_t skip = m.last().raw() + 1 - h.iova.raw();
      first_error.Update(
          MapHost({Iova(m.last().raw() + 1), h.size - skip, h.translated + skip, h.perm}));
    }
  }
  return first_error;
}

absl::Status VfioShadow::Notify(absl::Span<const IommuEvent> events) {
  absl::Status first_error;
  for (size_t i = 0; i < events.size();) {
    const IommuEvent& e = events[i];
    if (e.type == IommuEventType::kUnmap) {
      // One unmap for a run of UNMAPs that continue each other in IOVA (a range invalidation of
      // several pages): page by page, a coalesced host mapping would be unmapped and the rest of
      // it mapped again once per page.
      IovaMapping run = e.mapping;
      size_t j = i + 1;
      for (; j < events.size() && events[j].type == IommuEventType::kUnmap &&
             events[j].mapping.iova.raw() == run.last().raw() + 1;
           ++j) {
        run.size += events[j].mapping.size;
      }
      first_error.Update(Unmap(run));
      i = j;
      continue;
    }
    if (AlreadyMapped(e.mapping)) {
      ++i;
      continue;
    }
    // Coalesce the run of MAPs that continue this one in IOVA and guest address.
    IovaMapping run = e.mapping;
    size_t j = i + 1;
    for (; j < events.size(); ++j) {
      const IommuEvent& n = events[j];
      if (n.type != IommuEventType::kMap || n.mapping.perm != run.perm ||
          n.mapping.iova.raw() != run.last().raw() + 1 ||
          n.mapping.translated != run.translated + run.size ||
          !host_.Overlapping(n.mapping.iova, n.mapping.size).empty()) {
        break;
      }
      run.size += n.mapping.size;
    }
    // Whatever was mapped differently there goes first.
    if (!host_.Overlapping(run.iova, run.size).empty()) first_error.Update(Unmap(run));
    absl::Status s = MapHost(run);
    if (!s.ok() && j > i + 1) {
      // The run may span two RAM regions, or one page of it may be bad: map page by page so that
      // the good ones still work and the error names the bad one.
      for (size_t k = i; k < j; ++k) first_error.Update(MapHost(events[k].mapping));
    } else {
      first_error.Update(s);
    }
    i = j;
  }
  return first_error;
}

}  // namespace vmmkit::iommu
