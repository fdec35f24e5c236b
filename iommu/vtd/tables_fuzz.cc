// Fuzzes the VT-d table readers on guest memory the fuzzer writes: context lookups for any
// requester under any root table, second-level translations and walks of any range (with a small
// read budget, as a self-referencing table would exhaust a large one), and interrupt remapping
// through any table. Checked: nothing crashes or reads outside guest memory (ASan); a walk
// reports naturally aligned power-of-two pages, in IOVA order, overlapping the range asked for;
// a translation is a page containing its IOVA; a remapped interrupt is a compatibility-format
// MSI.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "iommu/vtd/tables.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::iommu::vtd {
namespace {

constexpr uint64_t kRamSize = 1 << 20;

void Run(const uint8_t* data, size_t size) {
  std::shared_ptr<GuestRegion> region = *GuestRegion::Create(GuestAddress(0), kRamSize);
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create({region});
  fuzzing::FuzzInput in(data, size);
  // The first bytes are guest memory: tables at the start of RAM, where the pointers below go.
  for (uint64_t at = 0; at < 0x8000 && !in.done(); at += 8) {
    // Pointers into the first 32 KiB, with the low flag bits the fuzzer chose.
    uint64_t v = in.Take<uint64_t>();
    if (v & (uint64_t{1} << 62)) v = (v & 0xfff) | ((v >> 12) % 8) << 12;
    (void)ram->WriteObj(GuestAddress(at), v);
  }
  const TableLimits limits{.haw = 39, .sagaw = 0x6, .pass_through = true};
  for (int ops = 0; !in.done() && ops < 64; ++ops) {
    switch (in.Take<uint8_t>() % 3) {
      case 0: {
        const uint64_t root = uint64_t{in.Take<uint8_t>() % 16u} * 0x1000;
        (void)LookupContext(*ram, root, in.Take<uint16_t>(), limits);
        break;
      }
      case 1: {
        SecondLevelTable table{.root = uint64_t{in.Take<uint8_t>() % 8u} * 0x1000,
                               .levels = 3 + in.Take<uint8_t>() % 2};
        SecondLevelWalk walk(*ram, table, 39, /*max_reads=*/4096);
        const uint64_t iova = in.Take<uint64_t>() % table.iova_limit();
        PageLookup p = walk.Translate(iova);
        if (p.fault == FaultReason::kNone) {
          fuzzing::Require(p.page.has_value() && p.page->iova.raw() <= iova &&
                               iova - p.page->iova.raw() <= p.page->addr_mask,
                           "a translation that does not contain its IOVA");
        }
        const uint64_t start = in.Take<uint64_t>() % table.iova_limit();
        const uint64_t last = start + in.Take<uint32_t>();
        uint64_t previous_end = 0;
        (void)walk.Walk(start, last, [&](const IotlbEntry& e) {
          const uint64_t page = e.addr_mask + 1;
          fuzzing::Require(
              page != 0 && (page & e.addr_mask) == 0 && (e.iova.raw() & e.addr_mask) == 0,
              "a page that is not a naturally aligned power of two");
          fuzzing::Require(e.iova.raw() >= previous_end, "pages out of order or overlapping");
          fuzzing::Require(e.iova.raw() <= last && e.iova.raw() + e.addr_mask >= start,
                           "a page outside the range walked");
          previous_end = e.iova.raw() + page;
        });
        break;
      }
      default: {
        const InterruptTable table{.base = uint64_t{in.Take<uint8_t>() % 8u} * 0x1000,
                                   .entries = 1u << (1 + in.Take<uint8_t>() % 16)};
        const irq::MsiMessage msg{0xfee00000u | (in.Take<uint32_t>() & 0xfffff),
                                  in.Take<uint32_t>()};
        InterruptLookup r = RemapInterrupt(*ram, table, msg, in.Take<uint16_t>());
        fuzzing::Require(r.msg.ok() == (r.fault == FaultReason::kNone),
                         "a fault without an error or back");
        if (r.msg.ok()) {
          fuzzing::Require(
              !irq::IsRemappableFormat(*r.msg) && (r.msg->address >> 20 & 0xfff) == 0xfee,
              "a remapped interrupt that is not a compatibility-format MSI");
        }
        break;
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit::iommu::vtd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::iommu::vtd::Run(data, size);
  return 0;
}
