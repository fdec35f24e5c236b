// File: virtio/queue.h
// -----------------------------------------------------------------------------
// SplitQueue is the device side of one virtio 1.x split virtqueue: it takes the chains the driver
// made available (direct or through one indirect table), hands each back through the used ring
// with the number of bytes written, and tells the device when the driver wants an interrupt
// (VIRTIO_F_EVENT_IDX or the avail ring's NO_INTERRUPT flag) and how to ask for fewer
// notifications. Every ring access goes through a DmaSpace: with VIRTIO_F_ACCESS_PLATFORM that is
// the vIOMMU's translating space, without it guest RAM as is; the queue never holds a host pointer.
//
//   ASSIGN_OR_RETURN(SplitQueue q, SplitQueue::Create({.size = 256, .desc = d, .avail = a,
//                                                      .used = u, .event_idx = true}));
//   while (true) {
//     ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, q.Pop(dma));
//     if (!chain) break;
//     ... read chain->readable, fill chain->writable ...
//     RETURN_IF_ERROR(q.AddUsed(dma, chain->head, bytes_written));
//   }
//   ASSIGN_OR_RETURN(bool interrupt, q.NeedsInterrupt(dma));
//
// Everything in the rings is the guest's and hostile: indexes, lengths, flags and links are
// checked before use, a chain is at most as long as its table (no loops), an indirect table is
// bounded, no buffer wraps the address space, and a driver that breaks the ring's rules breaks
// the queue: the error comes back once with what was wrong, and every later call returns
// FAILED_PRECONDITION until the device is reset (the device should then set DEVICE_NEEDS_RESET).
// Rules the virtio spec states for drivers are enforced here too where breaking them would make the
// device guess (INDIRECT with NEXT, an indirect table inside one, device-readable buffers after
// device-writable ones).
//
// Memory ordering (the driver runs concurrently on other CPUs): the avail index is read before
// the ring entries it covers (acquire); a used element is written before the used index that
// publishes it (release); the used index is written before the driver's used_event is read, and
// avail_event before the avail index is re-read (full fences), so no notification is lost.
//
// Thread-safety: one thread at a time (the thread serving this queue); none of it is locked.

#ifndef VMMKIT_VIRTIO_QUEUE_H_
#define VMMKIT_VIRTIO_QUEUE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/address.h"
#include "memory/dma_space.h"

namespace vmmkit::virtio {

// A descriptor as it lies in the table (little-endian, as on x86-64).
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;
// avail.flags: the driver wants no interrupt (without EVENT_IDX).
inline constexpr uint16_t kAvailNoInterrupt = 1;
// used.flags: the device wants no notification (without EVENT_IDX).
inline constexpr uint16_t kUsedNoNotify = 1;

// One buffer of a chain, at a bus address of the device's DmaSpace.
struct Buffer {
  Iova addr;
  uint32_t len;
  friend bool operator==(const Buffer&, const Buffer&) = default;
};

// A chain the driver made available: the device reads `readable` and writes `writable`, in order,
// then returns `head` with AddUsed. Each direction's total is at most 2^32 bytes, and no buffer
// wraps the address space (addr + len does not overflow).
struct DescriptorChain {
  uint16_t head;
  std::vector<Buffer> readable;
  std::vector<Buffer> writable;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

struct QueueConfig {
  uint16_t size = 0;       // A power of two, 1..kMaxSize.
  Iova desc;               // 16-byte aligned: size descriptors.
  Iova avail;              // 2-byte aligned: flags, idx, ring[size], used_event.
  Iova used;               // 4-byte aligned: flags, idx, ring[size] of {id, len}, avail_event.
  bool event_idx = false;  // VIRTIO_F_EVENT_IDX (kFeatureEventIdx) negotiated.
  bool indirect = false;   // VIRTIO_F_INDIRECT_DESC (kFeatureIndirectDesc) negotiated.
};

class SplitQueue {
 public:
  static constexpr uint16_t kMaxSize = 32768;
  // An indirect table holds at most this many descriptors (the spec sets no limit; Linux's
  // tables hold at most a queue's worth). Bounds what one chain can make the device allocate.
  static constexpr uint32_t kMaxIndirect = kMaxSize;

  // INVALID_ARGUMENT naming the field: a size that is 0, over kMaxSize or not a power of two; a
  // misaligned area; an area whose end wraps the address space.
  static absl::StatusOr<SplitQueue> Create(const QueueConfig& config);

  // The next chain the driver made available, or nullopt if there is none. The ring must be
  // broken (see above) for an error: INVALID_ARGUMENT for a malformed ring or chain, the
  // DmaSpace's error (OUT_OF_RANGE, or the vIOMMU's refusal) for memory the device cannot reach.
  absl::StatusOr<std::optional<DescriptorChain>> Pop(const DmaSpace& dma);
  // Puts `head` in the used ring with `written` bytes written to its writable buffers, and
  // publishes it. INVALID_ARGUMENT for a head outside the table (the device's own bug).
  absl::Status AddUsed(const DmaSpace& dma, uint16_t head, uint32_t written);
  // Whether the driver wants an interrupt for the chains added since the last call (and none if
  // none were).
  absl::StatusOr<bool> NeedsInterrupt(const DmaSpace& dma);
  // Asks the driver to notify the device of new chains again (after DisableNotification). Returns
  // whether chains arrived meanwhile, which the device must then Pop (their notification may have
  // been suppressed).
  absl::StatusOr<bool> EnableNotification(const DmaSpace& dma);
  // Asks the driver not to notify the device (it is popping anyway). Only a hint: without
  // EVENT_IDX it sets used.flags' NO_NOTIFY; with EVENT_IDX it does nothing (avail_event, left
  // where it is, already suppresses notifications until EnableNotification moves it).
  absl::Status DisableNotification(const DmaSpace& dma);

  uint16_t size() const { return config_.size; }
  // Where the driver put the rings (for handing the queue to another server: vhost).
  const QueueConfig& config() const { return config_; }
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }
  // The error that broke the queue, if any.
  const std::optional<absl::Status>& broken() const { return broken_; }

 private:
  explicit SplitQueue(const QueueConfig& config) : config_(config) {}
  // Records the first error and returns it.
  absl::Status Break(absl::Status status);
  absl::Status CheckUsable() const;
  absl::StatusOr<uint16_t> ReadAvailIdx(const DmaSpace& dma) const;
  // Walks the chain at `head` into `chain`.
  absl::Status WalkChain(const DmaSpace& dma, uint16_t head, DescriptorChain& chain) const;

  QueueConfig config_;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint32_t added_since_interrupt_check_ = 0;  // Chains added since the last NeedsInterrupt.
  std::optional<absl::Status> broken_;
};

}  // namespace vmmkit::virtio

#endif  // VMMKIT_VIRTIO_QUEUE_H_
