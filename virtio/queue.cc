#include "virtio/queue.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"

namespace vmmkit::virtio {
namespace {

constexpr uint64_t kRingHeader = 4;  // flags, idx.

struct UsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElem) == 8);

absl::Status Malformed(auto&&... parts) {
  return absl::InvalidArgumentError(absl::StrCat("virtqueue: ", parts...));
}

// Where the area of `bytes` at `base` ends, or an error if it wraps.
absl::Status CheckArea(const char* name, Iova base, uint64_t alignment, uint64_t bytes) {
  if (!base.IsAligned(alignment)) {
    return absl::InvalidArgumentError(absl::StrCat("virtqueue: the ", name, " at 0x",
                                                   absl::Hex(base.raw()), " is not ", alignment,
                                                   "-byte aligned"));
  }
  if (!base.TryAdd(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("virtqueue: the ", name, " at 0x",
                                                   absl::Hex(base.raw()), " (", bytes,
                                                   " bytes) wraps the address space"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SplitQueue> SplitQueue::Create(const QueueConfig& config) {
  const uint32_t n = config.size;
  if (n == 0 || n > kMaxSize || (n & (n - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtqueue: size ", n, " is not a power of two from 1 to ", kMaxSize));
  }
  if (absl::Status s = CheckArea("descriptor table", config.desc, 16, 16 * uint64_t{n}); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckArea("avail ring", config.avail, 2, kRingHeader + 2 * uint64_t{n} + 2);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckArea("used ring", config.used, 4, kRingHeader + 8 * uint64_t{n} + 2);
      !s.ok()) {
    return s;
  }
  return SplitQueue(config);
}

absl::Status SplitQueue::Break(absl::Status status) {
  if (!broken_) broken_ = status;
  return status;
}

absl::Status SplitQueue::CheckUsable() const {
  if (!broken_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("virtqueue: broken until reset: ", broken_->message()));
}

absl::StatusOr<uint16_t> SplitQueue::ReadAvailIdx(const DmaSpace& dma) const {
  return dma.ReadObj<uint16_t>(Iova(config_.avail.raw() + 2));
}

absl::StatusOr<std::optional<DescriptorChain>> SplitQueue::Pop(const DmaSpace& dma) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  absl::StatusOr<uint16_t> avail_idx = ReadAvailIdx(dma);
  if (!avail_idx.ok()) return Break(avail_idx.status());
  const uint16_t pending = static_cast<uint16_t>(*avail_idx - next_avail_);
  if (pending == 0) return std::nullopt;
  if (pending > config_.size) {
    return Break(Malformed("the avail index ", *avail_idx, " is ", pending,
                           " ahead of the device's ", next_avail_, ", more than the queue size ",
                           config_.size));
  }
  // The entries the index covers are read after it.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t slot = next_avail_ & (config_.size - 1);
  absl::StatusOr<uint16_t> head =
      dma.ReadObj<uint16_t>(Iova(config_.avail.raw() + kRingHeader + 2 * slot));
  if (!head.ok()) return Break(head.status());
  DescriptorChain chain{.head = *head, .readable = {}, .writable = {}};
  if (absl::Status s = WalkChain(dma, *head, chain); !s.ok()) return Break(std::move(s));
  ++next_avail_;
  return chain;
}

absl::Status SplitQueue::WalkChain(const DmaSpace& dma, uint16_t head,
                                   DescriptorChain& chain) const {
  if (head >= config_.size) {
    return Malformed("chain head ", head, " is outside the descriptor table of ", config_.size);
  }
  std::vector<VirtqDesc> indirect;  // The indirect table, once the chain has entered one.
  uint32_t table_size = config_.size;
  uint32_t index = head;
  uint32_t hops = 0;
  while (true) {
    // Each descriptor of a table at most once: anything longer revisits one (a loop).
    if (++hops > table_size) {
      return Malformed("the chain at head ", head, " is longer than its ",
                       indirect.empty() ? "descriptor table" : "indirect table", " (", table_size,
                       " descriptors): a loop");
    }
    VirtqDesc d;
    if (!indirect.empty()) {
      d = indirect[index];
    } else {
      absl::StatusOr<VirtqDesc> read =
          dma.ReadObj<VirtqDesc>(Iova(config_.desc.raw() + 16 * uint64_t{index}));
      if (!read.ok()) return read.status();
      d = *read;
    }
    if (d.flags & kDescIndirect) {
      if (!config_.indirect) {
        return Malformed("descriptor ", index,
                         " is INDIRECT, but VIRTIO_F_INDIRECT_DESC was not negotiated");
      }
      if (!indirect.empty()) return Malformed("an INDIRECT descriptor inside an indirect table");
      if (d.flags & kDescNext) return Malformed("descriptor ", index, " is both INDIRECT and NEXT");
      if (d.len == 0 || d.len % sizeof(VirtqDesc) != 0 ||
          d.len / sizeof(VirtqDesc) > kMaxIndirect) {
        return Malformed("descriptor ", index, "'s indirect table of ", d.len,
                         " bytes is not 1 to ", kMaxIndirect, " descriptors of 16 bytes");
      }
      indirect.resize(d.len / sizeof(VirtqDesc));
      if (absl::Status s = dma.Read(
              Iova(d.addr), absl::MakeSpan(reinterpret_cast<uint8_t*>(indirect.data()), d.len));
          !s.ok()) {
        return s;
      }
      table_size = static_cast<uint32_t>(indirect.size());
      index = 0;
      hops = 0;
      continue;
    }
    // No buffer wraps the address space: a device may then address any byte of one as addr + i.
    if (d.len > 0 && !Iova(d.addr).TryAdd(d.len)) {
      return Malformed("descriptor ", index, "'s buffer at 0x", absl::Hex(d.addr), " (", d.len,
                       " bytes) wraps the address space");
    }
    const Buffer buffer{Iova(d.addr), d.len};
    if (d.flags & kDescWrite) {
      chain.writable.push_back(buffer);
      chain.writable_bytes += d.len;
    } else {
      if (!chain.writable.empty()) {
        return Malformed("the chain at head ", head,
                         " has a device-readable buffer after a device-writable one");
      }
      chain.readable.push_back(buffer);
      chain.readable_bytes += d.len;
    }
    if (chain.readable_bytes + chain.writable_bytes > (uint64_t{1} << 32)) {
      return Malformed("the chain at head ", head, " is longer than 4 GiB");
    }
    if (!(d.flags & kDescNext)) return absl::OkStatus();
    if (d.next >= table_size) {
      return Malformed("descriptor ", index, " links to ", d.next, ", outside its table of ",
                       table_size);
    }
    index = d.next;
  }
}

absl::Status SplitQueue::AddUsed(const DmaSpace& dma, uint16_t head, uint32_t written) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  if (head >= config_.size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "virtqueue: AddUsed of head ", head, ", outside the descriptor table of ", config_.size));
  }
  const uint64_t slot = next_used_ & (config_.size - 1);
  if (absl::Status s =
          dma.WriteObj(Iova(config_.used.raw() + kRingHeader + 8 * slot), UsedElem{head, written});
      !s.ok()) {
    return Break(std::move(s));
  }
  ++next_used_;
  ++added_since_interrupt_check_;
  // The element is visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  if (absl::Status s = dma.WriteObj<uint16_t>(Iova(config_.used.raw() + 2), next_used_); !s.ok()) {
    return Break(std::move(s));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SplitQueue::NeedsInterrupt(const DmaSpace& dma) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  const uint32_t added = added_since_interrupt_check_;
  added_since_interrupt_check_ = 0;
  if (added == 0) return false;
  // A full wrap of the used index since the last check: the driver's event index has certainly
  // been passed.
  if (added >= 0x10000) return true;
  // The used index is written before the driver's wish is read (the driver writes its wish, then
  // reads the used index: one of the two sides sees the other).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (config_.event_idx) {
    absl::StatusOr<uint16_t> used_event =
        dma.ReadObj<uint16_t>(Iova(config_.avail.raw() + kRingHeader + 2 * uint64_t{size()}));
    if (!used_event.ok()) return Break(used_event.status());
    // Interrupt if the used index moved past used_event in this batch: old < used_event + 1 <= new.
    const uint16_t old_used = static_cast<uint16_t>(next_used_ - added);
    return static_cast<uint16_t>(next_used_ - *used_event - 1) <
           static_cast<uint16_t>(next_used_ - old_used);
  }
  absl::StatusOr<uint16_t> flags = dma.ReadObj<uint16_t>(config_.avail);
  if (!flags.ok()) return Break(flags.status());
  return (*flags & kAvailNoInterrupt) == 0;
}

absl::StatusOr<bool> SplitQueue::EnableNotification(const DmaSpace& dma) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  absl::Status s =
      config_.event_idx
          ? dma.WriteObj<uint16_t>(Iova(config_.used.raw() + kRingHeader + 8 * uint64_t{size()}),
                                   next_avail_)
          : dma.WriteObj<uint16_t>(config_.used, 0);
  if (!s.ok()) return Break(std::move(s));
  // The wish is visible before the avail index is read again (the driver publishes its index,
  // then reads the wish: one of the two sides sees the other).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  absl::StatusOr<uint16_t> avail_idx = ReadAvailIdx(dma);
  if (!avail_idx.ok()) return Break(avail_idx.status());
  return *avail_idx != next_avail_;
}

absl::Status SplitQueue::DisableNotification(const DmaSpace& dma) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  if (config_.event_idx) return absl::OkStatus();
  if (absl::Status s = dma.WriteObj<uint16_t>(config_.used, kUsedNoNotify); !s.ok()) {
    return Break(std::move(s));
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::virtio
