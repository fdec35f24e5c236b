#include "vmm/virtio_function.h"

#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

using virtio_pci::VirtioPciFunction;

constexpr uint64_t kBar = 0xc0000000;
constexpr uint32_t kDeviceNumber = 7;

// Two queues, nothing behind them: the test drives only the transport's registers.
class IdleDevice : public virtio_pci::VirtioDevice {
 public:
  uint16_t device_type() const override { return 1; }
  uint32_t class_code() const override { return 0x020000; }
  uint64_t device_features() const override { return 0; }
  uint16_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 16; }
  uint32_t config_size() const override { return 8; }
  void ReadConfig(uint32_t, absl::Span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
  }
  void WriteConfig(uint32_t, absl::Span<const uint8_t>) override {}
  absl::Status Activate(virtio_pci::Activation) override { return absl::OkStatus(); }
  void QueueNotify(uint16_t) override {}
  void Reset() override {}
};

class VirtioFunctionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
    ASSERT_OK_AND_ASSIGN(machine_, Machine::Create({.memory_bytes = 64 << 20}));
    for (std::optional<EventFd>* fd : {&call_, &notify0_, &notify1_}) {
      ASSERT_OK_AND_ASSIGN(EventFd made, EventFd::Create());
      fd->emplace(std::move(made));
    }
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<VirtioPciFunction> transport,
                         VirtioPciFunction::Create(std::make_shared<IdleDevice>(), nullptr));
    // Queue 0's interrupts come from `call_`; queue 1's only through the transport.
    fn_ = std::make_shared<MachineVirtioFunction>(
        *machine_, transport, std::vector<const EventFd*>{&*notify0_, &*notify1_}, "net0",
        DirectInterrupts{
            .fds = {&*call_, nullptr}, .device_number = kDeviceNumber, .requester_id = 0x08});
    ASSERT_OK(fn_->PlaceBars([](const pci::Bar&) -> absl::StatusOr<uint64_t> { return kBar; }));
    fn_->ConfigWrite(0x04, 0x6, 0x3);  // Memory decoding, bus mastering.
    ASSERT_EQ(fn_->trapped_at(), kBar);
  }
  void Write(uint64_t offset, size_t len, uint64_t value) {
    uint8_t b[8];
    std::memcpy(b, &value, 8);
    machine_->mmio().Write(kBar + offset, absl::MakeConstSpan(b, len));
  }
  // The configuration space's byte at `at`.
  uint8_t Cfg8(uint32_t at) {
    return static_cast<uint8_t>(fn_->ConfigRead(static_cast<uint16_t>(at & ~3u)) >> (8 * (at & 3)));
  }
  // Writes the MSI-X capability's message control (dword-aligned capabilities: bits 31:16).
  void MsixControl(uint16_t value) {
    for (uint32_t at = Cfg8(0x34); at != 0; at = Cfg8(at + 1)) {
      if (Cfg8(at) == 0x11) {
        ASSERT_EQ(at % 4, 0u);
        fn_->ConfigWrite(static_cast<uint16_t>(at), uint32_t{value} << 16, 0xc);
        return;
      }
    }
    FAIL() << "no MSI-X capability";
  }
  void Vector(uint16_t v, uint64_t address, uint32_t data, bool masked) {
    const uint64_t e = VirtioPciFunction::kMsixTableOffset + 16 * v;
    Write(e, 4, address & 0xffffffff);
    Write(e + 4, 4, address >> 32);
    Write(e + 8, 4, data);
    Write(e + 12, 4, masked ? 1 : 0);
  }
  void QueueVector(uint16_t queue, uint16_t vector) {
    Write(0x16, 2, queue);
    Write(0x1a, 2, vector);
  }
  std::optional<irq::MsiMessage> Delivered(uint32_t queue) {
    MutexLock lock(machine_->lock());
    return machine_->msi_routes().delivered({kDeviceNumber, queue});
  }

  std::unique_ptr<Machine> machine_;
  std::optional<EventFd> call_, notify0_, notify1_;
  std::shared_ptr<MachineVirtioFunction> fn_;
};

TEST_F(VirtioFunctionTest, ADirectQueueIsRoutedWhileItsVectorIsUsable) {
  const size_t base = machine_->msi_route_count();
  // As Linux does it: entries programmed masked, MSI-X on, queues given vectors, then unmasked.
  Vector(1, 0xfee00000, 0x41, /*masked=*/true);
  Vector(2, 0xfee00000, 0x42, /*masked=*/true);
  MsixControl(0x8000);
  QueueVector(0, 1);
  QueueVector(1, 2);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  EXPECT_EQ(machine_->msi_route_count(), base);  // Nothing routed while masked.
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 12, 4, 0);
  Write(VirtioPciFunction::kMsixTableOffset + 32 + 12, 4, 0);
  EXPECT_EQ(fn_->direct_queues_bound(), 1u);
  EXPECT_EQ(machine_->msi_route_count(), base + 1);  // Queue 1 is not direct.
  EXPECT_EQ(Delivered(0), (irq::MsiMessage{.address = 0xfee00000, .data = 0x41}));

  // Masked: unbound (the device relays; the transport keeps the pending bit), route kept.
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 12, 4, 1);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  EXPECT_EQ(machine_->msi_route_count(), base + 1);
  ASSERT_OK(call_->Write(1));
  EXPECT_THAT(call_->Read(), IsOkAndHolds(1u));  // Nobody else took it.
  // Reprogrammed while masked, then unmasked: the new message, bound again.
  Vector(1, 0xfee01000, 0x51, /*masked=*/true);
  EXPECT_EQ(Delivered(0), (irq::MsiMessage{.address = 0xfee00000, .data = 0x41}));
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 12, 4, 0);
  EXPECT_EQ(fn_->direct_queues_bound(), 1u);
  EXPECT_EQ(Delivered(0), (irq::MsiMessage{.address = 0xfee01000, .data = 0x51}));
  // Reprogrammed while live.
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 8, 4, 0x52);
  EXPECT_EQ(Delivered(0), (irq::MsiMessage{.address = 0xfee01000, .data = 0x52}));

  // The function mask.
  MsixControl(0xc000);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  MsixControl(0x8000);
  EXPECT_EQ(fn_->direct_queues_bound(), 1u);

  // No vector: unbound; a vector again: bound.
  QueueVector(0, VirtioPciFunction::kNoVector);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  QueueVector(0, 1);
  EXPECT_EQ(fn_->direct_queues_bound(), 1u);

  // A reset takes the route away.
  Write(0x14, 1, 0);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  EXPECT_EQ(machine_->msi_route_count(), base);
  EXPECT_EQ(Delivered(0), std::nullopt);
}

TEST_F(VirtioFunctionTest, MsixOffAndDetachRemoveTheRoutes) {
  const size_t base = machine_->msi_route_count();
  Vector(1, 0xfee00000, 0x41, /*masked=*/false);
  MsixControl(0x8000);
  QueueVector(0, 1);
  EXPECT_EQ(machine_->msi_route_count(), base + 1);
  MsixControl(0x0000);
  EXPECT_EQ(machine_->msi_route_count(), base);
  MsixControl(0x8000);
  EXPECT_EQ(machine_->msi_route_count(), base + 1);
  fn_->Detach();
  EXPECT_EQ(machine_->msi_route_count(), base);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  // Writes after the unplug change nothing.
  fn_->ConfigWrite(0x04, 0x6, 0x3);
  EXPECT_EQ(machine_->msi_route_count(), base);
}

TEST_F(VirtioFunctionTest, ARemappableMessageWithoutAnIommuStaysWithTheRelay) {
  // Remappable format (bit 4), but this machine has no interrupt remapping: no route is made,
  // the eventfd stays unbound and the device's relay (and the transport) deliver nothing wrong.
  Vector(1, 0xfee00010, 0, /*masked=*/false);
  MsixControl(0x8000);
  QueueVector(0, 1);
  EXPECT_EQ(fn_->direct_queues_bound(), 0u);
  EXPECT_EQ(Delivered(0), std::nullopt);
}

}  // namespace
}  // namespace vmmkit::vmm
