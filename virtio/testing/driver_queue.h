// File: virtio/testing/driver_queue.h
// -----------------------------------------------------------------------------
// Testonly: DriverQueue plays the driver's side of a split virtqueue in guest memory, as Linux's
// virtio_ring does, so that a device (or SplitQueue alone) can be tested without a guest: it lays
// out the three areas, writes chains (direct or through an indirect table) and makes them
// available, sets the driver's notification wishes, and takes what the device used. For
// malformed rings it also writes raw descriptors and indexes. Any access outside guest memory
// aborts: that is the test's bug, not the device's.
//
//   DriverQueue driver(memory, GuestAddress(0x10000), 16);
//   ASSERT_OK_AND_ASSIGN(SplitQueue q, SplitQueue::Create(driver.config()));
//   uint16_t head = driver.Add({{request, 16, false}, {status, 1, true}});
//   ... the device pops and AddUseds ...
//   EXPECT_THAT(driver.TakeUsed(), ElementsAre(Used{head, 1}));

#ifndef VMMKIT_VIRTIO_TESTING_DRIVER_QUEUE_H_
#define VMMKIT_VIRTIO_TESTING_DRIVER_QUEUE_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace vmmkit::virtio::testing {

// Guest RAM of `bytes` from address 0, for a device's test or fuzz target. Aborts if it cannot be
// had: the target would have nothing to run on.
inline GuestMemory TestGuestMemory(uint64_t bytes) {
  absl::StatusOr<GuestMemory> m = GuestMemory::CreateRam({{GuestAddress(0), bytes}});
  if (!m.ok()) {
    std::fprintf(stderr, "TestGuestMemory: %s\n", m.status().ToString().c_str());
    std::abort();
  }
  return std::move(*m);
}

struct Used {
  uint32_t id;
  uint32_t len;
  bool operator==(const Used&) const = default;
};

class DriverQueue {
 public:
  // One buffer of a chain the driver makes available.
  struct Buf {
    GuestAddress addr;
    uint32_t len;
    bool device_writable;
  };

  // The rings of a `size`-entry queue from `base` (16-byte aligned): the descriptor table, the
  // avail ring right after it, the used ring at the next 4-byte boundary.
  DriverQueue(const GuestMemory& memory, GuestAddress base, uint16_t size)
      : memory_(memory),
        size_(size),
        desc_(base),
        avail_(base.raw() + 16 * uint64_t{size}),
        used_((avail_.raw() + 6 + 2 * uint64_t{size} + 3) & ~uint64_t{3}) {}

  // The bytes the three areas take from `base`.
  static uint64_t Footprint(uint16_t size) {
    return ((16 * uint64_t{size} + 6 + 2 * uint64_t{size} + 3) & ~uint64_t{3}) + 6 +
           8 * uint64_t{size};
  }

  QueueConfig config(bool event_idx = false, bool indirect = false) const {
    return {.size = size_,
            .desc = Iova(desc_.raw()),
            .avail = Iova(avail_.raw()),
            .used = Iova(used_.raw()),
            .event_idx = event_idx,
            .indirect = indirect};
  }

  // Writes `bufs` into the next free descriptors, linked in order, and makes the chain available.
  uint16_t Add(const std::vector<Buf>& bufs) {
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < bufs.size(); ++i) {
      const uint16_t index = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
      const bool last = i + 1 == bufs.size();
      SetDesc(index, Desc(bufs[i], last ? 0 : next_desc_, !last));
    }
    Publish(head);
    return head;
  }
  // Writes `bufs` as an indirect table at `table` and makes one descriptor pointing to it
  // available.
  uint16_t AddIndirect(GuestAddress table, const std::vector<Buf>& bufs) {
    for (size_t i = 0; i < bufs.size(); ++i) {
      const bool last = i + 1 == bufs.size();
      Put(GuestAddress(table.raw() + 16 * i),
          Desc(bufs[i], last ? 0 : static_cast<uint16_t>(i + 1), !last));
    }
    const uint16_t head = next_desc_;
    next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
    SetDesc(head, {table.raw(), static_cast<uint32_t>(16 * bufs.size()), kDescIndirect, 0});
    Publish(head);
    return head;
  }

  // Raw ring access, for rings a well-behaved driver would not write.
  void SetDesc(uint16_t index, const VirtqDesc& d) {
    Put(GuestAddress(desc_.raw() + 16 * uint64_t{index}), d);
  }
  // ring[avail idx] = head, then the index moves on (after the entry, as a driver's barrier
  // orders it).
  void Publish(uint16_t head) {
    Put(GuestAddress(avail_.raw() + 4 + 2 * static_cast<uint64_t>(avail_idx_ % size_)), head);
    SetAvailIdx(static_cast<uint16_t>(avail_idx_ + 1));
  }
  void SetAvailIdx(uint16_t idx) {
    avail_idx_ = idx;
    Put(GuestAddress(avail_.raw() + 2), idx);
  }
  void SetAvailFlags(uint16_t flags) { Put(avail_, flags); }
  void SetUsedEvent(uint16_t v) { Put(GuestAddress(avail_.raw() + 4 + 2 * uint64_t{size_}), v); }

  uint16_t used_idx() const { return Get<uint16_t>(GuestAddress(used_.raw() + 2)); }
  uint16_t used_flags() const { return Get<uint16_t>(used_); }
  uint16_t avail_event() const {
    return Get<uint16_t>(GuestAddress(used_.raw() + 4 + 8 * uint64_t{size_}));
  }
  // The used elements published since the last call, in order.
  std::vector<Used> TakeUsed() {
    std::vector<Used> out;
    for (const uint16_t idx = used_idx(); last_used_ != idx; ++last_used_) {
      out.push_back(
          Get<Used>(GuestAddress(used_.raw() + 4 + 8 * static_cast<uint64_t>(last_used_ % size_))));
    }
    return out;
  }

  GuestAddress desc() const { return desc_; }
  GuestAddress avail() const { return avail_; }
  GuestAddress used() const { return used_; }

 private:
  static VirtqDesc Desc(const Buf& b, uint16_t next, bool has_next) {
    return {
        b.addr.raw(), b.len,
        static_cast<uint16_t>((b.device_writable ? kDescWrite : 0) | (has_next ? kDescNext : 0)),
        next};
  }
  template <typename T>
  void Put(GuestAddress at, const T& value) const {
    if (!memory_.WriteObj(at, value).ok()) Die("write", at);
  }
  template <typename T>
  T Get(GuestAddress at) const {
    absl::StatusOr<T> v = memory_.ReadObj<T>(at);
    if (!v.ok()) Die("read", at);
    return *v;
  }
  [[noreturn]] static void Die(const char* what, GuestAddress at) {
    std::fprintf(stderr, "DriverQueue: %s at 0x%llx outside guest memory\n", what,
                 static_cast<unsigned long long>(at.raw()));
    std::abort();
  }

  const GuestMemory& memory_;
  const uint16_t size_;
  const GuestAddress desc_, avail_, used_;
  uint16_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
};

}  // namespace vmmkit::virtio::testing

#endif  // VMMKIT_VIRTIO_TESTING_DRIVER_QUEUE_H_
