#include "memory/guest_memory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit {
namespace {

std::string RegionString(const GuestRegion& r) {
  return absl::StrCat("[", r.start().ToString(), ", ", r.last().ToString(), "]");
}

}  // namespace

GuestMemory::GuestMemory(std::vector<std::shared_ptr<GuestRegion>> regions)
    : regions_(std::move(regions)) {
  starts_.reserve(regions_.size());
  for (const auto& r : regions_) {
    starts_.push_back(r->start().raw());
    total_size_ += r->size();
  }
}

absl::StatusOr<GuestMemory> GuestMemory::Create(std::vector<std::shared_ptr<GuestRegion>> regions) {
  for (const auto& r : regions) {
    if (r == nullptr) return absl::InvalidArgumentError("guest memory: null region");
  }
  std::sort(regions.begin(), regions.end(),
            [](const auto& a, const auto& b) { return a->start() < b->start(); });
  for (size_t i = 1; i < regions.size(); ++i) {
    if (regions[i]->start() <= regions[i - 1]->last()) {
      return absl::InvalidArgumentError(absl::StrCat("guest memory: region ",
                                                     RegionString(*regions[i]), " overlaps ",
                                                     RegionString(*regions[i - 1])));
    }
  }
  return GuestMemory(std::move(regions));
}

absl::StatusOr<GuestMemory> GuestMemory::CreateRam(
    absl::Span<const std::pair<GuestAddress, uint64_t>> layout, const GuestRegionOptions& options) {
  std::vector<std::shared_ptr<GuestRegion>> regions;
  regions.reserve(layout.size());
  for (const auto& [start, size] : layout) {
    ASSIGN_OR_RETURN(auto region, GuestRegion::Create(start, size, options));
    regions.push_back(std::move(region));
  }
  return Create(std::move(regions));
}

const GuestRegion* GuestMemory::FindRegion(GuestAddress addr) const {
  // The last region starting at or below addr is the only candidate.
  auto it = std::upper_bound(starts_.begin(), starts_.end(), addr.raw());
  if (it == starts_.begin()) return nullptr;
  const GuestRegion* r = regions_[static_cast<size_t>(it - starts_.begin()) - 1].get();
  return addr <= r->last() ? r : nullptr;
}

absl::StatusOr<uint8_t*> GuestMemory::TranslateFor(const char* op, GuestAddress addr,
                                                   uint64_t len) const {
  const GuestRegion* r = FindRegion(addr);
  std::optional<uint64_t> last = RangeLast(addr.raw(), len);
  // Each check is only paid for on the error path, except the two comparisons on success.
  if (r != nullptr && last && *last <= r->last().raw()) {
    return r->host_address() + (addr.raw() - r->start().raw());
  }
  const std::string what =
      absl::StrCat("guest memory ", op, " [", addr.ToString(), ", +", Hex(len), ")");
  if (len == 0) return absl::InvalidArgumentError(absl::StrCat(what, ": zero length"));
  if (!last) return absl::OutOfRangeError(absl::StrCat(what, ": wraps past 2^64"));
  if (r == nullptr) {
    return absl::OutOfRangeError(absl::StrCat(what, ": no RAM at ", addr.ToString()));
  }
  return absl::OutOfRangeError(
      absl::StrCat(what, ": crosses the end of region ", RegionString(*r)));
}

absl::StatusOr<uint8_t*> GuestMemory::Translate(GuestAddress addr, uint64_t len) const {
  return TranslateFor("translate", addr, len);
}

absl::Status GuestMemory::Read(GuestAddress addr, absl::Span<uint8_t> dst) const {
  if (dst.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint8_t * host, TranslateFor("read", addr, dst.size()));
  std::memcpy(dst.data(), host, dst.size());
  return absl::OkStatus();
}

absl::Status GuestMemory::Write(GuestAddress addr, absl::Span<const uint8_t> src) const {
  if (src.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint8_t * host, TranslateFor("write", addr, src.size()));
  std::memcpy(host, src.data(), src.size());
  return absl::OkStatus();
}

}  // namespace vmmkit
