#include "vmm/exit_dispatch.h"

#include <linux/kvm.h>

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

using ::testing::ElementsAre;

// A register file of 16 bytes that counts accesses.
class Regs : public devices::BusDevice {
 public:
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    ++reads;
    for (size_t i = 0; i < data.size(); ++i) data[i] = bytes[(offset + i) % bytes.size()];
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    ++writes;
    for (size_t i = 0; i < data.size(); ++i) bytes[(offset + i) % bytes.size()] = data[i];
  }
  std::array<uint8_t, 16> bytes{};
  int reads = 0, writes = 0;
};

class NoRoutes : public irq::IoapicSink {
 public:
  absl::Status SetRoute(uint32_t, std::optional<irq::MsiMessage>) override {
    return absl::OkStatus();
  }
  absl::Status Raise(uint32_t) override { return absl::OkStatus(); }
};

class DispatchExitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pio_.Insert(port_regs_, 0x100, 16).ok());
    ASSERT_TRUE(mmio_.Insert(mmio_regs_, 0x1000, 16).ok());
  }
  ExitAction Dispatch(const kvm::VcpuExit& exit, irq::Ioapic* ioapic = nullptr) {
    return DispatchExit(exit, pio_, mmio_, ioapic);
  }

  devices::Bus pio_{"pio"}, mmio_{"mmio"};
  std::shared_ptr<Regs> port_regs_ = std::make_shared<Regs>();
  std::shared_ptr<Regs> mmio_regs_ = std::make_shared<Regs>();
};

TEST_F(DispatchExitTest, StringOutWritesEachAccessInTurn) {
  std::array<uint8_t, 6> data = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(Dispatch(kvm::exit::IoOut{
                .port = 0x100, .size = 2, .count = 3, .data = absl::MakeSpan(data)}),
            ExitAction::kContinue);
  EXPECT_EQ(port_regs_->writes, 3);
  // Every access goes to the same port: the last one's bytes stay.
  EXPECT_EQ(port_regs_->bytes[0], 5);
  EXPECT_EQ(port_regs_->bytes[1], 6);
}

TEST_F(DispatchExitTest, StringInReadsEachAccessInTurn) {
  port_regs_->bytes[4] = 0xab;
  std::array<uint8_t, 3> data{};
  EXPECT_EQ(
      Dispatch(kvm::exit::IoIn{.port = 0x104, .size = 1, .count = 3, .data = absl::MakeSpan(data)}),
      ExitAction::kContinue);
  EXPECT_EQ(port_regs_->reads, 3);
  EXPECT_THAT(data, ElementsAre(0xab, 0xab, 0xab));
}

TEST_F(DispatchExitTest, UnclaimedReadsAreAllOnesAndWritesGoNowhere) {
  std::array<uint8_t, 4> data{};
  Dispatch(kvm::exit::IoIn{.port = 0x200, .size = 4, .count = 1, .data = absl::MakeSpan(data)});
  EXPECT_THAT(data, ElementsAre(0xff, 0xff, 0xff, 0xff));
  std::array<uint8_t, 8> mmio{};
  Dispatch(kvm::exit::MmioRead{.address = 0x100c,
                               .data = absl::MakeSpan(mmio)});  // Straddles the device's end.
  EXPECT_THAT(mmio, ElementsAre(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  Dispatch(kvm::exit::MmioWrite{.address = 0x2000, .data = absl::MakeSpan(mmio)});
  EXPECT_EQ(mmio_regs_->reads + mmio_regs_->writes, 0);
}

TEST_F(DispatchExitTest, MmioReachesTheDeviceAtItsOffset) {
  std::array<uint8_t, 2> in = {0x34, 0x12};
  Dispatch(kvm::exit::MmioWrite{.address = 0x1002, .data = in});
  std::array<uint8_t, 4> out{};
  Dispatch(kvm::exit::MmioRead{.address = 0x1000, .data = absl::MakeSpan(out)});
  EXPECT_THAT(out, ElementsAre(0, 0, 0x34, 0x12));
}

TEST_F(DispatchExitTest, EoiReachesTheIoapicAndIsIgnoredWithoutOne) {
  NoRoutes sink;
  irq::Ioapic ioapic(sink);
  bool resampled = false;
  // Pin 3, level-triggered, vector 0x31, raised: its remote IRR is set until the EOI.
  ioapic.SetEoiHandler(3, [&] {
    resampled = true;
    return false;
  });
  const auto write = [&](uint32_t reg, uint32_t value) {
    uint32_t sel = reg;
    ioapic.Write(0x00, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&sel), 4));
    ioapic.Write(0x10, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), 4));
  };
  write(0x10 + 2 * 3, 0x31 | (1u << 15));
  ioapic.SetLevel(3, true);
  EXPECT_EQ(Dispatch(kvm::exit::IoapicEoi{.vector = 0x31}, nullptr), ExitAction::kContinue);
  EXPECT_FALSE(resampled);
  EXPECT_EQ(Dispatch(kvm::exit::IoapicEoi{.vector = 0x31}, &ioapic), ExitAction::kContinue);
  EXPECT_TRUE(resampled);
}

TEST_F(DispatchExitTest, TheRestBecomeActions) {
  EXPECT_EQ(Dispatch(kvm::exit::Hlt{}), ExitAction::kContinue);
  EXPECT_EQ(Dispatch(kvm::exit::Interrupted{}), ExitAction::kContinue);
  EXPECT_EQ(Dispatch(kvm::exit::Shutdown{}), ExitAction::kTripleFault);
  EXPECT_EQ(Dispatch(kvm::exit::SystemEvent{.type = KVM_SYSTEM_EVENT_RESET, .flags = 0}),
            ExitAction::kReset);
  EXPECT_EQ(Dispatch(kvm::exit::SystemEvent{.type = KVM_SYSTEM_EVENT_SHUTDOWN, .flags = 0}),
            ExitAction::kPowerOff);
  EXPECT_EQ(Dispatch(kvm::exit::SystemEvent{.type = KVM_SYSTEM_EVENT_CRASH, .flags = 0}),
            ExitAction::kError);
  EXPECT_EQ(Dispatch(kvm::exit::InternalError{.suberror = 1}), ExitAction::kError);
  EXPECT_EQ(Dispatch(kvm::exit::FailEntry{.hardware_entry_failure_reason = 7, .cpu = 0}),
            ExitAction::kError);
  EXPECT_EQ(Dispatch(kvm::exit::Unknown{.reason = 99}), ExitAction::kError);
}

}  // namespace
}  // namespace vmmkit::vmm
