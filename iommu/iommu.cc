#include "iommu/iommu.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::iommu {
namespace {

constexpr uint64_t kPageShift = 12;
constexpr uint64_t kMaxFaults = 1024;  // A guest cannot make the VMM hold unbounded faults.

bool Overlaps(const IovaMapping& m, Iova start, Iova last) {
  return m.iova <= last && m.last() >= start;
}

}  // namespace

absl::StatusOr<IotlbEntry> IommuAddressSpace::Translate(Iova iova, IommuAccess access) {
  const uint64_t page = iova.raw() >> kPageShift;
  if (auto it = iotlb_.find(page); it != iotlb_.end()) {
    if (Allows(it->second.perm, access)) return it->second;
    return absl::PermissionDeniedError(absl::StrCat(name_, ": ", AccessName(access), " access to ",
                                                    iova.ToString(), " is not allowed (",
                                                    AccessName(it->second.perm), ")"));
  }
  absl::StatusOr<IotlbEntry> entry = model_.Translate(iova, access);
  if (entry.ok()) {
    if (!IsPowerOfTwo(entry->addr_mask + 1) || (entry->iova.raw() & entry->addr_mask) != 0 ||
        iova.raw() - entry->iova.raw() > entry->addr_mask) {
      return absl::InternalError(
          absl::StrCat(name_, ": the model returned a malformed entry for ", iova.ToString()));
    }
    iotlb_[page] = *entry;
  }
  return entry;
}

absl::Status IommuAddressSpace::RegisterNotifier(IommuNotifier* notifier, Iova start, Iova last,
                                                 uint8_t events, bool replay) {
  if (notifier == nullptr || last < start || events == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": register notifier: null, empty range or no events"));
  }
  for (const Registration& r : notifiers_) {
    if (r.notifier == notifier) {
      return absl::AlreadyExistsError(absl::StrCat(name_, ": this notifier is registered already"));
    }
  }
  if ((events & kMapEvents) && map_notifier_count() == 0) {
    // Nothing kept tracked() while no one needed it: it starts from what the tables hold now.
    tracked_.Clear();
    model_.Walk(Iova(0), Iova(~uint64_t{0}),
                [&](const IotlbEntry& e) { (void)tracked_.Insert(e.ToMapping()); });
  }
  notifiers_.push_back({notifier, start, last, events});
  if (!replay || !(events & kMapEvents)) return absl::OkStatus();
  if (absl::Status s = Replay(notifier); !s.ok()) {
    // Undo what the notifier accepted, then forget it.
    std::vector<IommuEvent> undo;
    for (const auto& [iova, m] : tracked_) {
      if (Overlaps(m, start, last)) undo.push_back({IommuEventType::kUnmap, m});
    }
    (void)notifier->Notify(undo);
    notifiers_.pop_back();
    if (map_notifier_count() == 0) tracked_.Clear();
    return Prefixed(s, name_, ": replay to a new notifier");
  }
  return absl::OkStatus();
}

absl::Status IommuAddressSpace::UnregisterNotifier(IommuNotifier* notifier) {
  auto it = std::find_if(notifiers_.begin(), notifiers_.end(),
                         [&](const Registration& r) { return r.notifier == notifier; });
  if (it == notifiers_.end()) {
    return absl::NotFoundError(absl::StrCat(name_, ": unregister: notifier not registered"));
  }
  notifiers_.erase(it);
  if (map_notifier_count() == 0) tracked_.Clear();
  return absl::OkStatus();
}

size_t IommuAddressSpace::map_notifier_count() const {
  return static_cast<size_t>(
      std::count_if(notifiers_.begin(), notifiers_.end(),
                    [](const Registration& r) { return (r.events & kMapEvents) != 0; }));
}

absl::Status IommuAddressSpace::Replay(IommuNotifier* notifier) {
  auto it = std::find_if(notifiers_.begin(), notifiers_.end(),
                         [&](const Registration& r) { return r.notifier == notifier; });
  if (it == notifiers_.end()) {
    return absl::NotFoundError(absl::StrCat(name_, ": replay: notifier not registered"));
  }
  std::vector<IommuEvent> maps;
  for (const auto& [iova, m] : tracked_) {
    if (Overlaps(m, it->start, it->last)) maps.push_back({IommuEventType::kMap, m});
  }
  if (maps.empty()) return absl::OkStatus();
  return notifier->Notify(maps);
}

void IommuAddressSpace::InvalidateRange(Iova iova, uint64_t size) {
  if (size == 0) return;
  const uint64_t last = RangeLast(iova.raw(), size).value_or(~uint64_t{0});
  Sync(iova, Iova(last));
}

void IommuAddressSpace::InvalidateAll() { Sync(Iova(0), Iova(~uint64_t{0})); }

void IommuAddressSpace::InvalidateContext() { Sync(Iova(0), Iova(~uint64_t{0}), /*forget=*/true); }

void IommuAddressSpace::FlushIotlb(Iova first, Iova last) {
  const uint64_t pages = (last.raw() >> kPageShift) - (first.raw() >> kPageShift) + 1;
  if (pages > iotlb_.size()) {
    absl::erase_if(iotlb_, [&](const auto& kv) {
      return kv.second.iova <= last && Iova(kv.second.iova.raw() + kv.second.addr_mask) >= first;
    });
    return;
  }
  for (uint64_t p = first.raw() >> kPageShift; p <= last.raw() >> kPageShift; ++p) {
    iotlb_.erase(p);
  }
}

void IommuAddressSpace::Sync(Iova first, Iova last, bool forget) {
  if (first.raw() == 0 && last.raw() == ~uint64_t{0}) {
    iotlb_.clear();
  } else {
    FlushIotlb(first, last);
  }
  std::vector<IommuEvent> unmaps, maps;
  if (map_notifier_count() == 0) {
    Deliver(unmaps, maps, first, last);
    return;
  }
  if (forget) {
    for (const IovaMapping& m : tracked_.mappings()) unmaps.push_back({IommuEventType::kUnmap, m});
    tracked_.Clear();
  }
  // The guest's live translations in the range, and what the notifiers were told.
  std::vector<IovaMapping> live;
  model_.Walk(first, last, [&](const IotlbEntry& e) { live.push_back(e.ToMapping()); });
  auto unmap_tracked = [&](const IovaMapping& m) {
    tracked_.Remove(m.iova, m.size);
    unmaps.push_back({IommuEventType::kUnmap, m});
  };
  for (const IovaMapping& t : tracked_.OverlappingInclusive(first, last)) {
    // Walk() reports in IOVA order: binary search.
    auto l = std::lower_bound(live.begin(), live.end(), t.iova,
                              [](const IovaMapping& m, Iova iova) { return m.iova < iova; });
    const bool still_there = l != live.end() && *l == t;
    if (!still_there) unmap_tracked(t);
  }
  for (const IovaMapping& l : live) {
    if (tracked_.Find(l.iova) == l) continue;  // Unchanged: nothing to say.
    // Whatever is tracked where the new mapping goes (e.g. a larger page outside the range that
    // the guest replaced) is gone too.
    for (const IovaMapping& t : tracked_.Overlapping(l.iova, l.size)) unmap_tracked(t);
    if (tracked_.Insert(l).ok()) maps.push_back({IommuEventType::kMap, l});
  }
  auto by_iova = [](const IommuEvent& a, const IommuEvent& b) {
    return a.mapping.iova < b.mapping.iova;
  };
  std::sort(unmaps.begin(), unmaps.end(), by_iova);
  Deliver(unmaps, maps, first, last);
}

void IommuAddressSpace::Deliver(const std::vector<IommuEvent>& unmaps,
                                const std::vector<IommuEvent>& maps, Iova first, Iova last) {
  for (const Registration& r : notifiers_) {
    std::vector<IommuEvent> batch;
    if (!(r.events & kMapEvents)) {
      if (first > r.last || last < r.start) continue;
      const uint64_t a = std::max(first, r.start).raw(), b = std::min(last, r.last).raw();
      const uint64_t size = b - a == ~uint64_t{0} ? ~uint64_t{0} : b - a + 1;
      batch.push_back({IommuEventType::kUnmap, {.iova = Iova(a), .size = size}});
    } else if (r.events & kUnmapEvents) {
      for (const IommuEvent& e : unmaps) {
        if (Overlaps(e.mapping, r.start, r.last)) batch.push_back(e);
      }
    }
    if (r.events & kMapEvents) {
      for (const IommuEvent& e : maps) {
        if (Overlaps(e.mapping, r.start, r.last)) batch.push_back(e);
      }
    }
    if (batch.empty()) continue;
    if (absl::Status s = r.notifier->Notify(batch); !s.ok() && faults_.size() < kMaxFaults) {
      const IovaMapping& head = batch.front().mapping;
      faults_.push_back({head.iova, head.size, std::string(s.message())});
    }
  }
}

std::vector<IommuFault> IommuAddressSpace::TakeFaults() {
  std::vector<IommuFault> out;
  out.swap(faults_);
  return out;
}

void InvalidateGlobal(absl::Span<IommuAddressSpace* const> spaces) {
  for (IommuAddressSpace* as : spaces) as->InvalidateAll();
}

}  // namespace vmmkit::iommu
