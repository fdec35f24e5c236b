#include "devices/acpi_events.h"

#include <cstring>

#include "gtest/gtest.h"

namespace vmmkit::devices {
namespace {

class AcpiEventsTest : public ::testing::Test {
 protected:
  uint32_t Read(uint64_t offset, size_t size = 4) {
    uint8_t buf[8] = {};
    events_.Read(offset, absl::MakeSpan(buf, size));
    uint32_t v;
    std::memcpy(&v, buf, 4);
    return v;
  }
  int interrupts_ = 0;
  AcpiEvents events_{[this] { ++interrupts_; }};
};

TEST_F(AcpiEventsTest, EventsLatchRaiseTheInterruptAndClearOnRead) {
  events_.PressPowerButton();
  EXPECT_EQ(interrupts_, 1);
  events_.Raise(AcpiEvents::kPciHotplug);
  EXPECT_EQ(interrupts_, 2);
  EXPECT_EQ(Read(AcpiEvents::kGsta), AcpiEvents::kPowerButton | AcpiEvents::kPciHotplug);
  EXPECT_EQ(Read(AcpiEvents::kGsta), 0u) << "read clears";
}

TEST_F(AcpiEventsTest, HostileAccessesChangeNothing) {
  events_.PressPowerButton();
  EXPECT_EQ(Read(AcpiEvents::kGsta, 1), 0u) << "byte reads return nothing and clear nothing";
  EXPECT_EQ(Read(AcpiEvents::kGsta + 1, 2), 0u) << "misaligned";
  const uint32_t ones = ~0u;
  events_.Write(AcpiEvents::kGsta, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&ones), 4));
  EXPECT_EQ(Read(AcpiEvents::kGsta), AcpiEvents::kPowerButton) << "writes neither set nor clear";
}

}  // namespace
}  // namespace vmmkit::devices
