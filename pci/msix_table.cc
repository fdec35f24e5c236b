#include "pci/msix_table.h"

#include <algorithm>
#include <cstring>

namespace vmmkit::pci {

MsixTable::MsixTable(uint16_t size,
                     std::function<void(uint16_t index, const MsixVector& vector)> changed)
    : size_(std::clamp<uint16_t>(size, 1, 2048)),
      changed_(std::move(changed)),
      entries_(size_),
      pending_((size_ + 63u) / 64u, 0) {}

MsixVector MsixTable::vector(uint16_t index) const {
  MutexLock lock(mu_);
  return index < entries_.size() ? entries_[index].Effective() : MsixVector{};
}

void MsixTable::ReadTable(uint64_t offset, absl::Span<uint8_t> data) const {
  std::fill(data.begin(), data.end(), 0);
  if (!ValidAccess(offset, data.size()) || offset / kEntrySize >= size_) return;
  MutexLock lock(mu_);
  const Entry& e = entries_[offset / kEntrySize];
  const uint32_t words[4] = {e.address_lo, e.address_hi, e.data, e.control};
  // An aligned QWORD never crosses an entry (entries are 16 bytes, QWORDs 8-aligned).
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(words) + offset % kEntrySize,
              data.size());
}

void MsixTable::WriteTable(uint64_t offset, absl::Span<const uint8_t> data) {
  if (!ValidAccess(offset, data.size()) || offset / kEntrySize >= size_) return;
  const auto index = static_cast<uint16_t>(offset / kEntrySize);
  MsixVector after;
  {
    MutexLock lock(mu_);
    Entry& e = entries_[index];
    const MsixVector before = e.Effective();
    uint32_t words[4] = {e.address_lo, e.address_hi, e.data, e.control};
    std::memcpy(reinterpret_cast<uint8_t*>(words) + offset % kEntrySize, data.data(), data.size());
    e.address_lo = words[0] & ~3u;  // Message addresses are DWORD aligned.
    e.address_hi = words[1];
    e.data = words[2];
    e.control = words[3] & 1;  // Only the mask bit is defined.
    after = e.Effective();
    if (after == before) return;
  }
  if (changed_) changed_(index, after);
}

void MsixTable::ReadPba(uint64_t offset, absl::Span<uint8_t> data) const {
  std::fill(data.begin(), data.end(), 0);
  if (!ValidAccess(offset, data.size())) return;
  MutexLock lock(mu_);
  const size_t byte_count = pending_.size() * 8;
  if (offset >= byte_count) return;
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(pending_.data()) + offset,
              std::min<size_t>(data.size(), byte_count - offset));
}

void MsixTable::SetPending(uint16_t index, bool pending) {
  MutexLock lock(mu_);
  if (index >= entries_.size()) return;
  const uint64_t bit = uint64_t{1} << (index % 64);
  if (pending) {
    pending_[index / 64] |= bit;
  } else {
    pending_[index / 64] &= ~bit;
  }
}

}  // namespace vmmkit::pci
