#include "devices/bus.h"

#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::devices {
namespace {

class Recorder : public BusDevice {
 public:
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    reads.push_back(offset);
    std::fill(data.begin(), data.end(), 0x42);
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    writes.push_back({offset, data.size()});
  }
  std::vector<uint64_t> reads;
  std::vector<std::pair<uint64_t, size_t>> writes;
};

TEST(BusTest, RoutesWithOffsetsAndChecksTheWholeAccess) {
  Bus bus("pio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_OK(bus.Insert(dev, 0x3f8, 8));
  uint8_t b[4];
  EXPECT_TRUE(bus.Read(0x3fd, absl::MakeSpan(b, 1)));
  EXPECT_EQ(b[0], 0x42);
  EXPECT_TRUE(bus.Write(0x3f8, absl::MakeSpan(b, 4)));
  EXPECT_TRUE(bus.Read(0x3fc, absl::MakeSpan(b, 4)));   // Last 4 bytes: inside.
  EXPECT_FALSE(bus.Read(0x3fd, absl::MakeSpan(b, 4)));  // Crosses the end: no device.
  EXPECT_FALSE(bus.Read(0x3f7, absl::MakeSpan(b, 1)));
  EXPECT_FALSE(bus.Write(0x400, absl::MakeSpan(b, 1)));
  EXPECT_THAT(dev->reads, ::testing::ElementsAre(5, 4));
  EXPECT_EQ(dev->writes.size(), 1u);
}

TEST(BusTest, OverlapsAndRemoval) {
  Bus bus("mmio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_OK(bus.Insert(dev, 0x1000, 0x1000));
  EXPECT_THAT(bus.Insert(dev, 0x1fff, 1), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(bus.Insert(dev, 0x0, 0x1001), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(bus.Insert(dev, 0x5000, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bus.Insert(dev, ~uint64_t{0}, 2), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(bus.Insert(dev, 0x2000, 0x10));
  EXPECT_OK(bus.Remove(0x1000));
  EXPECT_THAT(bus.Remove(0x1000), StatusIs(absl::StatusCode::kNotFound));
  uint8_t b;
  EXPECT_FALSE(bus.Read(0x1000, absl::MakeSpan(&b, 1)));
  // A device at the very top of the address space.
  EXPECT_OK(bus.Insert(dev, ~uint64_t{0} - 7, 8));
  EXPECT_TRUE(bus.Read(~uint64_t{0}, absl::MakeSpan(&b, 1)));
}

}  // namespace
}  // namespace vmmkit::devices
