#include "virtio/device_status.h"

#include "gtest/gtest.h"

namespace vmmkit::virtio {
namespace {

constexpr uint64_t kDeviceFeature = uint64_t{1} << 9;  // A device type's own bit (blk's FLUSH).
constexpr uint64_t kOffered = kFeatureVersion1 | kFeatureEventIdx | kDeviceFeature;

// Linux's order: ACKNOWLEDGE, DRIVER, features, FEATURES_OK (read back), DRIVER_OK.
TEST(DeviceStatusTest, NegotiatesAsLinuxDoes) {
  DeviceStatus d(kOffered);
  EXPECT_EQ(d.OfferedWord(0), static_cast<uint32_t>(kFeatureEventIdx | kDeviceFeature));
  EXPECT_EQ(d.OfferedWord(1), 1u);  // VERSION_1 is bit 32.
  EXPECT_EQ(d.OfferedWord(2), 0u);
  EXPECT_EQ(d.WriteStatus(kStatusAcknowledge), StatusEvent::kNone);
  EXPECT_EQ(d.WriteStatus(kStatusAcknowledge | kStatusDriver), StatusEvent::kNone);
  d.AcceptWord(0, static_cast<uint32_t>(kDeviceFeature));
  d.AcceptWord(1, 1);
  EXPECT_EQ(d.AcceptedWord(0), static_cast<uint32_t>(kDeviceFeature));
  EXPECT_EQ(d.WriteStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk),
            StatusEvent::kFeaturesAccepted);
  EXPECT_EQ(d.status(), kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  EXPECT_EQ(d.accepted(), kFeatureVersion1 | kDeviceFeature);
  EXPECT_TRUE(d.Accepted(kDeviceFeature));
  EXPECT_FALSE(d.Accepted(kFeatureEventIdx));
  // Features are fixed from FEATURES_OK on.
  d.AcceptWord(0, static_cast<uint32_t>(kFeatureEventIdx));
  EXPECT_EQ(d.accepted(), kFeatureVersion1 | kDeviceFeature);
  EXPECT_EQ(d.WriteStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk),
            StatusEvent::kDriverOk);
  EXPECT_TRUE(d.driver_ok());
}

TEST(DeviceStatusTest, RefusesFeaturesNotOfferedOrWithoutVersion1) {
  DeviceStatus d(kOffered);
  d.AcceptWord(1, 1 | 2);  // VERSION_1 and ACCESS_PLATFORM, which is not offered.
  EXPECT_EQ(d.WriteStatus(kStatusFeaturesOk), StatusEvent::kFeaturesRefused);
  EXPECT_EQ(d.status() & kStatusFeaturesOk, 0);
  // DRIVER_OK without FEATURES_OK is refused too.
  EXPECT_EQ(d.WriteStatus(kStatusDriverOk), StatusEvent::kNone);
  EXPECT_FALSE(d.driver_ok());

  DeviceStatus legacy(kOffered);
  legacy.AcceptWord(0, static_cast<uint32_t>(kDeviceFeature));  // No VERSION_1: a legacy driver.
  EXPECT_EQ(legacy.WriteStatus(kStatusFeaturesOk), StatusEvent::kFeaturesRefused);
  legacy.AcceptWord(1, 1);  // It may try again.
  EXPECT_EQ(legacy.WriteStatus(kStatusFeaturesOk), StatusEvent::kFeaturesAccepted);
}

TEST(DeviceStatusTest, OnlyAResetClearsBits) {
  DeviceStatus d(kOffered);
  d.AcceptWord(1, 1);
  d.WriteStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  EXPECT_EQ(d.WriteStatus(kStatusAcknowledge), StatusEvent::kNone);  // Clearing is ignored.
  EXPECT_TRUE(d.driver_ok());
  EXPECT_EQ(d.WriteStatus(0), StatusEvent::kReset);
  EXPECT_EQ(d.status(), 0);
  EXPECT_EQ(d.accepted(), 0u);
  d.AcceptWord(0, 5);  // Negotiation starts over.
  EXPECT_EQ(d.AcceptedWord(0), 5u);
}

TEST(DeviceStatusTest, NeedsResetIsTheDevicesAndToldOnlyAfterDriverOk) {
  DeviceStatus d(kOffered);
  EXPECT_EQ(d.WriteStatus(kStatusNeedsReset | kStatusAcknowledge), StatusEvent::kNone);
  EXPECT_EQ(d.status(), kStatusAcknowledge);  // The driver cannot set it.
  EXPECT_FALSE(d.NeedsReset());               // Not live yet: nothing to tell.
  EXPECT_EQ(d.status() & kStatusNeedsReset, kStatusNeedsReset);
  d.WriteStatus(0);
  d.AcceptWord(1, 1);
  d.WriteStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  EXPECT_TRUE(d.NeedsReset());
}

TEST(DeviceStatusTest, FailedAndConfigGeneration) {
  DeviceStatus d(kOffered);
  EXPECT_EQ(d.WriteStatus(kStatusAcknowledge | kStatusFailed), StatusEvent::kFailed);
  EXPECT_EQ(d.status() & kStatusFailed, kStatusFailed);
  const uint8_t g = d.config_generation();
  d.ConfigChanged();
  EXPECT_EQ(d.config_generation(), static_cast<uint8_t>(g + 1));
}

}  // namespace
}  // namespace vmmkit::virtio
