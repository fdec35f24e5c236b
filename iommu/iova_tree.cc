#include "iommu/iova_tree.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::iommu {

absl::Status IovaTree::Insert(const IovaMapping& m) {
  const auto last = RangeLast(m.iova.raw(), m.size);
  if (!last) {
    return absl::InvalidArgumentError(absl::StrCat("IOVA tree insert ", m.iova.ToString(), "+",
                                                   Hex(m.size), ": empty or past 2^64"));
  }
  if (auto in_the_way = FindOverlap(m.iova, m.size)) {
    return absl::AlreadyExistsError(
        absl::StrCat("IOVA tree insert ", m.ToString(), ": overlaps ", in_the_way->ToString()));
  }
  map_.emplace(m.iova.raw(), m);
  return absl::OkStatus();
}

std::vector<IovaMapping> IovaTree::Remove(Iova iova, uint64_t size) {
  // The common case, removing exactly one mapping: mappings are disjoint, so nothing else overlaps.
  if (auto it = map_.find(iova.raw()); it != map_.end() && it->second.size == size) {
    std::vector<IovaMapping> removed = {it->second};
    map_.erase(it);
    return removed;
  }
  std::vector<IovaMapping> removed = Overlapping(iova, size);
  if (removed.empty()) return removed;
  // Overlapping() checked the range: it is non-empty and does not wrap.
  const uint64_t first = iova.raw(), last = iova.raw() + (size - 1);
  // Collected first: a B-tree insert invalidates iterators.
  for (IovaMapping& m : removed) {
    map_.erase(m.iova.raw());
    const uint64_t m_first = m.iova.raw(), m_last = m.last().raw();
    if (m_first < first) {  // Keep the head.
      IovaMapping head = m;
      head.size = first - m_first;
      map_.emplace(head.iova.raw(), head);
    }
    if (m_last > last) {  // Keep the tail.
      IovaMapping tail = m;
      tail.iova = Iova(last + 1);
      tail.size = m_last - last;
      tail.translated = m.translated + (last + 1 - m_first);
      map_.emplace(tail.iova.raw(), tail);
    }
    const uint64_t lo = std::max(first, m_first), hi = std::min(last, m_last);
    m.translated += lo - m_first;
    m.iova = Iova(lo);
    m.size = hi - lo + 1;
  }
  return removed;
}

std::optional<IovaMapping> IovaTree::Find(Iova iova) const { return FindOverlap(iova, 1); }

std::optional<IovaMapping> IovaTree::FindOverlap(Iova iova, uint64_t size) const {
  const auto last = RangeLast(iova.raw(), size);
  if (!last) return std::nullopt;
  auto it = map_.upper_bound(iova.raw());
  if (it != map_.begin() && std::prev(it)->second.last() >= iova) return std::prev(it)->second;
  if (it != map_.end() && it->first <= *last) return it->second;
  return std::nullopt;
}

std::vector<IovaMapping> IovaTree::Overlapping(Iova iova, uint64_t size) const {
  const auto last = RangeLast(iova.raw(), size);
  if (!last) return {};
  return OverlappingInclusive(iova, Iova(*last));
}

std::vector<IovaMapping> IovaTree::OverlappingInclusive(Iova first, Iova last) const {
  std::vector<IovaMapping> out;
  if (last < first) return out;
  auto it = map_.upper_bound(first.raw());
  if (it != map_.begin() && std::prev(it)->second.last() >= first) --it;
  for (; it != map_.end() && it->first <= last.raw(); ++it) out.push_back(it->second);
  return out;
}

absl::StatusOr<Iova> IovaTree::FindFree(Iova window_start, Iova window_last, uint64_t size,
                                        uint64_t alignment) const {
  if (size == 0 || !IsPowerOfTwo(alignment) || window_last < window_start) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOVA allocation of ", Hex(size), " aligned to ", Hex(alignment), " in [",
                     window_start.ToString(), ", ", window_last.ToString(), "]: bad arguments"));
  }
  // Walk the gaps from the window's start: a candidate either fits before the next mapping or
  // moves past it.
  auto candidate = window_start.TryAlignUp(alignment);
  auto it = map_.upper_bound(window_start.raw());
  if (it != map_.begin()) --it;
  while (candidate && *candidate <= window_last) {
    const auto cand_last = RangeLast(candidate->raw(), size);
    if (!cand_last || *cand_last > window_last.raw()) break;
    while (it != map_.end() && it->second.last() < *candidate) ++it;
    if (it == map_.end() || it->first > *cand_last) return *candidate;
    const auto next = it->second.last().TryAdd(1);
    if (!next) break;
    candidate = next->TryAlignUp(alignment);
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "IOVA allocation of ", Hex(size), " aligned to ", Hex(alignment), ": no free range in [",
      window_start.ToString(), ", ", window_last.ToString(), "]"));
}

absl::StatusOr<Iova> IovaTree::Allocate(Iova window_start, Iova window_last, uint64_t size,
                                        uint64_t alignment, uint64_t translated, IommuAccess perm) {
  absl::StatusOr<Iova> at = FindFree(window_start, window_last, size, alignment);
  if (!at.ok()) return at;
  // FindFree found [at, at + size) free and inside the window: the insert cannot fail.
  (void)Insert({*at, size, translated, perm});
  return at;
}

std::vector<IovaMapping> IovaTree::mappings() const {
  std::vector<IovaMapping> out;
  out.reserve(map_.size());
  for (const auto& [start, m] : map_) out.push_back(m);
  return out;
}

}  // namespace vmmkit::iommu
