// File: memory/address.h
// -----------------------------------------------------------------------------
// Strongly typed 64-bit addresses. `GuestAddress` (guest-physical) and `Iova` (I/O virtual, as a
// device sees it behind an IOMMU) are distinct types, so passing one where the other is expected
// does not compile. Arithmetic is checked: a sum that would wrap past 2^64 is an error, never a
// silent wrap, because the operands are usually guest-controlled.
//
//   GuestAddress base(0x100000);
//   ASSIGN_OR_RETURN(GuestAddress end, base.CheckedAdd(size));   // OUT_OF_RANGE on wrap
//   if (auto next = base.TryAdd(4096)) { ... }                     // hot paths: no Status

#ifndef VMMKIT_MEMORY_ADDRESS_H_
#define VMMKIT_MEMORY_ADDRESS_H_

#include <compare>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/numeric/bits.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace vmmkit {

template <typename Tag>
class Address {
 public:
  constexpr Address() = default;
  constexpr explicit Address(uint64_t raw) : raw_(raw) {}

  constexpr uint64_t raw() const { return raw_; }

  // this + offset, or nullopt if the sum does not fit in 64 bits.
  constexpr std::optional<Address> TryAdd(uint64_t offset) const {
    uint64_t sum;
    if (__builtin_add_overflow(raw_, offset, &sum)) return std::nullopt;
    return Address(sum);
  }
  // this + offset; OUT_OF_RANGE if the sum wraps past 2^64.
  absl::StatusOr<Address> CheckedAdd(uint64_t offset) const {
    if (auto sum = TryAdd(offset)) return *sum;
    return absl::OutOfRangeError(
        absl::StrCat(Tag::kName, " ", ToString(), " + 0x", absl::Hex(offset), " wraps past 2^64"));
  }
  // this - base; OUT_OF_RANGE if base lies above this.
  absl::StatusOr<uint64_t> CheckedOffsetFrom(Address base) const {
    if (base.raw_ > raw_) {
      return absl::OutOfRangeError(
          absl::StrCat(Tag::kName, " ", ToString(), " lies below ", base.ToString()));
    }
    return raw_ - base.raw_;
  }

  // `alignment` must be a power of two (checked by the callers that take it from outside).
  constexpr bool IsAligned(uint64_t alignment) const { return (raw_ & (alignment - 1)) == 0; }
  constexpr Address AlignDown(uint64_t alignment) const { return Address(raw_ & ~(alignment - 1)); }
  // The next multiple of `alignment` at or above this; nullopt if that would wrap.
  constexpr std::optional<Address> TryAlignUp(uint64_t alignment) const {
    auto bumped = TryAdd(alignment - 1);
    if (!bumped) return std::nullopt;
    return bumped->AlignDown(alignment);
  }

  std::string ToString() const { return absl::StrCat("0x", absl::Hex(raw_)); }

  friend constexpr auto operator<=>(Address, Address) = default;
  friend std::ostream& operator<<(std::ostream& os, Address a) { return os << a.ToString(); }
  template <typename H>
  friend H AbslHashValue(H h, Address a) {
    return H::combine(std::move(h), a.raw_);
  }

 private:
  uint64_t raw_ = 0;
};

struct GuestPhysicalTag {
  static constexpr const char* kName = "guest address";
};
struct IovaTag {
  static constexpr const char* kName = "IOVA";
};

// A guest-physical address.
using GuestAddress = Address<GuestPhysicalTag>;
// An I/O virtual address: what a DMA-capable device emits, translated by an IOMMU.
using Iova = Address<IovaTag>;

// True if `v` is a non-zero power of two (a valid alignment or page size).
constexpr bool IsPowerOfTwo(uint64_t v) { return absl::has_single_bit(v); }

// The inclusive last address of [start, start + size), or nullopt if size is 0 or the range
// extends past 2^64. A range may end exactly at 2^64: its last byte is 0xffff'ffff'ffff'ffff.
constexpr std::optional<uint64_t> RangeLast(uint64_t start, uint64_t size) {
  if (size == 0) return std::nullopt;
  uint64_t last;
  if (__builtin_add_overflow(start, size - 1, &last)) return std::nullopt;
  return last;
}

}  // namespace vmmkit

#endif  // VMMKIT_MEMORY_ADDRESS_H_
