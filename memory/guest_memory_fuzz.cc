// Fuzzes GuestMemory with guest-controlled (address, length, data) triples against a layout with
// holes, adjacent regions and a region at the top of the address space. Every access either
// succeeds entirely inside one region (checked against the layout here) or fails with OUT_OF_RANGE
// / INVALID_ARGUMENT; ASan catches any byte touched outside the mappings.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "memory/guest_memory.h"

namespace {

vmmkit::GuestMemory& Memory() {
  static vmmkit::GuestMemory* mem = [] {
    auto m = vmmkit::GuestMemory::CreateRam({{vmmkit::GuestAddress(0), 0x2000},
                                             {vmmkit::GuestAddress(0x3000), 0x1000},
                                             {vmmkit::GuestAddress(0x4000), 0x1000},
                                             {vmmkit::GuestAddress(~uint64_t{0} - 0xfff), 0x1000}},
                                            {.backing = vmmkit::GuestRegionBacking::kAnonymous});
    if (!m.ok()) std::abort();  // Cannot run at all without the layout.
    return new vmmkit::GuestMemory(std::move(m).value());
  }();
  return *mem;
}

bool InsideOneRegion(uint64_t addr, uint64_t len) {
  const vmmkit::GuestRegion* r = Memory().FindRegion(vmmkit::GuestAddress(addr));
  auto last = vmmkit::RangeLast(addr, len);
  return r != nullptr && last && *last <= r->last().raw();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 11) return 0;
  uint64_t addr;
  std::memcpy(&addr, data, sizeof(addr));
  // Steer half the inputs near interesting edges so the replay driver hits them too.
  if (data[8] & 1) addr = (addr & 0x7fff) - 8;
  const uint16_t len = static_cast<uint16_t>(data[9] | (data[10] & 0x1f) << 8);
  std::vector<uint8_t> buf(data + 11, data + size);
  buf.resize(len);
  vmmkit::GuestMemory& mem = Memory();
  absl::Status s = (data[8] & 2) ? mem.Write(vmmkit::GuestAddress(addr), buf)
                                 : mem.Read(vmmkit::GuestAddress(addr), absl::MakeSpan(buf));
  const bool expect_ok = len == 0 || InsideOneRegion(addr, len);
  if (s.ok() != expect_ok) std::abort();
  if (!s.ok() && s.code() != absl::StatusCode::kOutOfRange) std::abort();
  auto host = mem.Translate(vmmkit::GuestAddress(addr), len);
  if (host.ok() != (len != 0 && expect_ok)) std::abort();
  return 0;
}
