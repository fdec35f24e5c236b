// File: devices/bus.h
// -----------------------------------------------------------------------------
// A Bus routes guest accesses to emulated devices: one Bus for port I/O, one for MMIO. Devices
// occupy non-overlapping ranges; an access is delivered to the device whose range contains its
// first byte, with the offset into that range. The guest decides addresses and sizes, so the
// bus checks that the whole access lies inside the device's range; anything else is "no device"
// and the caller gives the guest all-ones (reads) or drops it (writes), as real hardware does.
//
//   Bus pio("pio");
//   RETURN_IF_ERROR(pio.Insert(serial, 0x3f8, 8));
//   if (!pio.Read(port, data)) std::fill(data.begin(), data.end(), 0xff);
//
// Thread-safety: Read/Write may run concurrently on every vCPU thread; Insert/Remove take an
// exclusive lock, so a device can be added or removed while the guest runs. Devices do their own
// locking for their state.

#ifndef VMMKIT_DEVICES_BUS_H_
#define VMMKIT_DEVICES_BUS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "base/mutex.h"

namespace vmmkit::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the device's base; data.size() is 1..8 bytes.
  virtual void Read(uint64_t offset, absl::Span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, absl::Span<const uint8_t> data) = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // ALREADY_EXISTS if [base, base + size) overlaps a device; INVALID_ARGUMENT for size 0/wrap.
  absl::Status Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t size);
  // NOT_FOUND if no device starts at `base`.
  absl::Status Remove(uint64_t base);

  // False if no device covers the whole access.
  bool Read(uint64_t address, absl::Span<uint8_t> data) const;
  bool Write(uint64_t address, absl::Span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t last;  // Inclusive.
    std::shared_ptr<BusDevice> device;
  };
  // The device and offset for an access, or null.
  std::pair<std::shared_ptr<BusDevice>, uint64_t> Find(uint64_t address, size_t size) const;

  const std::string name_;
  mutable SharedMutex mu_;
  std::map<uint64_t, Range> ranges_ ABSL_GUARDED_BY(mu_);  // Keyed by base.
};

}  // namespace vmmkit::devices

#endif  // VMMKIT_DEVICES_BUS_H_
