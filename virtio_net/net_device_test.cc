#include "virtio_net/net_device.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using virtio::testing::DriverQueue;
using virtio::testing::Used;

constexpr MacAddress kMac = {0x52, 0x54, 0x00, 0x01, 0x02, 0x03};
constexpr uint16_t kQueueSize = 16;

// Packets through SOCK_SEQPACKET socket pairs (one packet per read and write, as a tap's), the
// test holding the far ends; records what the device asks of the backend.
class SocketBackend : public NetBackend {
 public:
  SocketBackend(uint16_t pairs, std::vector<ScopedFd>& peers) {
    for (uint16_t i = 0; i < pairs; ++i) {
      int sv[2];
      EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
      fds_.emplace_back(sv[0]);
      peers.emplace_back(sv[1]);
    }
  }
  uint16_t queue_pairs() const override { return static_cast<uint16_t>(fds_.size()); }
  int fd(uint16_t index) const override { return fds_[index].get(); }
  absl::Status SetOffloads(uint64_t offloads) override {
    offloads_ = offloads;
    return absl::OkStatus();
  }
  absl::Status EnableQueues(uint16_t pairs) override {
    enabled_ = pairs;
    return absl::OkStatus();
  }
  std::atomic<uint64_t> offloads_{~0ull};
  std::atomic<uint16_t> enabled_{0};

 private:
  std::vector<ScopedFd> fds_;
};

class NetDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { memory_.emplace(virtio::testing::TestGuestMemory(4 << 20)); }
  void TearDown() override {
    if (device_) device_->Reset();
  }

  void Start(uint16_t pairs = 1, std::optional<uint64_t> features = std::nullopt,
             RateLimit tx_limit = {}) {
    auto backend = std::make_unique<SocketBackend>(pairs, peers_);
    backend_ = backend.get();
    ASSERT_OK_AND_ASSIGN(
        device_, NetDevice::Create(std::move(backend), std::make_unique<IdentityDmaSpace>(*memory_),
                                   {.mac = kMac, .queue_size = kQueueSize, .tx_limit = tx_limit}));
    rx_.emplace(*memory_, GuestAddress(0x1000), kQueueSize);
    tx_.emplace(*memory_, GuestAddress(0x2000), kQueueSize);
    ctrl_.emplace(*memory_, GuestAddress(0x3000), kQueueSize);
    std::vector<std::optional<virtio::SplitQueue>> queues(device_->num_queues());
    ASSERT_OK_AND_ASSIGN(queues[0], virtio::SplitQueue::Create(rx_->config()));
    ASSERT_OK_AND_ASSIGN(queues[1], virtio::SplitQueue::Create(tx_->config()));
    ASSERT_OK_AND_ASSIGN(queues.back(), virtio::SplitQueue::Create(ctrl_->config()));
    features_ = features.value_or(device_->device_features());
    ASSERT_OK(device_->Activate({.features = features_,
                                 .queues = std::move(queues),
                                 .interrupt =
                                     [this](uint16_t queue) {
                                       std::lock_guard<std::mutex> l(mu_);
                                       interrupts_.push_back(queue);
                                       cv_.notify_all();
                                     },
                                 .needs_reset =
                                     [this] {
                                       std::lock_guard<std::mutex> l(mu_);
                                       ++resets_asked_;
                                       cv_.notify_all();
                                     }}));
  }
  // Waits (a bound, not a measurement) until `done` holds.
  template <typename F>
  bool WaitUntil(F done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }
  int resets_asked() {
    std::lock_guard<std::mutex> l(mu_);
    return resets_asked_;
  }
  // A packet from the far end: a zero header (num_buffers aside), then the frame.
  void Inject(uint16_t pair, const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> p(kHeaderSize, 0);
    p.insert(p.end(), frame.begin(), frame.end());
    ASSERT_EQ(::write(peers_[pair].get(), p.data(), p.size()), static_cast<ssize_t>(p.size()));
  }
  static std::vector<uint8_t> Frame(size_t bytes, const MacAddress& dst = kMac) {
    std::vector<uint8_t> f(bytes);
    std::iota(f.begin(), f.end(), 7);
    std::memcpy(f.data(), dst.data(), 6);
    return f;
  }
  uint8_t Control(uint8_t cls, uint8_t cmd, const std::vector<uint8_t>& data) {
    const uint64_t at = 0x200000;
    const uint8_t head[2] = {cls, cmd};
    EXPECT_OK(memory_->Write(GuestAddress(at), head));
    if (!data.empty()) EXPECT_OK(memory_->Write(GuestAddress(at + 16), data));
    EXPECT_OK(memory_->WriteObj(GuestAddress(at + 0x1000), uint8_t{0xff}));
    std::vector<DriverQueue::Buf> bufs = {{GuestAddress(at), 2, false}};
    if (!data.empty()) {
      bufs.push_back({GuestAddress(at + 16), static_cast<uint32_t>(data.size()), false});
    }
    bufs.push_back({GuestAddress(at + 0x1000), 1, true});
    ctrl_->Add(bufs);
    device_->QueueNotify(device_->num_queues() - 1);
    std::vector<Used> used;
    EXPECT_TRUE(WaitUntil([&] {
      used = ctrl_->TakeUsed();
      return !used.empty();
    }));
    return *memory_->ReadObj<uint8_t>(GuestAddress(at + 0x1000));
  }

  std::optional<GuestMemory> memory_;
  std::vector<ScopedFd> peers_;
  SocketBackend* backend_ = nullptr;
  std::shared_ptr<NetDevice> device_;
  std::optional<DriverQueue> rx_, tx_, ctrl_;
  uint64_t features_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint16_t> interrupts_;
  int resets_asked_ = 0;
};

TEST(NetDeviceCreateTest, RefusesBadOptions) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 16);
  std::vector<ScopedFd> peers;
  auto create = [&](uint16_t pairs, NetOptions o) {
    return NetDevice::Create(std::make_unique<SocketBackend>(pairs, peers),
                             std::make_unique<IdentityDmaSpace>(memory), o);
  };
  EXPECT_THAT(create(0, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(17, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(1, {.queue_size = 3}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(1, {.queue_size = 2048}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(1, {.mac = {1, 0, 0, 0, 0, 1}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(NetDevice::Create(nullptr, std::make_unique<IdentityDmaSpace>(memory), {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(create(1, {.vhost_memory = &memory, .rx_limit = {.bytes_per_second = 1000}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rate limits")));
}

TEST(NetDeviceCreateTest, VhostNeedsTheKernelsDevice) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 20);
  std::vector<ScopedFd> peers;
  absl::StatusOr<std::shared_ptr<NetDevice>> d =
      NetDevice::Create(std::make_unique<SocketBackend>(1, peers),
                        std::make_unique<IdentityDmaSpace>(memory), {.vhost_memory = &memory});
  if (d.ok()) {
    // A host with vhost-net: the device is set up; the rings go to the kernel at activation.
    EXPECT_TRUE((*d)->vhost());
    EXPECT_EQ((*d)->device_features() & virtio::kFeatureAccessPlatform, 0u);
  } else {
    EXPECT_THAT(d.status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("/dev/vhost-net")));
  }
}

TEST_F(NetDeviceTest, OffersFeaturesAndConfiguration) {
  Start(2);
  const uint64_t f = device_->device_features();
  for (uint64_t bit : {kFeatureMac, kFeatureStatus, kFeatureMrgRxbuf, kFeatureCtrlVq,
                       kFeatureCtrlRx, kFeatureMq, kFeatureCsum, kFeatureGuestTso4}) {
    EXPECT_NE(f & bit, 0u) << bit;
  }
  EXPECT_EQ(f & virtio::kFeatureAccessPlatform, 0u);
  EXPECT_EQ(device_->num_queues(), 5);
  uint8_t config[kConfigSize];
  device_->ReadConfig(0, config);
  EXPECT_EQ(std::memcmp(config, kMac.data(), 6), 0);
  EXPECT_EQ(config[kConfigStatus], kStatusLinkUp);
  EXPECT_EQ(config[kConfigMaxPairs], 2);
  uint8_t past[4] = {9, 9, 9, 9};
  device_->ReadConfig(kConfigSize - 2, past);  // Past the end: nothing.
  EXPECT_EQ(past[0], 9);
  // Activation: the backend takes the negotiated receive offloads and one pair.
  EXPECT_EQ(backend_->offloads_, f & kGuestOffloads);
  EXPECT_EQ(backend_->enabled_, 1);
}

TEST_F(NetDeviceTest, OnePairHasNoMultiQueue) {
  Start(1);
  EXPECT_EQ(device_->device_features() & kFeatureMq, 0u);
  EXPECT_EQ(device_->num_queues(), 3);
}

TEST_F(NetDeviceTest, TransmitsAFrameSplitAcrossBuffers) {
  Start();
  std::vector<uint8_t> packet(kHeaderSize, 0);
  const std::vector<uint8_t> frame = Frame(60);
  packet.insert(packet.end(), frame.begin(), frame.end());
  ASSERT_OK(memory_->Write(GuestAddress(0x100000), absl::MakeConstSpan(packet).subspan(0, 20)));
  ASSERT_OK(memory_->Write(GuestAddress(0x110000), absl::MakeConstSpan(packet).subspan(20)));
  const uint16_t head =
      tx_->Add({{GuestAddress(0x100000), 20, false}, {GuestAddress(0x110000), 52, false}});
  device_->QueueNotify(1);
  std::vector<uint8_t> got(200);
  ssize_t n = -1;
  ASSERT_TRUE(WaitUntil([&] { return (n = ::read(peers_[0].get(), got.data(), got.size())) > 0; }));
  got.resize(static_cast<size_t>(n));
  EXPECT_EQ(got, packet);
  std::vector<Used> used;
  ASSERT_TRUE(WaitUntil([&] { return !(used = tx_->TakeUsed()).empty(); }));
  EXPECT_THAT(used, ElementsAre(Used{head, 0}));
  EXPECT_EQ(device_->stats().tx_packets, 1u);
  EXPECT_EQ(device_->stats().tx_bytes, 60u);
}

TEST_F(NetDeviceTest, ATransmitLimitHoldsFramesInTheRing) {
  // Two frames a second, a bucket of two: two go at once, the third half a second later.
  Start(1, std::nullopt, {.packets_per_second = 2});
  std::vector<uint8_t> packet(kHeaderSize, 0);
  const std::vector<uint8_t> frame = Frame(60);
  packet.insert(packet.end(), frame.begin(), frame.end());
  ASSERT_OK(memory_->Write(GuestAddress(0x100000), packet));
  for (int i = 0; i < 3; ++i) tx_->Add({{GuestAddress(0x100000), 72, false}});
  device_->QueueNotify(1);
  ASSERT_TRUE(WaitUntil([&] { return device_->stats().tx_packets == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(device_->stats().tx_packets, 2u) << "the third waits for a token";
  ASSERT_TRUE(WaitUntil([&] { return device_->stats().tx_packets == 3; }));
  EXPECT_EQ(device_->stats().tx_dropped, 0u);
}

TEST_F(NetDeviceTest, ReturnsMalformedTransmitChainsUnsent) {
  Start();
  const uint16_t a = tx_->Add({{GuestAddress(0x100000), 10, false}});  // Shorter than a header.
  const uint16_t b = tx_->Add({{GuestAddress(0x100000), 80, false},
                               {GuestAddress(0x110000), 8, true}});  // Device-writable.
  device_->QueueNotify(1);
  std::vector<Used> used;
  ASSERT_TRUE(WaitUntil([&] {
    for (const Used& u : tx_->TakeUsed()) used.push_back(u);
    return used.size() == 2;
  }));
  EXPECT_THAT(used, ElementsAre(Used{a, 0}, Used{b, 0}));
  EXPECT_EQ(device_->stats().refused, 2u);
  EXPECT_EQ(device_->stats().tx_packets, 0u);
  char c;
  EXPECT_EQ(::read(peers_[0].get(), &c, 1), -1);  // Nothing was sent.
}

TEST_F(NetDeviceTest, ReceivesIntoMergeableBuffers) {
  Start();
  for (uint64_t i = 0; i < 3; ++i) {
    rx_->Add({{GuestAddress(0x100000 + 0x1000 * i), 1536, true}});
  }
  device_->QueueNotify(0);
  const std::vector<uint8_t> frame = Frame(4000);
  Inject(0, frame);
  std::vector<Used> used;
  ASSERT_TRUE(WaitUntil([&] {
    for (const Used& u : rx_->TakeUsed()) used.push_back(u);
    return used.size() >= 3;
  }));
  EXPECT_THAT(used, ElementsAre(Used{0, 1536}, Used{1, 1536}, Used{2, 4012 - 3072}));
  std::vector<uint8_t> got(4012);
  for (uint64_t i = 0; i < 3; ++i) {
    const size_t n = std::min<size_t>(1536, got.size() - 1536 * i);
    ASSERT_OK(memory_->Read(GuestAddress(0x100000 + 0x1000 * i),
                            absl::MakeSpan(got.data() + 1536 * i, n)));
  }
  uint16_t num_buffers;
  std::memcpy(&num_buffers, got.data() + kNumBuffersOffset, 2);
  EXPECT_EQ(num_buffers, 3);
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), got.begin() + kHeaderSize));
  EXPECT_EQ(device_->stats().rx_packets, 1u);
  EXPECT_EQ(device_->stats().rx_bytes, 4000u);
}

TEST_F(NetDeviceTest, WithoutMergeableBuffersDropsWhatDoesNotFitOneChain) {
  Start(1, kFeatureMac | kFeatureCtrlVq | kFeatureCtrlRx);
  rx_->Add({{GuestAddress(0x100000), 100, true}});
  device_->QueueNotify(0);
  Inject(0, Frame(200));  // Too large for the chain: dropped, the chain kept.
  Inject(0, Frame(60));
  std::vector<Used> used;
  ASSERT_TRUE(WaitUntil([&] { return !(used = rx_->TakeUsed()).empty(); }));
  EXPECT_THAT(used, ElementsAre(Used{0, 72}));
  EXPECT_EQ(device_->stats().rx_dropped, 1u);
  EXPECT_EQ(*memory_->ReadObj<uint16_t>(GuestAddress(0x100000 + kNumBuffersOffset)), 1);
}

TEST_F(NetDeviceTest, AGuestWithoutBuffersLeavesPacketsWithTheBackend) {
  Start();
  for (int i = 0; i < 20; ++i) Inject(0, Frame(100));
  // The worker reads one packet, finds no buffer, and stops reading.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(device_->stats().rx_packets, 0u);
  rx_->Add({{GuestAddress(0x100000), 2048, true}});
  device_->QueueNotify(0);
  ASSERT_TRUE(WaitUntil([&] { return device_->stats().rx_packets == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(device_->stats().rx_packets, 1u);
  EXPECT_EQ(device_->stats().rx_dropped, 0u);
  // The other 19 were still queued in the backend, whole.
  for (int round = 0; round < 2; ++round) {
    for (uint64_t i = 0; i < 15; ++i) {
      if (round == 0 || i < 4) rx_->Add({{GuestAddress(0x200000 + 0x1000 * i), 2048, true}});
    }
    device_->QueueNotify(0);
    ASSERT_TRUE(WaitUntil([&] { return device_->stats().rx_packets == (round == 0 ? 16u : 20u); }));
    (void)rx_->TakeUsed();
  }
  EXPECT_EQ(device_->stats().rx_dropped, 0u);
}

TEST_F(NetDeviceTest, ControlQueueProgramsTheFilterAndTheBackend) {
  Start(2);
  EXPECT_EQ(Control(kCtrlRx, kCtrlRxPromisc, {0}), kCtrlOk);
  rx_->Add({{GuestAddress(0x100000), 2048, true}});
  device_->QueueNotify(0);
  Inject(0, Frame(100, {0x52, 0x54, 0, 9, 9, 9}));  // Someone else's.
  Inject(0, Frame(100));
  ASSERT_TRUE(WaitUntil([&] { return device_->stats().rx_packets == 1; }));
  EXPECT_EQ(device_->stats().rx_filtered, 1u);

  const uint64_t offloads = kFeatureGuestCsum;
  std::vector<uint8_t> value(8);
  std::memcpy(value.data(), &offloads, 8);
  EXPECT_EQ(Control(kCtrlGuestOffloads, kCtrlGuestOffloadsSet, value), kCtrlOk);
  EXPECT_EQ(backend_->offloads_, kFeatureGuestCsum);
  EXPECT_EQ(Control(kCtrlMq, kCtrlMqPairsSet, {2, 0}), kCtrlOk);
  EXPECT_EQ(backend_->enabled_, 2);
  EXPECT_EQ(Control(kCtrlMq, kCtrlMqPairsSet, {3, 0}), kCtrlErr);
  const MacAddress moved = {0x52, 0x54, 0, 0, 0, 0x42};
  EXPECT_EQ(Control(kCtrlMac, kCtrlMacAddrSet, {moved.begin(), moved.end()}), kCtrlOk);
  EXPECT_EQ(device_->mac(), moved);
  EXPECT_EQ(Control(9, 9, {}), kCtrlErr);
  EXPECT_EQ(device_->stats().refused, 2u);
  // A reset forgets all of it.
  device_->Reset();
  EXPECT_EQ(device_->mac(), kMac);
}

TEST_F(NetDeviceTest, ABrokenRingAsksForAReset) {
  Start();
  tx_->SetAvailIdx(kQueueSize + 1);  // More chains than the ring holds.
  device_->QueueNotify(1);
  ASSERT_TRUE(WaitUntil([&] { return resets_asked() == 1; }));
  device_->Reset();
}

}  // namespace
}  // namespace vmmkit::virtio_net
