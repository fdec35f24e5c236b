// File: virtio_blk/block_device.h
// -----------------------------------------------------------------------------
// BlockDevice is virtio-blk (device type 2) over a DiskImage, the device-type half of a
// virtio_pci::VirtioPciFunction. It offers SEG_MAX, BLK_SIZE, FLUSH, DISCARD, WRITE_ZEROES, MQ
// with more than one queue, and RO for a read-only image; its configuration space carries the
// capacity and those limits. Each queue is served by a worker thread of its own, woken by the
// queue's notifier (an eventfd: the transport's QueueNotify writes it, or KVM does through an
// ioeventfd), so no vCPU ever waits on the host's storage. The workers are started by Create and
// live as long as the device, idle until the driver activates their queue: a thread inherits its
// creator's confinement (seccomp filters stack), so they come from the thread that made the
// device, never from the vCPU whose write activated it. A worker pops each
// chain, parses it (ParseRequest), does the I/O between the image and the guest's DMA space
// (directly on guest memory where the space can name it: DiskImage::ReadTo), writes the status byte
// and returns the chain; then interrupts the guest if it asked. A ring the guest broke makes the
// device ask for a reset.
//
//   ASSIGN_OR_RETURN(DiskImage disk, DiskImage::Open(path, {.read_only = ro}));
//   ASSIGN_OR_RETURN(auto blk, BlockDevice::Create(std::move(disk), guest_physical_dma,
//                                                  {.id = "disk0", .queues = 2},
//                                                  machine.DmaFor(rid)));
//   ASSIGN_OR_RETURN(auto fn, virtio_pci::VirtioPciFunction::Create(blk, send_msi));
//
// Two engines serve a queue. kThreads: the worker does each request's I/O itself (preadv,
// pwritev, fdatasync), one at a time. kIoUring: the worker hands reads, writes and flushes to an
// io_uring of its own (uring::Ring, confined to the image) and answers them as they complete,
// up to a queue's size in flight; requests through a translating DMA space (the vIOMMU's, whose
// mappings the guest may change while the kernel works) and the rest (GET_ID, DISCARD,
// WRITE_ZEROES) it still does itself. The rings are made by Create, so the workers need
// io_uring_enter only.
//
// Flush is fdatasync on the image: a FLUSH the guest saw complete survives the host process
// dying. Workers announce themselves as ThreadStarted("virtio-blk") before touching guest data.
//
// Thread-safety: the VirtioDevice methods come from the transport (vCPU threads), the workers run
// on their own; stats() from any thread.

#ifndef VMMKIT_VIRTIO_BLK_BLOCK_DEVICE_H_
#define VMMKIT_VIRTIO_BLK_BLOCK_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "memory/dma_space.h"
#include "uring/ring.h"
#include "virtio/workers.h"
#include "virtio_blk/disk_image.h"
#include "virtio_blk/engine.h"
#include "virtio_blk/request.h"
#include "virtio_pci/transport.h"

namespace vmmkit::virtio_blk {

// virtio-blk feature bits.
inline constexpr uint64_t kFeatureSegMax = uint64_t{1} << 2;
inline constexpr uint64_t kFeatureRo = uint64_t{1} << 5;
inline constexpr uint64_t kFeatureBlkSize = uint64_t{1} << 6;
inline constexpr uint64_t kFeatureFlush = uint64_t{1} << 9;
inline constexpr uint64_t kFeatureMq = uint64_t{1} << 12;
inline constexpr uint64_t kFeatureDiscard = uint64_t{1} << 13;
inline constexpr uint64_t kFeatureWriteZeroes = uint64_t{1} << 14;

struct BlockOptions {
  std::string id;             // GET_ID's answer (its first 20 bytes).
  uint16_t queues = 1;        // 1 to 16.
  uint16_t queue_size = 256;  // A power of two, 2 to 1024.
  BlockEngine engine = BlockEngine::kThreads;
};

class BlockDevice : public virtio_pci::VirtioDevice {
 public:
  // Segments a request may have (the config's seg_max); ranges per discard / write-zeroes.
  // As QEMU's: a queue's size less the header and status (Linux's driver uses indirect tables).
  static constexpr uint32_t kSegMax = 254;
  static constexpr uint32_t kMaxRanges = 16;
  static constexpr uint32_t kConfigSize = 60;

  struct Stats {
    uint64_t reads = 0, writes = 0, flushes = 0, discards = 0, write_zeroes = 0, get_ids = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
    uint64_t refused = 0;  // Requests answered with IOERR or UNSUPP, or not answerable.
  };

  // `dma` reaches guest-physical memory. With `platform_dma` (the device's space behind a
  // guest-visible IOMMU) the device offers ACCESS_PLATFORM, and uses that space when the driver
  // accepts it (its buffers are then IOVAs it mapped); a driver that declines it gives
  // guest-physical addresses, as the virtio spec has it. INVALID_ARGUMENT for options out of
  // range or a null `dma`; io_uring's error making the rings (UNIMPLEMENTED or
  // PERMISSION_DENIED where the kernel has none or refuses it).
  static absl::StatusOr<std::shared_ptr<BlockDevice>> Create(
      DiskImage disk, std::unique_ptr<DmaSpace> dma, BlockOptions options,
      std::unique_ptr<DmaSpace> platform_dma = nullptr);
  // Stops and joins the workers.
  ~BlockDevice() override;

  uint16_t device_type() const override { return 2; }
  uint32_t class_code() const override { return 0x018000; }  // Mass storage, other.
  uint64_t device_features() const override;
  uint16_t num_queues() const override { return options_.queues; }
  uint16_t max_queue_size() const override { return options_.queue_size; }
  uint32_t config_size() const override { return kConfigSize; }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override;
  absl::Status Activate(virtio_pci::Activation activation) override;
  void QueueNotify(uint16_t index) override;
  void Reset() override;

  // The eventfd that wakes queue `index`'s worker (a VMM registers it as the ioeventfd of the
  // queue's notify address).
  const EventFd& notifier(uint16_t index) const { return notifiers_[index]; }
  const DiskImage& disk() const { return disk_; }
  BlockEngine engine() const { return options_.engine; }
  Stats stats() const;

 private:
  BlockDevice(DiskImage disk, std::unique_ptr<DmaSpace> dma, std::unique_ptr<DmaSpace> platform,
              BlockOptions options, std::vector<EventFd> notifiers);
  // Worker `index`'s service of its queue, until `stop_fd` is readable.
  void Serve(uint16_t index, virtio::SplitQueue queue, const DmaSpace& dma, int stop_fd);
  // Executes one parsed request; returns the status and the bytes written to the guest.
  std::pair<uint8_t, uint32_t> Execute(const Request& r, const DmaSpace& dma);
  // The io_uring engine's request in flight, and the start and end of one.
  struct InFlight;
  bool Start(const Request& r, uint16_t head, const DmaSpace& dma, uring::Ring& ring,
             InFlight& slot, uint64_t tag);
  std::pair<uint8_t, uint32_t> Finish(InFlight& slot, int32_t result, const DmaSpace& dma);
  // Counts a read (kTypeIn) or write of `bytes` that succeeded; its status and the bytes the
  // guest gets.
  std::pair<uint8_t, uint32_t> Moved(uint32_t type, uint64_t bytes);

  const DiskImage disk_;
  const std::unique_ptr<DmaSpace> dma_;
  const std::unique_ptr<DmaSpace> platform_dma_;  // Null without a guest IOMMU.
  const BlockOptions options_;
  std::vector<uint8_t> config_;  // The configuration space, built once.
  std::vector<EventFd> notifiers_;
  // One per queue with the io_uring engine, made before the workers start; worker i alone uses
  // rings_[i] until it is joined.
  std::vector<uring::Ring> rings_;
  // Activate and Reset, which may come from different vCPUs. What Activate sets here before handing
  // the queues over the workers read without it: QueueWorkers orders the hand-over, and Reset
  // clears them only once the workers have stopped.
  Mutex activation_mu_;
  virtio_pci::Interrupt interrupt_;
  std::function<void()> needs_reset_;
  const DmaSpace* active_dma_ = nullptr;  // dma_ or platform_dma_.

  std::atomic<uint64_t> reads_{0}, writes_{0}, flushes_{0}, discards_{0}, write_zeroes_{0},
      get_ids_{0}, bytes_read_{0}, bytes_written_{0}, refused_{0};
  // Last: destroyed (joined) first, before anything they use.
  virtio::QueueWorkers<virtio::SplitQueue> workers_;
};

}  // namespace vmmkit::virtio_blk

#endif  // VMMKIT_VIRTIO_BLK_BLOCK_DEVICE_H_
