#include "memory/address_allocator.h"

#include <iterator>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "memory/address.h"

namespace vmmkit {

std::string AddressAllocator::Describe() const {
  return absl::StrCat("allocator [", Hex(base_), ", ", Hex(last_), "]");
}

absl::StatusOr<AddressAllocator> AddressAllocator::Create(uint64_t base, uint64_t size) {
  std::optional<uint64_t> last = RangeLast(base, size);
  if (!last) {
    return absl::InvalidArgumentError(absl::StrCat("allocator window [", Hex(base), ", +",
                                                   Hex(size),
                                                   "): size is zero or it wraps past 2^64"));
  }
  return AddressAllocator(base, *last);
}

absl::StatusOr<uint64_t> AddressAllocator::Allocate(uint64_t size, uint64_t alignment) {
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat(Describe(), ": allocate size 0"));
  if (!IsPowerOfTwo(alignment)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": alignment ", Hex(alignment), " is not a power of two"));
  }
  // Walk the gaps in address order: [cursor, next allocation's start - 1], then [cursor, last_].
  uint64_t cursor = base_;
  for (auto next = used_.begin();; ++next) {
    const bool at_end = next == used_.end();
    if (at_end || cursor < next->first) {
      const uint64_t gap_last = at_end ? last_ : next->first - 1;
      std::optional<GuestAddress> start = GuestAddress(cursor).TryAlignUp(alignment);
      std::optional<uint64_t> last =
          start ? RangeLast(start->raw(), size) : std::optional<uint64_t>();
      if (last && *last <= gap_last) {
        used_.emplace(start->raw(), *last);
        return start->raw();
      }
    }
    if (at_end || next->second == ~uint64_t{0}) break;
    cursor = next->second + 1;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      Describe(), ": no free range of ", Hex(size), " bytes aligned to ", Hex(alignment), " (",
      Hex(free_bytes()), " bytes free in ", used_.size(), " allocations)"));
}

absl::Status AddressAllocator::Reserve(uint64_t start, uint64_t size) {
  std::optional<uint64_t> last = RangeLast(start, size);
  const std::string what =
      absl::StrCat(Describe(), ": reserve [", Hex(start), ", +", Hex(size), ")");
  if (!last) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": size is zero or it wraps past 2^64"));
  }
  if (start < base_ || *last > last_) {
    return absl::OutOfRangeError(absl::StrCat(what, ": outside the window"));
  }
  auto next = used_.upper_bound(*last);
  if (next != used_.begin() && std::prev(next)->second >= start) {
    auto prev = std::prev(next);
    return absl::AlreadyExistsError(
        absl::StrCat(what, ": overlaps [", Hex(prev->first), ", ", Hex(prev->second), "]"));
  }
  used_.emplace(start, *last);
  return absl::OkStatus();
}

absl::Status AddressAllocator::Free(uint64_t start) {
  if (used_.erase(start) == 0) {
    return absl::NotFoundError(absl::StrCat(Describe(), ": no allocation starts at ", Hex(start)));
  }
  return absl::OkStatus();
}

uint64_t AddressAllocator::free_bytes() const {
  // Count in "bytes minus one" so that neither a full 2^64 window nor one allocation covering it
  // overflows: the window holds span_m1 + 1 bytes, the allocations used_m1 + 1.
  const uint64_t span_m1 = last_ - base_;
  if (used_.empty()) return span_m1 == ~uint64_t{0} ? span_m1 : span_m1 + 1;  // Saturates.
  uint64_t used_m1 = used_.size() - 1;
  for (const auto& [start, last] : used_) used_m1 += last - start;
  return span_m1 - used_m1;
}

}  // namespace vmmkit
