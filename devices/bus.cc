#include "devices/bus.h"

#include <iterator>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::devices {

absl::Status Bus::Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t size) {
  if (device == nullptr || size == 0 || base + (size - 1) < base) {
    return absl::InvalidArgumentError(absl::StrCat(name_, " bus: cannot insert [", Hex(base), ", +",
                                                   Hex(size), "): null device, size 0 or wrap"));
  }
  const uint64_t last = base + (size - 1);
  WriterLock lock(mu_);
  auto next = ranges_.upper_bound(last);
  if (next != ranges_.begin() && std::prev(next)->second.last >= base) {
    return absl::AlreadyExistsError(absl::StrCat(name_, " bus: [", Hex(base), ", ", Hex(last),
                                                 "] overlaps the device at ",
                                                 Hex(std::prev(next)->first)));
  }
  ranges_.emplace(base, Range{last, std::move(device)});
  return absl::OkStatus();
}

absl::Status Bus::Remove(uint64_t base) {
  WriterLock lock(mu_);
  if (ranges_.erase(base) == 0) {
    return absl::NotFoundError(absl::StrCat(name_, " bus: no device at ", Hex(base)));
  }
  return absl::OkStatus();
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> Bus::Find(uint64_t address, size_t size) const {
  ReaderLock lock(mu_);
  auto it = ranges_.upper_bound(address);
  if (it == ranges_.begin() || size == 0) return {nullptr, 0};
  --it;
  const uint64_t offset = address - it->first;
  // The whole access must lie in the range (checked without overflow).
  if (address > it->second.last || size - 1 > it->second.last - address) return {nullptr, 0};
  // A copy of the shared_ptr keeps the device alive if it is removed during the access.
  return {it->second.device, offset};
}

bool Bus::Read(uint64_t address, absl::Span<uint8_t> data) const {
  auto [device, offset] = Find(address, data.size());
  if (device == nullptr) return false;
  device->Read(offset, data);
  return true;
}

bool Bus::Write(uint64_t address, absl::Span<const uint8_t> data) const {
  auto [device, offset] = Find(address, data.size());
  if (device == nullptr) return false;
  device->Write(offset, data);
  return true;
}

}  // namespace vmmkit::devices
