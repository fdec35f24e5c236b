#include "virtio_blk/block_device.h"

#include <limits.h>
#include <poll.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::virtio_blk {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& config, size_t offset, T value) {
  std::memcpy(config.data() + offset, &value, sizeof(T));
}

// `ranges` less their first `skip` bytes.
std::vector<DmaRange> Skip(absl::Span<const DmaRange> ranges, uint64_t skip) {
  std::vector<DmaRange> rest;
  for (const DmaRange& r : ranges) {
    if (skip >= r.len) {
      skip -= r.len;
      continue;
    }
    rest.push_back({Iova(r.iova.raw() + skip), r.len - skip});
    skip = 0;
  }
  return rest;
}

}  // namespace

// A read, write or flush the kernel is doing for the guest (io_uring engine). Its iovecs name
// guest RAM and must live until the completion; `ranges` are the same memory as bus addresses,
// for finishing a short transfer.
struct BlockDevice::InFlight {
  uint16_t head = 0;
  uint32_t type = 0;
  Iova status_addr;
  uint64_t pos = 0;
  uint64_t bytes = 0;
  std::vector<DmaRange> ranges;
  std::vector<iovec> iov;
};

absl::StatusOr<std::shared_ptr<BlockDevice>> BlockDevice::Create(
    DiskImage disk, std::unique_ptr<DmaSpace> dma, BlockOptions options,
    std::unique_ptr<DmaSpace> platform_dma) {
  if (dma == nullptr) return absl::InvalidArgumentError("virtio-blk: no DMA space");
  if (options.queues < 1 || options.queues > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-blk: ", options.queues, " queues (1 to 16)"));
  }
  const uint32_t size = options.queue_size;
  if (size < 2 || size > 1024 || (size & (size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-blk: queue size ", size, " (a power of two from 2 to 1024)"));
  }
  std::vector<EventFd> notifiers;
  for (uint16_t i = 0; i < options.queues; ++i) {
    absl::StatusOr<EventFd> e = EventFd::Create();
    if (!e.ok()) return e.status();
    notifiers.push_back(std::move(*e));
  }
  std::shared_ptr<BlockDevice> device(new BlockDevice(std::move(disk), std::move(dma),
                                                      std::move(platform_dma), std::move(options),
                                                      std::move(notifiers)));
  if (device->options_.engine == BlockEngine::kIoUring) {
    for (uint16_t i = 0; i < device->options_.queues; ++i) {
      // As many in flight as the queue can hold chains: a completion always finds room.
      absl::StatusOr<uring::Ring> ring =
          uring::Ring::Create(device->options_.queue_size, {device->disk_.fd()});
      if (!ring.ok()) {
        return Prefixed(ring.status(), "virtio-blk: io_uring engine");
      }
      device->rings_.push_back(*std::move(ring));
    }
  }
  // Started here, on the creator's thread (see the header); the destructor joins them.
  RETURN_IF_ERROR(device->workers_.Start(
      device->options_.queues, "virtio-blk",
      [d = device.get()](size_t i, virtio::SplitQueue queue, int stop_fd) {
        d->Serve(static_cast<uint16_t>(i), std::move(queue), *d->active_dma_, stop_fd);
      }));
  return device;
}

BlockDevice::BlockDevice(DiskImage disk, std::unique_ptr<DmaSpace> dma,
                         std::unique_ptr<DmaSpace> platform, BlockOptions options,
                         std::vector<EventFd> notifiers)
    : disk_(std::move(disk)),
      dma_(std::move(dma)),
      platform_dma_(std::move(platform)),
      options_(std::move(options)),
      config_(kConfigSize, 0),
      notifiers_(std::move(notifiers)) {
  // struct virtio_blk_config, as far as the offered features reach.
  const uint64_t capacity = disk_.capacity();
  const uint32_t max_sectors =
      static_cast<uint32_t>(std::min<uint64_t>(capacity, std::numeric_limits<uint32_t>::max()));
  Put<uint64_t>(config_, 0, capacity);
  Put<uint32_t>(config_, 12, kSegMax);
  Put<uint32_t>(config_, 20, 512);  // blk_size
  Put<uint16_t>(config_, 34, options_.queues);
  Put<uint32_t>(config_, 36, max_sectors);  // max_discard_sectors
  Put<uint32_t>(config_, 40, kMaxRanges);   // max_discard_seg
  Put<uint32_t>(config_, 44, 1);            // discard_sector_alignment
  Put<uint32_t>(config_, 48, max_sectors);  // max_write_zeroes_sectors
  Put<uint32_t>(config_, 52, kMaxRanges);   // max_write_zeroes_seg
}

BlockDevice::~BlockDevice() { Reset(); }

uint64_t BlockDevice::device_features() const {
  uint64_t f = kFeatureSegMax | kFeatureBlkSize | kFeatureFlush;
  if (disk_.read_only()) {
    f |= kFeatureRo;
  } else {
    f |= kFeatureDiscard | kFeatureWriteZeroes;
  }
  if (options_.queues > 1) f |= kFeatureMq;
  if (platform_dma_ != nullptr) f |= virtio::kFeatureAccessPlatform;
  return f;
}

void BlockDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  if (offset > config_.size() || data.size() > config_.size() - offset) return;
  std::memcpy(data.data(), config_.data() + offset, data.size());
}

void BlockDevice::WriteConfig(uint32_t, absl::Span<const uint8_t>) {
  // Only writeback is writable in virtio-blk's configuration, and CONFIG_WCE is not offered.
}

absl::Status BlockDevice::Activate(virtio_pci::Activation activation) {
  MutexLock lock(activation_mu_);
  if (workers_.active()) return absl::FailedPreconditionError("virtio-blk: already active");
  if (activation.queues.size() != options_.queues) {
    return absl::InvalidArgumentError(absl::StrCat("virtio-blk: ", activation.queues.size(),
                                                   " queues activated, ", options_.queues,
                                                   " offered"));
  }
  interrupt_ = std::move(activation.interrupt);
  needs_reset_ = std::move(activation.needs_reset);
  const bool platform =
      platform_dma_ != nullptr && (activation.features & virtio::kFeatureAccessPlatform) != 0;
  active_dma_ = platform ? platform_dma_.get() : dma_.get();
  // Notifications that came before are stale: the workers drain their queues first anyway.
  for (EventFd& n : notifiers_) (void)n.Read();
  if (!workers_.Hand(std::move(activation.queues))) {
    return absl::InternalError("virtio-blk: the workers took no queues");
  }
  return absl::OkStatus();
}

void BlockDevice::QueueNotify(uint16_t index) {
  if (index < notifiers_.size()) (void)notifiers_[index].Write(1);
}

void BlockDevice::Reset() {
  MutexLock lock(activation_mu_);
  if (!workers_.active()) return;
  workers_.Stop();
  interrupt_ = nullptr;
  needs_reset_ = nullptr;
  active_dma_ = nullptr;
}

void BlockDevice::Serve(uint16_t index, virtio::SplitQueue queue, const DmaSpace& dma,
                        int stop_fd) {
  const DiskLimits limits{
      .capacity = disk_.capacity(), .read_only = disk_.read_only(), .max_ranges = kMaxRanges};
  uring::Ring* ring = rings_.empty() ? nullptr : &rings_[index];
  // The io_uring engine's requests in flight: one slot per chain the queue can hold.
  std::vector<InFlight> slots(ring != nullptr ? options_.queue_size : 0);
  std::vector<uint16_t> free_slots;
  for (size_t i = slots.size(); i > 0; --i) free_slots.push_back(static_cast<uint16_t>(i - 1));
  // Once the ring is broken nothing more is read from it or written to it.
  bool broken = false;
  // The status byte last: the guest reads it once the chain is used.
  auto answer = [&](uint16_t head, Iova status_addr, uint8_t status, uint32_t n) {
    if (status != kStatusOk) refused_.fetch_add(1, std::memory_order_relaxed);
    if (broken) return;
    uint32_t written = 0;
    if (dma.Write(status_addr, absl::MakeConstSpan(&status, 1)).ok()) written = n + 1;
    if (!queue.AddUsed(dma, head, written).ok()) broken = true;
  };
  auto complete = [&](uint64_t tag, int32_t result) {
    InFlight& slot = slots[tag];
    auto [status, n] = Finish(slot, result, dma);
    answer(slot.head, slot.status_addr, status, n);
    free_slots.push_back(static_cast<uint16_t>(tag));
  };
  // Starts (or, without a ring, serves) every available chain; stops early only where no slot
  // is free (a completion frees one and wakes this worker).
  auto drain = [&]() {
    while (!broken && (ring == nullptr || !free_slots.empty())) {
      absl::StatusOr<std::optional<virtio::DescriptorChain>> chain = queue.Pop(dma);
      if (!chain.ok()) {
        broken = true;
        return;
      }
      if (!chain->has_value()) return;
      absl::StatusOr<Request> r = ParseRequest(**chain, dma, limits);
      if (!r.ok()) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        if (!queue.AddUsed(dma, (*chain)->head, 0).ok()) broken = true;
        continue;
      }
      if (r->status != kStatusOk) {
        answer((*chain)->head, r->status_addr, r->status, 0);
        continue;
      }
      if (ring != nullptr &&
          Start(*r, (*chain)->head, dma, *ring, slots[free_slots.back()], free_slots.back())) {
        free_slots.pop_back();
        continue;
      }
      auto [status, n] = Execute(*r, dma);
      answer((*chain)->head, r->status_addr, status, n);
    }
  };
  // Hands the kernel what drain queued and answers what completed. A ring that cannot take them
  // (the host out of resources) breaks the queue: the device asks for a reset.
  auto submit_and_reap = [&]() {
    if (ring == nullptr) return;
    if (!ring->Submit().ok()) broken = true;
    ring->Reap(complete);
  };
  bool reported = false;
  pollfd fds[3] = {{notifiers_[index].fd(), POLLIN, 0},
                   {stop_fd, POLLIN, 0},
                   {ring != nullptr ? ring->fd() : -1, POLLIN, 0}};
  while (true) {
    // Drain, ask to be notified again, and drain once more if chains came meanwhile (their
    // notification may have been suppressed); then one interrupt for all of it. The interrupt
    // is the worker's last touch of the rings before it sleeps. Where every slot is in flight,
    // the worker sleeps until a completion instead.
    absl::StatusOr<bool> more = true;
    while (!broken) {
      drain();
      submit_and_reap();
      if (broken || (ring != nullptr && free_slots.empty())) break;
      more = queue.EnableNotification(dma);
      if (!more.ok()) broken = true;
      if (broken || !*more) break;
    }
    if (ring != nullptr) ring->Reap(complete);  // Also once broken: frees the slots.
    absl::StatusOr<bool> irq =
        broken ? absl::DataLossError("broken ring") : queue.NeedsInterrupt(dma);
    if (!irq.ok()) {
      broken = true;
      if (!reported) needs_reset_();
      reported = true;
    } else if (*irq) {
      interrupt_(index);
    }
    const int n = ::poll(fds, 3, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) break;
    if (fds[0].revents & POLLIN) (void)notifiers_[index].Read();
  }
  // The kernel may still write guest memory for requests in flight: wait for them, so that
  // nothing touches the guest once Reset returns. Requests the kernel never took cannot
  // complete, so a ring that still refuses them ends the wait rather than hang the reset.
  while (ring != nullptr && free_slots.size() < slots.size()) {
    if (!ring->Submit().ok() || !ring->WaitOne().ok()) break;
    ring->Reap(complete);
  }
}

bool BlockDevice::Start(const Request& r, uint16_t head, const DmaSpace& dma, uring::Ring& ring,
                        InFlight& slot, uint64_t tag) {
  slot.head = head;
  slot.type = r.type;
  slot.status_addr = r.status_addr;
  slot.pos = r.sector * kSectorSize;
  slot.bytes = r.data_bytes;
  if (r.type == kTypeFlush) return ring.QueueFdatasync(0, tag).ok();
  if (r.type != kTypeIn && r.type != kTypeOut) return false;
  // ParseRequest kept the request inside the image; checked again where the kernel is to do it.
  if (!disk_.CheckRange(r.type == kTypeIn ? "read" : "write", slot.pos, slot.bytes).ok()) {
    return false;
  }
  slot.ranges.clear();
  for (const Segment& s : r.data) slot.ranges.push_back({s.addr, s.len});
  if (!dma.HostIovecs(slot.ranges, slot.iov) || slot.iov.size() > IOV_MAX) return false;
  const absl::Status queued = r.type == kTypeIn ? ring.QueueReadv(0, slot.iov, slot.pos, tag)
                                                : ring.QueueWritev(0, slot.iov, slot.pos, tag);
  return queued.ok();
}

std::pair<uint8_t, uint32_t> BlockDevice::Finish(InFlight& slot, int32_t result,
                                                 const DmaSpace& dma) {
  const auto ioerr = std::pair<uint8_t, uint32_t>{kStatusIoErr, 0};
  if (slot.type == kTypeFlush) {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    return result == 0 ? std::pair<uint8_t, uint32_t>{kStatusOk, 0} : ioerr;
  }
  if (result < 0) return ioerr;
  // A short transfer (the file shrank, or the host ran out of space): the rest the worker does
  // itself, which ends it or names the failure.
  if (static_cast<uint64_t>(result) < slot.bytes) {
    const std::vector<DmaRange> rest = Skip(slot.ranges, static_cast<uint64_t>(result));
    const uint64_t at = slot.pos + static_cast<uint64_t>(result);
    const absl::Status done =
        slot.type == kTypeIn ? disk_.ReadTo(dma, rest, at) : disk_.WriteFrom(dma, rest, at);
    if (!done.ok()) return ioerr;
  }
  return Moved(slot.type, slot.bytes);
}

std::pair<uint8_t, uint32_t> BlockDevice::Moved(uint32_t type, uint64_t bytes) {
  if (type == kTypeIn) {
    reads_.fetch_add(1, std::memory_order_relaxed);
    bytes_read_.fetch_add(bytes, std::memory_order_relaxed);
    return {kStatusOk, static_cast<uint32_t>(bytes)};
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  bytes_written_.fetch_add(bytes, std::memory_order_relaxed);
  return {kStatusOk, 0};
}

std::pair<uint8_t, uint32_t> BlockDevice::Execute(const Request& r, const DmaSpace& dma) {
  const auto ioerr = std::pair<uint8_t, uint32_t>{kStatusIoErr, 0};
  switch (r.type) {
    case kTypeIn:
    case kTypeOut: {
      // Straight between the image and guest memory, all segments in one call where the DMA
      // space can name them (DiskImage::ReadTo).
      std::vector<DmaRange> ranges;
      ranges.reserve(r.data.size());
      for (const Segment& s : r.data) ranges.push_back({s.addr, s.len});
      const uint64_t pos = r.sector * kSectorSize;
      const absl::Status done =
          r.type == kTypeIn ? disk_.ReadTo(dma, ranges, pos) : disk_.WriteFrom(dma, ranges, pos);
      if (!done.ok()) return ioerr;
      return Moved(r.type, r.data_bytes);
    }
    case kTypeFlush:
      flushes_.fetch_add(1, std::memory_order_relaxed);
      return disk_.Flush().ok() ? std::pair<uint8_t, uint32_t>{kStatusOk, 0} : ioerr;
    case kTypeGetId: {
      uint8_t id[kIdBytes] = {};
      std::memcpy(id, options_.id.data(), std::min<size_t>(options_.id.size(), kIdBytes));
      uint32_t done = 0;
      for (const Segment& s : r.data) {
        if (!dma.Write(s.addr, absl::MakeConstSpan(id + done, s.len)).ok()) return ioerr;
        done += s.len;
      }
      get_ids_.fetch_add(1, std::memory_order_relaxed);
      return {kStatusOk, kIdBytes};
    }
    case kTypeDiscard:
    case kTypeWriteZeroes:
      for (const Range& range : r.ranges) {
        const uint64_t offset = range.sector * kSectorSize;
        const uint64_t length = uint64_t{range.sectors} * kSectorSize;
        absl::Status s = r.type == kTypeDiscard ? disk_.Discard(offset, length)
                                                : disk_.WriteZeroes(offset, length);
        // Discard is a hint: where the host cannot punch holes, nothing happens, and that is
        // allowed.
        if (!s.ok() && !(r.type == kTypeDiscard && absl::IsUnimplemented(s))) return ioerr;
      }
      (r.type == kTypeDiscard ? discards_ : write_zeroes_).fetch_add(1, std::memory_order_relaxed);
      return {kStatusOk, 0};
    default:
      return {kStatusUnsupported, 0};
  }
}

BlockDevice::Stats BlockDevice::stats() const {
  const auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {.reads = get(reads_),
          .writes = get(writes_),
          .flushes = get(flushes_),
          .discards = get(discards_),
          .write_zeroes = get(write_zeroes_),
          .get_ids = get(get_ids_),
          .bytes_read = get(bytes_read_),
          .bytes_written = get(bytes_written_),
          .refused = get(refused_)};
}

}  // namespace vmmkit::virtio_blk
