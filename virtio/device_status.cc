#include "virtio/device_status.h"

namespace vmmkit::virtio {

uint32_t DeviceStatus::OfferedWord(uint32_t select) const {
  if (select > 1) return 0;
  return static_cast<uint32_t>(offered_ >> (32 * select));
}

uint32_t DeviceStatus::AcceptedWord(uint32_t select) const {
  if (select > 1) return 0;
  return static_cast<uint32_t>(accepted_ >> (32 * select));
}

void DeviceStatus::AcceptWord(uint32_t select, uint32_t value) {
  if (select > 1 || (status_ & kStatusFeaturesOk)) return;
  const uint32_t shift = 32 * select;
  accepted_ = (accepted_ & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{value} << shift);
}

StatusEvent DeviceStatus::WriteStatus(uint8_t value) {
  if (value == 0) {
    accepted_ = 0;
    status_ = 0;
    return StatusEvent::kReset;
  }
  // Only added bits count; NEEDS_RESET is the device's.
  const uint8_t added = static_cast<uint8_t>(value & ~status_ & ~kStatusNeedsReset);
  if (added & kStatusFailed) {
    status_ |= kStatusFailed;
    return StatusEvent::kFailed;
  }
  StatusEvent event = StatusEvent::kNone;
  status_ |= added & (kStatusAcknowledge | kStatusDriver);
  if (added & kStatusFeaturesOk) {
    if ((accepted_ & ~offered_) != 0 || !(accepted_ & kFeatureVersion1)) {
      return StatusEvent::kFeaturesRefused;  // FEATURES_OK stays clear, and so DRIVER_OK.
    }
    status_ |= kStatusFeaturesOk;
    event = StatusEvent::kFeaturesAccepted;
  }
  if ((added & kStatusDriverOk) && (status_ & kStatusFeaturesOk)) {
    status_ |= kStatusDriverOk;
    event = StatusEvent::kDriverOk;
  }
  return event;
}

bool DeviceStatus::NeedsReset() {
  status_ |= kStatusNeedsReset;
  return (status_ & kStatusDriverOk) != 0;
}

}  // namespace vmmkit::virtio
