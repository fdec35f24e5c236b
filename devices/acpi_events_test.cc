#include "devices/acpi_events.h"

#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::devices {
namespace {

using ::testing::ElementsAre;

class AcpiEventsTest : public ::testing::Test {
 protected:
  uint32_t Read(uint64_t offset, size_t size = 4) {
    uint8_t buf[8] = {};
    events_.Read(offset, absl::MakeSpan(buf, size));
    uint32_t v;
    std::memcpy(&v, buf, 4);
    return v;
  }
  void Write(uint64_t offset, uint32_t v, size_t size = 4) {
    uint8_t buf[8] = {};
    std::memcpy(buf, &v, 4);
    events_.Write(offset, absl::MakeConstSpan(buf, size));
  }
  int interrupts_ = 0;
  std::vector<int> ejected_;
  AcpiEvents events_{[this] { ++interrupts_; }, [this](uint8_t slot) { ejected_.push_back(slot); }};
};

TEST_F(AcpiEventsTest, EventsLatchRaiseTheInterruptAndClearOnRead) {
  events_.PressPowerButton();
  EXPECT_EQ(interrupts_, 1);
  events_.DeviceAdded(3);
  events_.RequestEject(5);
  EXPECT_EQ(interrupts_, 3);
  EXPECT_EQ(Read(AcpiEvents::kGsta), AcpiEvents::kPowerButton | AcpiEvents::kPciHotplug);
  EXPECT_EQ(Read(AcpiEvents::kGsta), 0u) << "read clears";
  EXPECT_EQ(Read(AcpiEvents::kPciu), 1u << 3);
  EXPECT_EQ(Read(AcpiEvents::kPcid), 1u << 5);
  EXPECT_EQ(Read(AcpiEvents::kPciu), 0u);
  EXPECT_EQ(Read(AcpiEvents::kPcid), 0u);
}

TEST_F(AcpiEventsTest, EjectWritesReportEachSlotButNeverTheHostBridge) {
  Write(AcpiEvents::kPcej, (1u << 3) | (1u << 7) | 1u);
  EXPECT_THAT(ejected_, ElementsAre(3, 7));
}

TEST_F(AcpiEventsTest, ACancelledEjectIsNotSeenByTheGuest) {
  events_.RequestEject(4);
  events_.CancelEject(4);
  EXPECT_EQ(Read(AcpiEvents::kPcid), 0u);
}

TEST_F(AcpiEventsTest, HostileAccessesChangeNothing) {
  events_.DeviceAdded(0);  // The host bridge: not a slot.
  events_.DeviceAdded(32);
  EXPECT_EQ(interrupts_, 0);
  events_.RequestEject(2);
  EXPECT_EQ(Read(AcpiEvents::kPcid, 1), 0u) << "byte reads return nothing and clear nothing";
  EXPECT_EQ(Read(AcpiEvents::kPcid + 1), 0u) << "misaligned";
  EXPECT_EQ(Read(AcpiEvents::kPcid), 1u << 2);
  Write(AcpiEvents::kPcej, 1u << 3, 2);  // Partial write: ignored.
  Write(AcpiEvents::kPciu, 1u << 3);     // Read-only register.
  EXPECT_TRUE(ejected_.empty());
  EXPECT_EQ(Read(AcpiEvents::kPciu), 0u);
}

}  // namespace
}  // namespace vmmkit::devices
