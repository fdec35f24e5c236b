// Fuzzes both halves of iommu/msi_remapper.h. The interrupt remapping table: entries decoded from
// any 128 bits, set and cleared at any index, any message remapped from any requester. The MSI
// IOVA window: registered anywhere, doorbells acquired and released in any order, with a fake
// mapper that refuses some maps. Checked: a remapped message is a compatibility-format MSI; the
// window never maps a page outside itself, never maps one page twice, and unmaps exactly what it
// mapped once the last reference goes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "iommu/msi_remapper.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::iommu {
namespace {

class FakeMapper : public DoorbellMapper {
 public:
  absl::Status MapDoorbell(Iova iova, uint64_t doorbell_page, uint64_t size) override {
    if (refuse) return absl::ResourceExhaustedError("refused");
    fuzzing::Require(!mapped.contains(iova.raw()), "a page mapped twice");
    mapped[iova.raw()] = size;
    (void)doorbell_page;
    return absl::OkStatus();
  }
  absl::Status UnmapDoorbell(Iova iova, uint64_t size) override {
    auto it = mapped.find(iova.raw());
    fuzzing::Require(it != mapped.end() && it->second == size, "an unmap of what was not mapped");
    mapped.erase(it);
    return absl::OkStatus();
  }
  std::map<uint64_t, uint64_t> mapped;
  bool refuse = false;
};

void Run(const uint8_t* data, size_t size) {
  fuzzing::FuzzInput in(data, size);
  InterruptRemappingTable irt(1 + in.Take<uint16_t>() % 4096);
  FakeMapper mapper;
  MsiIovaWindow window(mapper);
  uint64_t base = 0, window_size = 0;
  for (int ops = 0; !in.done() && ops < 256; ++ops) {
    switch (in.Take<uint8_t>() % 6) {
      case 0: {
        const uint64_t low = in.Take<uint64_t>(), high = in.Take<uint64_t>();
        (void)irt.Set(in.Take<uint16_t>() % 5000, Irte::Decode(low, high, in.Take<uint8_t>() & 1));
        break;
      }
      case 1:
        (void)irt.Clear(in.Take<uint16_t>() % 5000);
        break;
      case 2: {
        const MsiMessage msg{in.Take<uint64_t>() >> (in.Take<uint8_t>() % 64), in.Take<uint32_t>()};
        absl::StatusOr<MsiMessage> out = irt.Remap(msg, in.Take<uint16_t>());
        if (out.ok()) {
          fuzzing::Require(
              !irq::IsRemappableFormat(*out) && ((out->address >> 20) & 0xfff) == 0xfee,
              "a remapped message that is not a compatibility-format MSI");
        }
        break;
      }
      case 3: {
        const uint64_t b = uint64_t{in.Take<uint16_t>()} << 12;
        const uint64_t s = uint64_t{in.Take<uint8_t>()} << 12;
        if (window.Register(Iova(b), s).ok() && window_size == 0) {
          base = b;
          window_size = s;
        }
        break;
      }
      case 4: {
        std::vector<uint64_t> doorbells(in.Take<uint8_t>() % 8);
        for (auto& d : doorbells) d = 0xfee00000 + (in.Take<uint8_t>() % 4) * 0x1000;
        mapper.refuse = in.Take<uint8_t>() % 8 == 0;
        const size_t before = mapper.mapped.size();
        absl::StatusOr<std::vector<Iova>> iovas = window.Acquire(doorbells);
        if (!iovas.ok())
          fuzzing::Require(mapper.mapped.size() == before, "a failed acquire left mappings");
        mapper.refuse = false;
        break;
      }
      default: {
        std::vector<uint64_t> doorbells(in.Take<uint8_t>() % 4);
        for (auto& d : doorbells) d = 0xfee00000 + (in.Take<uint8_t>() % 4) * 0x1000;
        (void)window.Release(doorbells);
        break;
      }
    }
    fuzzing::Require(mapper.mapped.size() == window.mapped_pages(),
                     "the window and the mapper disagree");
    for (const auto& [iova, s] : mapper.mapped) {
      fuzzing::Require(iova >= base && iova + s <= base + window_size,
                       "a page mapped outside the window");
    }
  }
}

}  // namespace
}  // namespace vmmkit::iommu

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::iommu::Run(data, size);
  return 0;
}
