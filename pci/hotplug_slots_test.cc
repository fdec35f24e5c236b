#include "pci/hotplug_slots.h"

#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::pci {
namespace {

using ::testing::ElementsAre;

class HotplugSlotsTest : public ::testing::Test {
 protected:
  uint32_t Read(uint64_t offset, size_t size = 4) {
    uint8_t buf[8] = {};
    slots_.Read(offset, absl::MakeSpan(buf, size));
    uint32_t v;
    std::memcpy(&v, buf, 4);
    return v;
  }
  void Write(uint64_t offset, uint32_t v, size_t size = 4) {
    uint8_t buf[8] = {};
    std::memcpy(buf, &v, 4);
    slots_.Write(offset, absl::MakeConstSpan(buf, size));
  }
  int notified_ = 0;
  uint32_t seen_at_notify_ = 0;
  std::vector<int> ejected_;
  HotplugSlots slots_{[this] {
                        ++notified_;
                        // The bit is latched before the event is raised: a guest that runs
                        // its scan at once finds it.
                        uint8_t buf[4];
                        slots_.Read(HotplugSlots::kPciu, absl::MakeSpan(buf));
                        std::memcpy(&seen_at_notify_, buf, 4);
                      },
                      [this](uint8_t slot) { ejected_.push_back(slot); }};
};

TEST_F(HotplugSlotsTest, SlotsLatchNotifyAndClearOnRead) {
  slots_.DeviceAdded(3);
  EXPECT_EQ(notified_, 1);
  EXPECT_EQ(seen_at_notify_, 1u << 3);
  slots_.DeviceAdded(4);
  slots_.RequestEject(5);
  slots_.RequestEject(6);
  EXPECT_EQ(notified_, 4);
  EXPECT_EQ(Read(HotplugSlots::kPcid), (1u << 5) | (1u << 6));
  EXPECT_EQ(Read(HotplugSlots::kPcid), 0u) << "read clears";
  EXPECT_EQ(Read(HotplugSlots::kPciu), 0u) << "slot 4's bit was read by the notify above";
}

TEST_F(HotplugSlotsTest, EjectWritesReportEachSlotButNeverTheHostBridge) {
  Write(HotplugSlots::kPcej, (1u << 3) | (1u << 7) | 1u);
  EXPECT_THAT(ejected_, ElementsAre(3, 7));
}

TEST_F(HotplugSlotsTest, ACancelledEjectIsNotSeenByTheGuest) {
  slots_.RequestEject(4);
  slots_.CancelEject(4);
  EXPECT_EQ(Read(HotplugSlots::kPcid), 0u);
}

TEST_F(HotplugSlotsTest, HostileAccessesChangeNothing) {
  slots_.DeviceAdded(0);  // The host bridge: not a slot.
  slots_.DeviceAdded(32);
  slots_.RequestEject(0);
  EXPECT_EQ(notified_, 0);
  slots_.RequestEject(2);
  EXPECT_EQ(Read(HotplugSlots::kPcid, 1), 0u) << "byte reads return nothing and clear nothing";
  EXPECT_EQ(Read(HotplugSlots::kPcid + 1), 0u) << "misaligned";
  EXPECT_EQ(Read(HotplugSlots::kPcid), 1u << 2);
  Write(HotplugSlots::kPcej, 1u << 3, 2);   // Partial write: ignored.
  Write(HotplugSlots::kPciu, 1u << 3);      // Read-only register.
  Write(HotplugSlots::kPcej + 4, 1u << 3);  // Past the block.
  EXPECT_TRUE(ejected_.empty());
  EXPECT_EQ(Read(HotplugSlots::kPciu), 0u);
}

}  // namespace
}  // namespace vmmkit::pci
