// File: virtio/device_status.h
// -----------------------------------------------------------------------------
// DeviceStatus is the transport-independent part of a virtio 1.x device's life cycle: feature
// negotiation (the features it offers, the ones the driver accepts, in the 32-bit words both the
// PCI and MMIO transports present), the device status byte and its rules, reset, and the
// configuration generation. A transport (virtio-pci's common configuration, virtio-mmio's
// registers) forwards the driver's accesses here and acts on what WriteStatus reports.
//
//   DeviceStatus status(kFeatureVersion1 | kFeatureEventIdx | kBlkFlush);
//   status.AcceptWord(0, low); status.AcceptWord(1, high);     // the driver's feature writes
//   switch (status.WriteStatus(value)) {
//     case StatusEvent::kDriverOk: start the queues with status.accepted(); break;
//     case StatusEvent::kReset: stop the queues, forget their configuration; break;
//     ...
//   }
//
// The rules, as the spec gives them to the device: the driver cannot clear a status bit except
// by writing 0 (a reset); FEATURES_OK stays clear when the driver accepted a feature that was not
// offered or did not accept VIRTIO_F_VERSION_1 (the driver reads it back and gives up); features
// are fixed from FEATURES_OK on; DRIVER_OK before FEATURES_OK is refused; DEVICE_NEEDS_RESET is
// the device's to set (NeedsReset), not the driver's.
//
// Thread-safety: none; the transport serializes accesses (its device lock).

#ifndef VMMKIT_VIRTIO_DEVICE_STATUS_H_
#define VMMKIT_VIRTIO_DEVICE_STATUS_H_

#include <cstdint>

namespace vmmkit::virtio {

// Feature bits every device type shares (virtio 1.x, "Reserved Feature Bits").
inline constexpr uint64_t kFeatureIndirectDesc = uint64_t{1} << 28;
inline constexpr uint64_t kFeatureEventIdx = uint64_t{1} << 29;
inline constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;
// The device's memory accesses go through the platform's IOMMU (the vIOMMU's DmaSpace).
inline constexpr uint64_t kFeatureAccessPlatform = uint64_t{1} << 33;

// Device status bits (virtio 1.x, "Device Status Field").
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;

// What a status write did, for the transport to act on.
enum class StatusEvent {
  kNone,              // Bits added that need no action (ACKNOWLEDGE, DRIVER), or nothing.
  kReset,             // The driver wrote 0: stop the device and forget the queues' setup.
  kFeaturesAccepted,  // FEATURES_OK is now set: accepted() is final.
  kFeaturesRefused,   // The driver asked for FEATURES_OK with features the device cannot take.
  kDriverOk,          // DRIVER_OK is now set: the device may use its queues.
  kFailed,            // The driver gave up (FAILED).
};

class DeviceStatus {
 public:
  // `offered` should include VIRTIO_F_VERSION_1: without it no driver can finish negotiation.
  explicit DeviceStatus(uint64_t offered) : offered_(offered) {}

  uint64_t offered() const { return offered_; }
  uint64_t accepted() const { return accepted_; }
  bool Accepted(uint64_t feature) const { return (accepted_ & feature) == feature; }
  uint8_t status() const { return status_; }
  bool driver_ok() const { return status_ & kStatusDriverOk; }
  // Bumped whenever the device's configuration changes (ConfigChanged), so the driver can read a
  // consistent configuration.
  uint8_t config_generation() const { return config_generation_; }

  // Word `select` (0: bits 0-31, 1: bits 32-63) of the offered features; 0 for any other word.
  uint32_t OfferedWord(uint32_t select) const;
  // Word `select` of the features the driver accepted so far.
  uint32_t AcceptedWord(uint32_t select) const;
  // The driver writes word `select` of its accepted features. Ignored from FEATURES_OK on, and
  // for words beyond 1.
  void AcceptWord(uint32_t select, uint32_t value);

  StatusEvent WriteStatus(uint8_t value);
  // The device hit an error it cannot recover from without a reset (a broken queue): sets
  // DEVICE_NEEDS_RESET. Returns whether the driver should be told now (DRIVER_OK is set: a
  // configuration-change interrupt), as the spec requires.
  bool NeedsReset();
  void ConfigChanged() { ++config_generation_; }

 private:
  const uint64_t offered_;
  uint64_t accepted_ = 0;
  uint8_t status_ = 0;
  uint8_t config_generation_ = 0;
};

}  // namespace vmmkit::virtio

#endif  // VMMKIT_VIRTIO_DEVICE_STATUS_H_
