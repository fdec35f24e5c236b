#include "virtio_blk/block_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio_blk {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using virtio::testing::DriverQueue;
using virtio::testing::Used;

constexpr uint64_t kImageBytes = 1 << 20;  // 2048 sectors.
constexpr uint64_t kRings = 0x1000, kHeader = 0x8000, kStatus = 0x9000, kData = 0x10000;

// A raw image in the test's temporary directory, filled with `fill`.
std::string MakeImage(const std::string& name, uint8_t fill = 0xaa, uint64_t bytes = kImageBytes) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
  std::vector<uint8_t> data(bytes, fill);
  EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
  return path;
}

std::vector<uint8_t> FileBytes(const std::string& path, uint64_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_EQ(::pread(fd, out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  ::close(fd);
  return out;
}

// Threads of this process other than io_uring's own workers (iou-wrk-N, which the kernel starts
// and retires by itself for requests it cannot finish inline, such as an fdatasync).
size_t OwnThreads() {
  size_t n = 0;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("iou-wrk", 0) != 0) ++n;
  }
  return n;
}

// Each case runs with both engines.
class BlockDeviceTest : public ::testing::TestWithParam<BlockEngine> {
 protected:
  void SetUp() override {
    memory_.emplace(virtio::testing::TestGuestMemory(4 << 20));
    if (GetParam() == BlockEngine::kIoUring) {
      if (absl::Status s = uring::Ring::Available(); !s.ok()) {
        GTEST_SKIP() << "no usable io_uring here: " << s;
      }
    }
  }
  void TearDown() override {
    if (device_) device_->Reset();
  }

  // The device on a fresh image, activated with one queue of 16 the harness drives.
  void Start(DiskOptions disk_options = {}, BlockOptions options = {.id = "disk0"},
             std::unique_ptr<DmaSpace> platform = nullptr,
             std::optional<uint64_t> features = std::nullopt) {
    image_ = MakeImage("disk.img");
    ASSERT_OK_AND_ASSIGN(DiskImage disk, DiskImage::Open(image_, disk_options));
    options.engine = GetParam();
    ASSERT_OK_AND_ASSIGN(
        device_, BlockDevice::Create(std::move(disk), std::make_unique<IdentityDmaSpace>(*memory_),
                                     options, std::move(platform)));
    driver_.emplace(*memory_, GuestAddress(kRings), 16);
    Activate(features);
  }
  void Activate(std::optional<uint64_t> features = std::nullopt) {
    ASSERT_OK_AND_ASSIGN(virtio::SplitQueue q, virtio::SplitQueue::Create(driver_->config()));
    std::vector<std::optional<virtio::SplitQueue>> queues(device_->num_queues());
    queues[0] = q;
    ASSERT_OK(device_->Activate({.features = features.value_or(device_->device_features()),
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
  // Waits for `n` interrupts (or a reset request) in all; a bound, not a measurement.
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10),
                        [&] { return interrupts_.size() >= n || resets_asked_ > 0; });
  }
  void Header(uint32_t type, uint64_t sector) {
    ASSERT_OK(memory_->WriteObj(GuestAddress(kHeader), type));
    ASSERT_OK(memory_->WriteObj(GuestAddress(kHeader + 4), uint32_t{0}));
    ASSERT_OK(memory_->WriteObj(GuestAddress(kHeader + 8), sector));
    ASSERT_OK(memory_->WriteObj(GuestAddress(kStatus), uint8_t{0xee}));
  }
  // Submits a chain, notifies, waits for it to be used; returns (used length, status byte).
  std::pair<uint32_t, uint8_t> Submit(const std::vector<DriverQueue::Buf>& bufs) {
    const size_t before = interrupts_size();
    const uint16_t head = driver_->Add(bufs);
    device_->QueueNotify(0);
    EXPECT_TRUE(WaitFor(before + 1));
    std::vector<Used> used = driver_->TakeUsed();
    EXPECT_EQ(used.size(), 1u);
    if (used.empty()) return {0, 0xee};
    EXPECT_EQ(used[0].id, head);
    return {used[0].len, *memory_->ReadObj<uint8_t>(GuestAddress(kStatus))};
  }
  size_t interrupts_size() {
    std::lock_guard<std::mutex> l(mu_);
    return interrupts_.size();
  }
  void Fill(uint64_t gpa, size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
    ASSERT_OK(memory_->Write(GuestAddress(gpa), v));
  }
  std::vector<uint8_t> Guest(uint64_t gpa, size_t n) {
    std::vector<uint8_t> v(n);
    EXPECT_OK(memory_->Read(GuestAddress(gpa), absl::MakeSpan(v)));
    return v;
  }

  std::optional<GuestMemory> memory_;
  std::optional<DriverQueue> driver_;
  std::string image_;
  std::shared_ptr<BlockDevice> device_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint16_t> interrupts_;
  int resets_asked_ = 0;
};

TEST_P(BlockDeviceTest, ConfigurationAndFeatures) {
  Start();
  uint64_t capacity = 0;
  device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&capacity), 8));
  EXPECT_EQ(capacity, kImageBytes / 512);
  uint32_t blk_size = 0, seg_max = 0;
  device_->ReadConfig(20, absl::MakeSpan(reinterpret_cast<uint8_t*>(&blk_size), 4));
  device_->ReadConfig(12, absl::MakeSpan(reinterpret_cast<uint8_t*>(&seg_max), 4));
  EXPECT_EQ(blk_size, 512u);
  EXPECT_EQ(seg_max, BlockDevice::kSegMax);
  const uint64_t f = device_->device_features();
  EXPECT_EQ(f & (kFeatureFlush | kFeatureDiscard | kFeatureWriteZeroes | kFeatureRo | kFeatureMq),
            kFeatureFlush | kFeatureDiscard | kFeatureWriteZeroes);
}

// Guest-physical memory, counting the accesses made through it.
class CountingDmaSpace : public DmaSpace {
 public:
  CountingDmaSpace(const GuestMemory& memory, std::atomic<int>& accesses)
      : identity_(memory), accesses_(accesses) {}
  absl::Status Read(Iova iova, absl::Span<uint8_t> dst) const override {
    ++accesses_;
    return identity_.Read(iova, dst);
  }
  absl::Status Write(Iova iova, absl::Span<const uint8_t> src) const override {
    ++accesses_;
    return identity_.Write(iova, src);
  }

 private:
  IdentityDmaSpace identity_;
  std::atomic<int>& accesses_;
};

TEST_P(BlockDeviceTest, ThePlatformSpaceServesOnlyADriverThatAcceptedAccessPlatform) {
  std::atomic<int> accesses{0};
  Start({}, {.id = "disk0"}, std::make_unique<CountingDmaSpace>(*memory_, accesses),
        kFeatureFlush | virtio::kFeatureVersion1);
  EXPECT_NE(device_->device_features() & virtio::kFeatureAccessPlatform, 0u);
  Header(kTypeFlush, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}, {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  EXPECT_EQ(accesses.load(), 0);  // Declined: guest-physical.

  device_->Reset();
  driver_.emplace(*memory_, GuestAddress(kRings + 0x10000), 16);
  ASSERT_OK(memory_->Write(GuestAddress(kRings + 0x10000),
                           std::vector<uint8_t>(DriverQueue::Footprint(16), 0)));
  Activate(kFeatureFlush | virtio::kFeatureVersion1 | virtio::kFeatureAccessPlatform);
  Header(kTypeFlush, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}, {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  EXPECT_GT(accesses.load(), 0);  // Accepted: the rings and buffers through the platform space.
  // Data through a space that can only copy (the bounce path): a write and its read-back. (Away
  // from kData, which this activation's rings overlap.)
  constexpr uint64_t kOut = 0x180000, kIn = 0x1c0000;
  Fill(kOut, 3 * 4096, 9);
  Header(kTypeOut, 2);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kOut), 4096, false},
                      {GuestAddress(kOut + 4096), 2 * 4096, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  EXPECT_EQ(FileBytes(image_, 2 * 512, 3 * 4096), Guest(kOut, 3 * 4096));
  Header(kTypeIn, 2);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kIn), 3 * 4096, true},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(3 * 4096 + 1, kStatusOk));
  EXPECT_EQ(Guest(kIn, 3 * 4096), Guest(kOut, 3 * 4096));
}

TEST_P(BlockDeviceTest, WithoutAPlatformSpaceAccessPlatformIsNotOffered) {
  Start();
  EXPECT_EQ(device_->device_features() & virtio::kFeatureAccessPlatform, 0u);
}

TEST_P(BlockDeviceTest, WorkersLiveFromCreateAndThreadsDoNotGrowAcrossResets) {
  Start({}, {.id = "disk0", .queues = 4});
  const size_t threads = OwnThreads();
  for (int i = 0; i < 5; ++i) {
    device_->Reset();
    driver_.emplace(*memory_, GuestAddress(kRings + 0x10000 * static_cast<uint64_t>(i % 2 + 1)),
                    16);
    ASSERT_OK(memory_->Write(GuestAddress(kRings + 0x10000 * static_cast<uint64_t>(i % 2 + 1)),
                             std::vector<uint8_t>(DriverQueue::Footprint(16), 0)));
    Activate();
    Header(kTypeFlush, 0);
    EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}, {GuestAddress(kStatus), 1, true}}),
                ::testing::Pair(1u, kStatusOk));
  }
  EXPECT_EQ(OwnThreads(), threads);
}

TEST_P(BlockDeviceTest, WritesReachTheImageAndReadsComeBack) {
  Start();
  // 200 KiB in two data buffers, one preadv/pwritev each way.
  constexpr size_t kBytes = 200 << 10;
  Fill(kData, kBytes, 3);
  Header(kTypeOut, 8);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 100 << 10, false},
                      {GuestAddress(kData + (100 << 10)), 100 << 10, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  EXPECT_EQ(FileBytes(image_, 8 * 512, kBytes), Guest(kData, kBytes));

  Header(kTypeIn, 8);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(0x100000), kBytes, true},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(kBytes + 1, kStatusOk));
  EXPECT_EQ(Guest(0x100000, kBytes), Guest(kData, kBytes));
  const BlockDevice::Stats s = device_->stats();
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(s.reads, 1u);
  EXPECT_EQ(s.bytes_written, kBytes);
  EXPECT_EQ(s.bytes_read, kBytes);
}

TEST_P(BlockDeviceTest, FlushGetIdDiscardAndWriteZeroes) {
  Start();
  Header(kTypeFlush, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}, {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  Header(kTypeGetId, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 20, true},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(21u, kStatusOk));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(Guest(kData, 20).data()), 6),
            std::string("disk0\0", 6));

  // Write-zeroes of sectors 4-5 of the 0xaa image: zeros there, 0xaa around.
  Header(kTypeWriteZeroes, 0);
  ASSERT_OK(memory_->WriteObj(GuestAddress(kData), uint64_t{4}));
  ASSERT_OK(memory_->WriteObj(GuestAddress(kData + 8), uint32_t{2}));
  ASSERT_OK(memory_->WriteObj(GuestAddress(kData + 12), uint32_t{0}));
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 16, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  EXPECT_EQ(FileBytes(image_, 4 * 512, 1024), std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(FileBytes(image_, 3 * 512, 512), std::vector<uint8_t>(512, 0xaa));
  EXPECT_EQ(FileBytes(image_, 6 * 512, 512), std::vector<uint8_t>(512, 0xaa));

  // Discard: a hint; whatever the file system does, the request succeeds.
  Header(kTypeDiscard, 0);
  ASSERT_OK(memory_->WriteObj(GuestAddress(kData + 12), uint32_t{0}));
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 16, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  const BlockDevice::Stats s = device_->stats();
  EXPECT_EQ(s.flushes, 1u);
  EXPECT_EQ(s.get_ids, 1u);
  EXPECT_EQ(s.write_zeroes, 1u);
  EXPECT_EQ(s.discards, 1u);
}

TEST_P(BlockDeviceTest, RefusedRequestsTouchNothing) {
  Start();
  Fill(kData, 1024, 9);
  Header(kTypeOut, kImageBytes / 512 - 1);  // Two sectors from the last one.
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 1024, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusIoErr));
  EXPECT_EQ(FileBytes(image_, kImageBytes - 512, 512), std::vector<uint8_t>(512, 0xaa));
  Header(99, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}, {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusUnsupported));
  // No status byte: returned with nothing written.
  Header(kTypeIn, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}}), ::testing::Pair(0u, 0xee));
  EXPECT_EQ(device_->stats().refused, 3u);
}

TEST_P(BlockDeviceTest, AReadOnlyDiskRefusesWrites) {
  Start({.read_only = true});
  EXPECT_TRUE(device_->device_features() & kFeatureRo);
  EXPECT_FALSE(device_->device_features() & kFeatureDiscard);
  Fill(kData, 512, 1);
  Header(kTypeOut, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 512, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusIoErr));
  EXPECT_EQ(FileBytes(image_, 0, 512), std::vector<uint8_t>(512, 0xaa));
}

TEST_P(BlockDeviceTest, ABrokenRingAsksForAReset) {
  Start();
  driver_->SetDesc(0, {kData, 16, virtio::kDescNext, 0});  // A loop.
  driver_->Publish(0);
  device_->QueueNotify(0);
  ASSERT_TRUE(WaitFor(1));
  std::lock_guard<std::mutex> l(mu_);
  EXPECT_EQ(resets_asked_, 1);
}

TEST_P(BlockDeviceTest, ResetStopsTheWorkerAndAnotherActivationServesAgain) {
  Start();
  device_->Reset();
  device_->Reset();
  driver_.emplace(*memory_, GuestAddress(kRings + 0x10000), 16);
  ASSERT_OK(memory_->Write(GuestAddress(kRings + 0x10000),
                           std::vector<uint8_t>(DriverQueue::Footprint(16), 0)));
  Activate();
  Header(kTypeFlush, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false}, {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
}

TEST_P(BlockDeviceTest, ManyChainsInFlightAreEachAnsweredOnce) {
  Start();
  // Six requests in one notification (15 of the queue's 16 descriptors): reads of sectors 0-2,
  // after a write of a pattern to them, and flushes. The io_uring engine has them all in flight
  // at once and answers them as they complete, in any order.
  constexpr uint64_t kOut = 0x200000, kIn = 0x280000, kHeaders = 0x300000, kStatuses = 0x301000;
  Fill(kOut, 8 * 512, 5);
  Header(kTypeOut, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kOut), 8 * 512, false},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusOk));
  std::map<uint32_t, uint64_t> heads;  // head -> request number
  for (uint64_t i = 0; i < 6; ++i) {
    const uint64_t header = kHeaders + 16 * i;
    const bool read = i % 2 == 0;
    ASSERT_OK(memory_->WriteObj(GuestAddress(header), read ? kTypeIn : kTypeFlush));
    ASSERT_OK(memory_->WriteObj(GuestAddress(header + 4), uint32_t{0}));
    ASSERT_OK(memory_->WriteObj(GuestAddress(header + 8), read ? i / 2 : 0));
    ASSERT_OK(memory_->WriteObj(GuestAddress(kStatuses + i), uint8_t{0xee}));
    std::vector<DriverQueue::Buf> bufs = {{GuestAddress(header), 16, false}};
    if (read) bufs.push_back({GuestAddress(kIn + 512 * (i / 2)), 512, true});
    bufs.push_back({GuestAddress(kStatuses + i), 1, true});
    heads[driver_->Add(bufs)] = i;
  }
  device_->QueueNotify(0);
  std::vector<Used> used;
  for (int tries = 0; used.size() < 6 && tries < 1000; ++tries) {
    for (const Used& u : driver_->TakeUsed()) used.push_back(u);
    if (used.size() < 6) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(used.size(), 6u);
  std::set<uint32_t> seen;
  for (const Used& u : used) {
    ASSERT_EQ(heads.count(u.id), 1u) << u.id;
    EXPECT_TRUE(seen.insert(u.id).second) << "answered twice: " << u.id;
    const uint64_t i = heads[u.id];
    EXPECT_EQ(u.len, i % 2 == 0 ? 513u : 1u) << i;
    EXPECT_EQ(*memory_->ReadObj<uint8_t>(GuestAddress(kStatuses + i)), kStatusOk) << i;
  }
  EXPECT_EQ(Guest(kIn, 3 * 512), Guest(kOut, 3 * 512));
  const BlockDevice::Stats st = device_->stats();
  EXPECT_EQ(st.reads, 3u);
  EXPECT_EQ(st.flushes, 3u);
  EXPECT_EQ(st.refused, 0u);
}

TEST_P(BlockDeviceTest, AnImageThatShrankUnderTheVmFailsTheReadPastItsEnd) {
  Start();
  // Another process cuts the image to half its size: a read of the last sectors the guest was
  // offered finds the end of the file (a short transfer, for the io_uring engine) and fails.
  ASSERT_EQ(::truncate(image_.c_str(), kImageBytes / 2), 0);
  Header(kTypeIn, kImageBytes / 512 - 8);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 4096, true},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusIoErr));
  // One that straddles the new end: the part that is there, then the end.
  Header(kTypeIn, kImageBytes / 1024 - 4);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 4096, true},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(1u, kStatusIoErr));
  // Within what is left: served.
  Header(kTypeIn, 0);
  EXPECT_THAT(Submit({{GuestAddress(kHeader), 16, false},
                      {GuestAddress(kData), 4096, true},
                      {GuestAddress(kStatus), 1, true}}),
              ::testing::Pair(4097u, kStatusOk));
  EXPECT_EQ(device_->stats().refused, 2u);
}

INSTANTIATE_TEST_SUITE_P(Engines, BlockDeviceTest,
                         ::testing::Values(BlockEngine::kThreads, BlockEngine::kIoUring),
                         [](const ::testing::TestParamInfo<BlockEngine>& info) {
                           return info.param == BlockEngine::kIoUring ? "IoUring" : "Threads";
                         });

TEST(BlockEngineTest, NamesParseBack) {
  for (BlockEngine e : {BlockEngine::kThreads, BlockEngine::kIoUring}) {
    EXPECT_THAT(ParseBlockEngine(BlockEngineName(e)), IsOkAndHolds(e));
  }
  EXPECT_THAT(ParseBlockEngine("aio").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threads or io_uring")));
}

TEST(BlockDeviceCreateTest, RefusesBadOptions) {
  GuestMemory memory = virtio::testing::TestGuestMemory(1 << 20);
  const std::string path = MakeImage("options.img");
  const std::pair<BlockOptions, const char*> bad[] = {
      {{.queues = 0}, "0 queues"},
      {{.queues = 17}, "17 queues"},
      {{.queue_size = 48}, "queue size 48"},
      {{.queue_size = 2048}, "queue size 2048"},
  };
  for (const auto& [options, message] : bad) {
    ASSERT_OK_AND_ASSIGN(DiskImage disk, DiskImage::Open(path, {}));
    EXPECT_THAT(
        BlockDevice::Create(std::move(disk), std::make_unique<IdentityDmaSpace>(memory), options)
            .status(),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)));
  }
  ASSERT_OK_AND_ASSIGN(DiskImage disk, DiskImage::Open(path, {}));
  EXPECT_THAT(BlockDevice::Create(std::move(disk), nullptr, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no DMA space")));
}

TEST(DiskImageTest, LocksAgainstASecondWriter) {
  const std::string path = MakeImage("locked.img");
  ASSERT_OK_AND_ASSIGN(DiskImage writer, DiskImage::Open(path, {}));
  EXPECT_THAT(DiskImage::Open(path, {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("locked by another")));
  EXPECT_THAT(DiskImage::Open(path, {.read_only = true}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  { DiskImage gone = std::move(writer); }
  ASSERT_OK_AND_ASSIGN(DiskImage r1, DiskImage::Open(path, {.read_only = true}));
  ASSERT_OK_AND_ASSIGN(DiskImage r2, DiskImage::Open(path, {.read_only = true}));
  EXPECT_THAT(DiskImage::Open(path, {}).status(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(r1.capacity(), kImageBytes / 512);
}

TEST(DiskImageTest, RefusesWhatIsNotAnImageAndAccessesPastTheEnd) {
  EXPECT_THAT(DiskImage::Open("/nonexistent/disk.img", {}).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(DiskImage::Open(std::getenv("TEST_TMPDIR"), {.read_only = true}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  EXPECT_THAT(DiskImage::Open(MakeImage("tiny.img", 0, 100), {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("less than one")));
  ASSERT_OK_AND_ASSIGN(DiskImage d, DiskImage::Open(MakeImage("odd.img", 0, 1000), {}));
  EXPECT_EQ(d.size(), 512u);  // Rounded down to whole sectors.
  uint8_t b[16];
  EXPECT_THAT(d.Read(510, absl::MakeSpan(b)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(d.Write(~uint64_t{0} - 4, absl::MakeConstSpan(b)),
              StatusIs(absl::StatusCode::kOutOfRange));
  ASSERT_OK_AND_ASSIGN(DiskImage ro, DiskImage::Open(MakeImage("ro.img"), {.read_only = true}));
  EXPECT_THAT(ro.Write(0, absl::MakeConstSpan(b)), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_OK(ro.Flush());
}

}  // namespace
}  // namespace vmmkit::virtio_blk
