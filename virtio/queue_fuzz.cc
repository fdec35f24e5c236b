// Fuzzes SplitQueue as a hostile driver drives it: the descriptor table, the avail ring, the
// driver's event index and flags, and a region of indirect tables are whatever the fuzzer writes
// (links, flags, lengths, indexes, addresses in and out of guest memory), interleaved with the
// device popping, returning chains, and asking about interrupts and notifications. Checked: no
// call crashes or reads outside guest memory (ASan); a chain has at most a table's worth of
// buffers per table, device-readable ones first, each direction's total within 4 GiB and equal to
// its buffers' sum; the used index the driver sees counts exactly the chains returned; once an
// error breaks the queue, every call fails until the end.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "tools/testing/fuzz_input.h"
#include "virtio/queue.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio {
namespace {

using fuzzing::Require;

constexpr uint64_t kRamSize = 64 << 10;
constexpr GuestAddress kRings(0x1000);
constexpr GuestAddress kTables(0x4000);  // Indirect tables the fuzzer writes, 4 KiB.

void Run(const uint8_t* data, size_t size) {
  static const GuestMemory* memory = new GuestMemory(testing::TestGuestMemory(kRamSize));
  // A fresh ring every input: the fuzzer's bytes decide all of it.
  std::vector<uint8_t> zeros(kRamSize);
  Require(memory->Write(GuestAddress(0), zeros).ok(), "clearing guest memory");
  IdentityDmaSpace dma(*memory);
  fuzzing::FuzzInput in(data, size);

  const uint16_t queue_size = static_cast<uint16_t>(1u << (in.Take<uint8_t>() % 9));  // 1..256
  const uint8_t features = in.Take<uint8_t>();
  testing::DriverQueue driver(*memory, kRings, queue_size);
  absl::StatusOr<SplitQueue> created =
      SplitQueue::Create(driver.config(features & 1, (features & 2) != 0));
  Require(created.ok(), "a valid queue refused");
  SplitQueue& q = *created;
  // An address the fuzzer picks: mostly into the data area or the tables, sometimes anywhere.
  auto take_addr = [&]() -> uint64_t {
    const uint8_t kind = in.Take<uint8_t>();
    if (kind < 0xe0) return (kind & 1 ? kTables.raw() : 0x8000) + in.Take<uint16_t>() % 0x1000;
    return in.Take<uint64_t>();
  };
  auto take_desc = [&]() {
    VirtqDesc d;
    d.addr = take_addr();
    const uint8_t len_kind = in.Take<uint8_t>();
    d.len = len_kind < 0xf0 ? len_kind : in.Take<uint32_t>();
    d.flags = in.Take<uint8_t>() & 7;
    d.next = in.Take<uint8_t>() % (queue_size + 2);  // Sometimes just outside.
    return d;
  };

  uint16_t used = 0;
  bool broken = false;
  for (int ops = 0; !in.done() && ops < 256; ++ops) {
    switch (in.Take<uint8_t>() % 8) {
      case 0:  // The driver writes a descriptor.
        driver.SetDesc(in.Take<uint8_t>() % queue_size, take_desc());
        break;
      case 1: {  // ... or an indirect table entry.
        const uint64_t at = kTables.raw() + 16 * (in.Take<uint8_t>() % 256);
        Require(memory->WriteObj(GuestAddress(at), take_desc()).ok(), "table write");
        break;
      }
      case 2:  // ... makes a head available (any value).
        driver.Publish(in.Take<uint8_t>() % (queue_size + 2));
        break;
      case 3:  // ... moves the avail index anywhere.
        driver.SetAvailIdx(in.Take<uint16_t>());
        break;
      case 4:
        driver.SetUsedEvent(in.Take<uint16_t>());
        driver.SetAvailFlags(in.Take<uint8_t>() & 1);
        break;
      case 5: {  // The device pops, and returns the chain (or keeps it).
        absl::StatusOr<std::optional<DescriptorChain>> chain = q.Pop(dma);
        Require(!broken || !chain.ok(), "a broken queue popped");
        if (!chain.ok()) {
          broken = true;
          break;
        }
        if (!chain->has_value()) break;
        const DescriptorChain& c = **chain;
        Require(c.head < queue_size, "a head outside the table");
        // One table's worth directly, and one indirect table's worth (bounded).
        Require(c.readable.size() + c.writable.size() <= queue_size + SplitQueue::kMaxIndirect,
                "a chain longer than its tables");
        uint64_t r = 0, w = 0;
        for (const Buffer& b : c.readable) r += b.len;
        for (const Buffer& b : c.writable) w += b.len;
        Require(r == c.readable_bytes && w == c.writable_bytes, "totals disagree with buffers");
        Require(r + w <= (uint64_t{1} << 32), "a chain over 4 GiB");
        if (in.Take<uint8_t>() & 1) {
          const absl::Status s = q.AddUsed(dma, c.head, static_cast<uint32_t>(w));
          Require(s.ok(), "AddUsed failed on a ring in memory");
          ++used;
        }
        break;
      }
      case 6: {
        absl::StatusOr<bool> irq = q.NeedsInterrupt(dma);
        Require(!broken || !irq.ok(), "a broken queue answered");
        break;
      }
      default:
        if (in.Take<uint8_t>() & 1) {
          const absl::StatusOr<bool> more = q.EnableNotification(dma);
          Require(!broken || !more.ok(), "a broken queue answered");
        } else {
          const absl::Status s = q.DisableNotification(dma);
          Require(broken != s.ok(), "DisableNotification disagrees with the queue's state");
        }
        break;
    }
    Require(driver.used_idx() == used, "the used index does not count the chains returned");
  }
}

}  // namespace
}  // namespace vmmkit::virtio

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::virtio::Run(data, size);
  return 0;
}
