#include "examples/virtio_echo.h"

#include <string>
#include <utility>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::examples {
namespace {

using ::testing::ElementsAre;
using virtio::testing::DriverQueue;
using virtio::testing::Used;

class VirtioEchoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_.emplace(virtio::testing::TestGuestMemory(1 << 20));
    dma_.emplace(*memory_);
  }
  void Put(uint64_t gpa, const std::string& s) {
    ASSERT_OK(
        memory_->Write(GuestAddress(gpa),
                       absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size())));
  }
  std::string Get(uint64_t gpa, size_t n) {
    std::string s(n, '\0');
    EXPECT_OK(memory_->Read(GuestAddress(gpa),
                            absl::MakeSpan(reinterpret_cast<uint8_t*>(s.data()), s.size())));
    return s;
  }

  std::optional<GuestMemory> memory_;
  std::optional<IdentityDmaSpace> dma_;
};

TEST_F(VirtioEchoTest, EchoesEachRequestAcrossItsBuffers) {
  DriverQueue driver(*memory_, GuestAddress(0x1000), 16);
  ASSERT_OK_AND_ASSIGN(virtio::SplitQueue queue,
                       virtio::SplitQueue::Create(driver.config(/*event_idx=*/true)));
  EchoDevice echo(*dma_, queue);
  driver.SetUsedEvent(0);

  // "hello, " + "virtio" in two readable buffers; the answer split over 4 + 16 bytes.
  Put(0x10000, "hello, ");
  Put(0x10100, "virtio");
  const uint16_t a = driver.Add({{GuestAddress(0x10000), 7, false},
                                 {GuestAddress(0x10100), 6, false},
                                 {GuestAddress(0x20000), 4, true},
                                 {GuestAddress(0x20100), 16, true}});
  // A second request whose answer does not fit: what fits comes back.
  Put(0x11000, "truncated");
  const uint16_t b =
      driver.Add({{GuestAddress(0x11000), 9, false}, {GuestAddress(0x21000), 5, true}});

  ASSERT_THAT(echo.Process(), IsOkAndHolds(true));  // Past used_event 0: interrupt.
  EXPECT_THAT(driver.TakeUsed(), ElementsAre(Used{a, 13}, Used{b, 5}));
  EXPECT_EQ(Get(0x20000, 4) + Get(0x20100, 9), "HELLO, VIRTIO");
  EXPECT_EQ(Get(0x21000, 5), "TRUNC");
  EXPECT_EQ(echo.requests(), 2u);
  // Nothing new: no interrupt.
  EXPECT_THAT(echo.Process(), IsOkAndHolds(false));
}

TEST_F(VirtioEchoTest, ABrokenRingStopsTheDevice) {
  DriverQueue driver(*memory_, GuestAddress(0x1000), 16);
  ASSERT_OK_AND_ASSIGN(virtio::SplitQueue queue, virtio::SplitQueue::Create(driver.config()));
  EchoDevice echo(*dma_, queue);
  // A request whose buffer lies outside guest RAM.
  driver.Add({{GuestAddress(1 << 20), 8, false}, {GuestAddress(0x20000), 8, true}});
  EXPECT_THAT(echo.Process(), StatusIs(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace vmmkit::examples
