// Fuzzes a Bus as the VMM's exit dispatch uses it while devices come and go: inserts and removals
// of ranges anywhere in the 64-bit space (overlapping, empty, wrapping), and reads and writes at
// any address and size. Checked against a model of the ranges: an insert succeeds exactly when
// the range is non-empty, does not wrap and overlaps nothing; an access reaches a device exactly
// when it lies inside one device's range, at the offset from its base; anything else reads as
// not handled.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "devices/bus.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::devices {
namespace {

// Records the last access it was given.
class Probe : public BusDevice {
 public:
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
    ++accesses;
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
    ++accesses;
  }
  uint64_t last_offset = 0, last_size = 0, accesses = 0;
};

void Run(const uint8_t* data, size_t size) {
  Bus bus("fuzz");
  struct Range {
    uint64_t size;
    std::shared_ptr<Probe> probe;
  };
  std::map<uint64_t, Range> model;
  fuzzing::FuzzInput in(data, size);
  // Addresses from a small set of bases, so that ranges meet and overlap.
  auto address = [&] {
    const uint64_t bases[] = {0, 0x1000, 0xcf8, 0xfee00000, ~uint64_t{0} - 0xfff};
    return bases[in.Take<uint8_t>() % 5] + (in.Take<uint16_t>() % 0x2000);
  };
  for (int ops = 0; !in.done() && ops < 512; ++ops) {
    const uint8_t op = in.Take<uint8_t>() % 4;
    if (op == 0) {
      const uint64_t base = address();
      const uint64_t len = in.Take<uint16_t>() % 0x1800;
      auto probe = std::make_shared<Probe>();
      const bool ok = bus.Insert(probe, base, len).ok();
      bool fits = len > 0 && base + len - 1 >= base;
      for (const auto& [b, r] : model) {
        if (fits && base <= b + r.size - 1 && b <= base + len - 1) fits = false;
      }
      fuzzing::Require(ok == fits, "an insert the model disagrees with");
      if (ok) model[base] = {len, probe};
    } else if (op == 1) {
      const uint64_t base = address();
      const bool ok = bus.Remove(base).ok();
      fuzzing::Require(ok == model.contains(base), "a removal the model disagrees with");
      model.erase(base);
    } else {
      const uint64_t at = address();
      const size_t len = 1 + in.Take<uint8_t>() % 8;
      uint8_t buf[8] = {};
      const bool handled = op == 2 ? bus.Read(at, absl::MakeSpan(buf, len))
                                   : bus.Write(at, absl::MakeConstSpan(buf, len));
      const Range* owner = nullptr;
      uint64_t owner_base = 0;
      for (const auto& [b, r] : model) {
        if (at >= b && at - b < r.size && len <= r.size - (at - b)) {
          owner = &r;
          owner_base = b;
        }
      }
      fuzzing::Require(handled == (owner != nullptr), "an access the model disagrees with");
      if (owner != nullptr) {
        fuzzing::Require(
            owner->probe->last_offset == at - owner_base && owner->probe->last_size == len,
            "a device saw the wrong offset or size");
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit::devices

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::devices::Run(data, size);
  return 0;
}
