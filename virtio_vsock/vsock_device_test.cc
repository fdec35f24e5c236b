#include "virtio_vsock/vsock_device.h"

#include <cstring>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio_vsock {
namespace {

using ::testing::HasSubstr;

TEST(VsockDeviceTest, RefusesReservedCidsBeforeTouchingTheHost) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 20);
  for (uint64_t cid : {uint64_t{0}, uint64_t{2}, kMaxGuestCid + 1, uint64_t{1} << 40}) {
    EXPECT_THAT(VsockDevice::Create(cid, memory),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("guest CID")))
        << cid;
  }
}

TEST(VsockDeviceTest, OffersItsCidOrSaysTheHostHasNoVhostVsock) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 20);
  absl::StatusOr<std::shared_ptr<VsockDevice>> d = VsockDevice::Create(0x1234567, memory);
  if (!d.ok()) {
    EXPECT_THAT(d.status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("/dev/vhost-vsock")));
    GTEST_SKIP() << "no vhost-vsock here: " << d.status();
  }
  EXPECT_EQ((*d)->device_type(), 19);
  EXPECT_EQ((*d)->num_queues(), 3);
  uint8_t config[8];
  (*d)->ReadConfig(0, config);
  uint64_t cid;
  std::memcpy(&cid, config, 8);
  EXPECT_EQ(cid, 0x1234567u);
  // The CID is this VM's until the device goes.
  EXPECT_THAT(VsockDevice::Create(0x1234567, memory),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("in use")));
}

}  // namespace
}  // namespace vmmkit::virtio_vsock
