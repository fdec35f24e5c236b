#include "virtio_pci/transport.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio_pci {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using virtio::testing::DriverQueue;
using virtio::testing::Used;

constexpr uint64_t kFlush = uint64_t{1} << 9;  // A device type's own feature (blk's FLUSH).
constexpr uint64_t kBar = 0xc0000000;

// A device type that records what the transport does to it; on a notification it returns every
// chain (1 byte written) and raises the queue's interrupt.
class TestDevice : public VirtioDevice {
 public:
  explicit TestDevice(const DmaSpace& dma) : dma_(dma) {}
  uint16_t device_type() const override { return 2; }
  uint32_t class_code() const override { return 0x018000; }
  uint64_t device_features() const override { return kFlush; }
  uint16_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 16; }
  uint32_t config_size() const override { return 8; }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = config[offset + i];
  }
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) config[offset + i] = data[i];
  }
  absl::Status Activate(Activation a) override {
    ++activations;
    features = a.features;
    queues = std::move(a.queues);
    interrupt = std::move(a.interrupt);
    needs_reset = std::move(a.needs_reset);
    return activate_error;
  }
  void QueueNotify(uint16_t index) override {
    notified.push_back(index);
    if (index >= queues.size() || !queues[index]) return;
    while (true) {
      absl::StatusOr<std::optional<virtio::DescriptorChain>> c = queues[index]->Pop(dma_);
      if (!c.ok() || !c->has_value()) break;
      ASSERT_OK(queues[index]->AddUsed(dma_, (*c)->head, 1));
    }
    absl::StatusOr<bool> irq = queues[index]->NeedsInterrupt(dma_);
    if (irq.ok() && *irq) interrupt(index);
  }
  void Reset() override {
    ++resets;
    queues.clear();
  }

  const DmaSpace& dma_;
  uint8_t config[8] = {0x00, 0x20, 0, 0, 0, 0, 0, 0};  // capacity 8192 sectors.
  absl::Status activate_error;
  int activations = 0, resets = 0;
  uint64_t features = 0;
  std::vector<std::optional<virtio::SplitQueue>> queues;
  Interrupt interrupt;
  std::function<void()> needs_reset;
  std::vector<uint16_t> notified;
};

class VirtioPciTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_.emplace(virtio::testing::TestGuestMemory(1 << 20));
    dma_.emplace(*memory_);
    device_ = std::make_shared<TestDevice>(*dma_);
    ASSERT_OK_AND_ASSIGN(fn_, VirtioPciFunction::Create(device_, [this](uint64_t a, uint32_t d) {
                           msis_.push_back({a, d});
                         }));
    ASSERT_OK(fn_->PlaceBars([](const pci::Bar& bar) -> absl::StatusOr<uint64_t> {
      EXPECT_EQ(bar.size, VirtioPciFunction::kBarSize);
      EXPECT_TRUE(bar.is64);
      return kBar;
    }));
    Cfg16(0x04, 0x0006);  // Memory decoding and bus mastering, as the guest's PCI core sets them.
  }

  // Configuration space, as the root bus hands it over: dwords and byte masks.
  uint32_t Cfg32(int reg) { return fn_->ConfigRead(static_cast<uint16_t>(reg)); }
  uint8_t Cfg8(int off) { return static_cast<uint8_t>(Cfg32(off & ~3) >> (8 * (off & 3))); }
  uint16_t Cfg16(int off) { return static_cast<uint16_t>(Cfg32(off & ~3) >> (8 * (off & 3))); }
  void Cfg16(int off, uint16_t v) {
    fn_->ConfigWrite(static_cast<uint16_t>(off & ~3), uint32_t{v} << (8 * (off & 3)),
                     static_cast<uint8_t>(3 << (off & 3)));
  }
  void Cfg32(int off, uint32_t v) { fn_->ConfigWrite(static_cast<uint16_t>(off), v, 0xf); }
  // The capabilities: id -> offsets (virtio's are many).
  std::multimap<uint8_t, uint8_t> Caps() {
    std::multimap<uint8_t, uint8_t> caps;
    for (int at = Cfg8(0x34); at != 0; at = Cfg8(at + 1)) {
      caps.insert({Cfg8(at), static_cast<uint8_t>(at)});
    }
    return caps;
  }
  // The virtio capability of `type`: (offset in config space, its BAR offset, length).
  std::optional<std::pair<int, std::pair<uint32_t, uint32_t>>> VirtioCap(uint8_t type) {
    for (auto [id, at] : Caps()) {
      if (id == 0x09 && Cfg8(at + 3) == type) {
        return std::make_pair(int{at}, std::make_pair(Cfg32(at + 8), Cfg32(at + 12)));
      }
    }
    return std::nullopt;
  }

  // BAR 0, as the guest's MMIO reaches it.
  uint64_t Read(uint64_t off, size_t len) {
    uint8_t b[8] = {};
    fn_->BarRead(off, absl::MakeSpan(b, len));
    uint64_t v = 0;
    std::memcpy(&v, b, len);
    return v;
  }
  void Write(uint64_t off, size_t len, uint64_t v) {
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    fn_->BarWrite(off, absl::MakeConstSpan(b, len));
  }
  uint8_t Status() { return static_cast<uint8_t>(Read(0x14, 1)); }

  void EnableMsix() {
    const uint8_t at = Caps().find(0x11)->second;
    Cfg16(at + 2, 0x8000);
  }
  void ProgramVector(uint16_t v, uint64_t address, uint32_t data, bool masked = false) {
    const uint64_t e = VirtioPciFunction::kMsixTableOffset + 16 * v;
    Write(e, 4, address & 0xffffffff);
    Write(e + 4, 4, address >> 32);
    Write(e + 8, 4, data);
    Write(e + 12, 4, masked ? 1 : 0);
  }
  // Linux's virtio_pci_modern probe and virtio_dev_probe, up to FEATURES_OK.
  void Negotiate(uint64_t features) {
    Write(0x14, 1, 0);
    Write(0x14, 1, virtio::kStatusAcknowledge);
    Write(0x14, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
    Write(0x08, 4, 0);
    Write(0x0c, 4, features & 0xffffffff);
    Write(0x08, 4, 1);
    Write(0x0c, 4, features >> 32);
    Write(0x14, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
  }
  // vp_active_vq: queue `index` with the driver's rings, its vector, enabled.
  void SetUpQueue(uint16_t index, const DriverQueue& driver, uint16_t size, uint16_t vector) {
    Write(0x16, 2, index);
    Write(0x18, 2, size);
    Write(0x1a, 2, vector);
    // 64-bit addresses as Linux writes them: low half, then high half.
    for (auto [reg, addr] : {std::pair<uint64_t, uint64_t>{0x20, driver.desc().raw()},
                             {0x28, driver.avail().raw()},
                             {0x30, driver.used().raw()}}) {
      Write(reg, 4, addr & 0xffffffff);
      Write(reg + 4, 4, addr >> 32);
    }
    Write(0x1c, 2, 1);
  }
  void DriverOk() {
    Write(0x14, 1,
          virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk |
              virtio::kStatusDriverOk);
  }

  std::optional<GuestMemory> memory_;
  std::optional<IdentityDmaSpace> dma_;
  std::shared_ptr<TestDevice> device_;
  std::shared_ptr<VirtioPciFunction> fn_;
  std::vector<std::pair<uint64_t, uint32_t>> msis_;
};

TEST_F(VirtioPciTest, IdentifiesAsAModernDeviceWithItsCapabilities) {
  EXPECT_EQ(Cfg32(0x00), 0x1042'1af4u);  // 0x1040 + type 2.
  EXPECT_EQ(Cfg8(0x08), 1);              // Revision 1: non-transitional.
  EXPECT_EQ(Cfg32(0x08) >> 8, 0x018000u);
  EXPECT_EQ(Cfg16(0x2c), 0x1af4);
  EXPECT_GE(Cfg16(0x2e), 0x40);
  EXPECT_EQ(fn_->bar_address(), kBar);
  const auto cap = [&](uint8_t type) { return VirtioCap(type).value().second; };
  EXPECT_THAT(cap(1), Pair(0x0000u, 0x40u));
  EXPECT_THAT(cap(2), Pair(0x3000u, 8u));          // Two queues, 4 bytes apart.
  EXPECT_EQ(Cfg32(VirtioCap(2)->first + 16), 4u);  // notify_off_multiplier.
  EXPECT_THAT(cap(3), Pair(0x1000u, 4u));
  EXPECT_THAT(cap(4), Pair(0x2000u, 8u));
  EXPECT_TRUE(VirtioCap(5).has_value());
  for (uint8_t type = 1; type <= 5; ++type) EXPECT_EQ(Cfg8(VirtioCap(type)->first + 4), 0) << "BAR";
  EXPECT_EQ(Caps().count(0x11), 1u);  // MSI-X: 3 vectors (2 queues + configuration).
  EXPECT_EQ(Cfg16(Caps().find(0x11)->second + 2) & 0x7ff, 2);
  EXPECT_THAT(fn_->Describe(), ::testing::HasSubstr("virtio-pci type 2, 2 queue(s)"));
}

TEST_F(VirtioPciTest, ProbesActivatesAndCarriesNotificationsAndInterrupts) {
  // Device features, both words.
  Write(0x00, 4, 0);
  EXPECT_EQ(Read(0x04, 4), static_cast<uint32_t>(kFlush | virtio::kFeatureEventIdx |
                                                 virtio::kFeatureIndirectDesc));
  Write(0x00, 4, 1);
  EXPECT_EQ(Read(0x04, 4), 1u);       // VERSION_1.
  EXPECT_EQ(Read(0x12, 2), 2u);       // num_queues.
  EXPECT_EQ(Read(0x2000, 8), 8192u);  // The device's configuration: capacity.

  Negotiate(virtio::kFeatureVersion1 | virtio::kFeatureEventIdx | kFlush);
  EXPECT_TRUE(Status() & virtio::kStatusFeaturesOk);
  EnableMsix();
  ProgramVector(0, 0xfee00000, 0x30);
  ProgramVector(1, 0xfee00000, 0x31);
  Write(0x10, 2, 0);
  EXPECT_EQ(Read(0x10, 2), 0u);
  Write(0x16, 2, 0);
  EXPECT_EQ(Read(0x18, 2), 16u);  // The maximum; the driver may choose less.
  EXPECT_EQ(Read(0x1e, 2), 0u);   // queue_notify_off.
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  ASSERT_EQ(device_->activations, 1);
  EXPECT_EQ(device_->features, virtio::kFeatureVersion1 | virtio::kFeatureEventIdx | kFlush);
  ASSERT_EQ(device_->queues.size(), 2u);
  ASSERT_TRUE(device_->queues[0].has_value());
  EXPECT_EQ(device_->queues[0]->size(), 8);
  EXPECT_FALSE(device_->queues[1].has_value());  // Left disabled.
  EXPECT_TRUE(Status() & virtio::kStatusDriverOk);

  // A request; the notify write at queue 0's address; the device's interrupt is vector 1's MSI.
  driver.SetUsedEvent(0);
  const uint16_t head =
      driver.Add({{GuestAddress(0x10000), 16, false}, {GuestAddress(0x11000), 1, true}});
  Write(0x3000, 2, 0);
  EXPECT_THAT(device_->notified, ElementsAre(0));
  EXPECT_THAT(driver.TakeUsed(), ElementsAre(Used{head, 1}));
  EXPECT_THAT(msis_, ElementsAre(Pair(0xfee00000u, 0x31u)));
  EXPECT_EQ(Read(0x1000, 1), 1u);  // ISR: a queue interrupt; reading clears it.
  EXPECT_EQ(Read(0x1000, 1), 0u);
  // Queue fields are the device's now: writes change nothing.
  Write(0x18, 2, 4);
  EXPECT_EQ(Read(0x18, 2), 8u);
}

TEST_F(VirtioPciTest, AMaskedVectorIsPendingUntilUnmasked) {
  Negotiate(virtio::kFeatureVersion1);
  EnableMsix();
  ProgramVector(1, 0xfee01000, 0x41, /*masked=*/true);
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  device_->interrupt(0);
  EXPECT_TRUE(msis_.empty());
  EXPECT_EQ(Read(VirtioPciFunction::kMsixPbaOffset, 8), 2u);   // Vector 1 pending.
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 12, 4, 0);  // Unmask.
  EXPECT_THAT(msis_, ElementsAre(Pair(0xfee01000u, 0x41u)));
  EXPECT_EQ(Read(VirtioPciFunction::kMsixPbaOffset, 8), 0u);
  // The function mask holds them all the same way.
  const uint8_t at = Caps().find(0x11)->second;
  Cfg16(at + 2, 0xc000);
  device_->interrupt(0);
  EXPECT_EQ(msis_.size(), 1u);
  Cfg16(at + 2, 0x8000);
  EXPECT_EQ(msis_.size(), 2u);
}

TEST_F(VirtioPciTest, QueueInterruptsFollowVectorsMasksAndReset) {
  using QI = VirtioPciFunction::QueueInterrupt;
  const QI none;
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(none, none));
  Negotiate(virtio::kFeatureVersion1);
  ProgramVector(1, 0xfee01000, 0x41);
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 8, 1);
  // MSI-X off: nothing to route.
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(none, none));
  EnableMsix();
  const QI live{.routable = true, .masked = false, .address = 0xfee01000, .data = 0x41};
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(live, none));
  // The entry's mask, then the function's.
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 12, 4, 1);
  QI masked = live;
  masked.masked = true;
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(masked, none));
  Write(VirtioPciFunction::kMsixTableOffset + 16 + 12, 4, 0);
  const uint8_t at = Caps().find(0x11)->second;
  Cfg16(at + 2, 0xc000);
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(masked, none));
  Cfg16(at + 2, 0x8000);
  // Reprogrammed: the new message.
  ProgramVector(1, 0xfee02000, 0x42);
  const QI moved{.routable = true, .masked = false, .address = 0xfee02000, .data = 0x42};
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(moved, none));
  // A vector outside the table, NO_VECTOR, and a reset: none.
  Write(0x16, 2, 0);
  Write(0x1a, 2, 40);
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(none, none));
  Write(0x1a, 2, 1);
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(moved, none));
  Write(0x14, 1, 0);
  EXPECT_THAT(fn_->QueueInterrupts(), ElementsAre(none, none));
}

TEST_F(VirtioPciTest, ABadQueueSetupNeedsResetAndTellsTheDriver) {
  Negotiate(virtio::kFeatureVersion1);
  EnableMsix();
  ProgramVector(0, 0xfee00000, 0x50);
  Write(0x10, 2, 0);
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 3, 1);  // Not a power of two.
  DriverOk();
  EXPECT_EQ(device_->activations, 0);
  EXPECT_TRUE(Status() & virtio::kStatusNeedsReset);
  EXPECT_THAT(msis_, ElementsAre(Pair(0xfee00000u, 0x50u)));  // The configuration vector.
  EXPECT_EQ(Read(0x1000, 1), 2u);                             // ISR: configuration change.

  // A device that fails to start: the same.
  Write(0x14, 1, 0);
  device_->activate_error = absl::InternalError("no backend");
  Negotiate(virtio::kFeatureVersion1);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  EXPECT_EQ(device_->activations, 1);
  EXPECT_TRUE(Status() & virtio::kStatusNeedsReset);
}

TEST_F(VirtioPciTest, TheDeviceCanAskForAReset) {
  Negotiate(virtio::kFeatureVersion1);
  EnableMsix();
  ProgramVector(0, 0xfee00000, 0x50);
  Write(0x10, 2, 0);
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  auto stale = device_->needs_reset;
  device_->needs_reset();
  EXPECT_TRUE(Status() & virtio::kStatusNeedsReset);
  EXPECT_THAT(msis_, ElementsAre(Pair(0xfee00000u, 0x50u)));
  // After a reset and a new activation, the old life's request is ignored.
  Write(0x14, 1, 0);
  Negotiate(virtio::kFeatureVersion1);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  stale();
  EXPECT_FALSE(Status() & virtio::kStatusNeedsReset);
}

TEST_F(VirtioPciTest, ResetStopsTheDeviceAndForgetsTheQueues) {
  Negotiate(virtio::kFeatureVersion1);
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  ASSERT_EQ(device_->activations, 1);
  Write(0x14, 1, 0);
  EXPECT_EQ(device_->resets, 1);
  EXPECT_EQ(Status(), 0);
  Write(0x16, 2, 0);
  EXPECT_EQ(Read(0x18, 2), 16u);
  EXPECT_EQ(Read(0x1c, 2), 0u);
  EXPECT_EQ(Read(0x20, 8), 0u);
  EXPECT_EQ(Read(0x1a, 2), VirtioPciFunction::kNoVector);
  // Notifications reach nothing until the device is active again.
  Write(0x3000, 2, 0);
  EXPECT_TRUE(device_->notified.empty());
  // A second reset of an inactive device does not reset it again.
  Write(0x14, 1, 0);
  EXPECT_EQ(device_->resets, 1);
}

TEST_F(VirtioPciTest, RefusesFeaturesItDidNotOffer) {
  Negotiate(virtio::kFeatureVersion1 | virtio::kFeatureAccessPlatform);
  EXPECT_FALSE(Status() & virtio::kStatusFeaturesOk);
  DriverOk();
  EXPECT_EQ(device_->activations, 0);
}

TEST_F(VirtioPciTest, HostileAccessesReadZeroAndChangeNothing) {
  Write(0x16, 2, 7);  // No queue 7.
  EXPECT_EQ(Read(0x18, 2), 0u);
  Write(0x18, 2, 8);
  Write(0x16, 2, 0);
  Write(0x1a, 2, 3);  // Vectors are 0..2.
  EXPECT_EQ(Read(0x1a, 2), VirtioPciFunction::kNoVector);
  Write(0x10, 2, 1000);
  EXPECT_EQ(Read(0x10, 2), VirtioPciFunction::kNoVector);
  EXPECT_EQ(Read(0x18, 1), 0u);    // The wrong width.
  EXPECT_EQ(Read(0x19, 2), 0u);    // Inside a register.
  EXPECT_EQ(Read(0x3c, 4), 0u);    // Past the registers.
  EXPECT_EQ(Read(0x2006, 4), 0u);  // Crosses the end of the device's configuration.
  EXPECT_EQ(Read(VirtioPciFunction::kBarSize - 2, 4), 0u);
  Write(0x12, 2, 9);  // num_queues is read-only.
  EXPECT_EQ(Read(0x12, 2), 2u);
  Write(0x3002, 2, 0);                        // Not a queue's notify address.
  Write(0x14, 1, virtio::kStatusNeedsReset);  // Not the driver's to set.
  EXPECT_EQ(Status(), 0);
  EXPECT_TRUE(device_->notified.empty());
}

TEST_F(VirtioPciTest, ThePciConfigurationWindowReachesTheBar) {
  const int at = VirtioCap(5)->first;
  Negotiate(virtio::kFeatureVersion1);
  fn_->ConfigWrite(static_cast<uint16_t>(at + 4), 0, 0x1);  // bar 0
  Cfg32(at + 8, 0x14);                                      // device_status
  Cfg32(at + 12, 1);                                        // 1 byte
  EXPECT_EQ(Cfg32(at + 16) & 0xff, Status());
  Cfg32(at + 12, 3);  // Not 1, 2 or 4 bytes: nothing.
  EXPECT_EQ(Cfg32(at + 16), 0u);
  Cfg32(at + 8, 0x16);  // queue_select, written through the window.
  Cfg32(at + 12, 2);
  fn_->ConfigWrite(static_cast<uint16_t>(at + 16), 1, 0x3);
  EXPECT_EQ(Read(0x16, 2), 1u);
}

TEST_F(VirtioPciTest, DetachStopsAnActiveDeviceAndReadsAllOnes) {
  Negotiate(virtio::kFeatureVersion1);
  DriverQueue driver(*memory_, GuestAddress(0x1000), 8);
  SetUpQueue(0, driver, 8, 1);
  DriverOk();
  fn_->Detach();
  fn_->Detach();
  EXPECT_EQ(device_->resets, 1);
  EXPECT_EQ(Cfg32(0x00), 0xffffffffu);
  EXPECT_EQ(Read(0x14, 1), 0xffu);
  Write(0x3000, 2, 0);
  EXPECT_TRUE(device_->notified.empty());
}

class BadDevice : public TestDevice {
 public:
  BadDevice(const DmaSpace& dma, uint16_t q, uint16_t s, uint32_t c)
      : TestDevice(dma), queues_(q), size_(s), config_(c) {}
  uint16_t num_queues() const override { return queues_; }
  uint16_t max_queue_size() const override { return size_; }
  uint32_t config_size() const override { return config_; }
  uint16_t queues_, size_;
  uint32_t config_;
};

TEST_F(VirtioPciTest, CreateRefusesDevicesItCannotPresent) {
  const auto create = [&](uint16_t q, uint16_t s, uint32_t c) {
    return VirtioPciFunction::Create(std::make_shared<BadDevice>(*dma_, q, s, c), nullptr).status();
  };
  EXPECT_THAT(create(0, 16, 8), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(257, 16, 8), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(1, 12, 8), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(1, 16, 8192), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(VirtioPciFunction::Create(nullptr, nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(create(256, 32768, 4096));
}

}  // namespace
}  // namespace vmmkit::virtio_pci
