// Fuzzes an MSI-X table and its PBA as a guest and the VMM drive them: table reads and writes of
// any size at any offset (and past the end), PBA reads, pending bits set and cleared for any
// index. Checked: nothing crashes; every change callback names a vector that exists and carries
// what vector() now says; a PBA read never shows a bit for a vector that does not exist.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pci/msix_table.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::pci {
namespace {

void Run(const uint8_t* data, size_t size) {
  fuzzing::FuzzInput in(data, size);
  const uint16_t vectors = static_cast<uint16_t>(1 + in.Take<uint16_t>() % 2048);
  MsixTable* self = nullptr;
  MsixTable table(vectors, [&](uint16_t index, const MsixVector& v) {
    fuzzing::Require(index < vectors, "a change callback for a vector that does not exist");
    fuzzing::Require(self == nullptr || self->vector(index) == v,
                     "a callback that disagrees with vector()");
  });
  self = &table;
  const uint64_t table_size = uint64_t{vectors} * MsixTable::kEntrySize;
  const uint64_t pba_size = (uint64_t{vectors} + 63) / 64 * 8;
  for (int ops = 0; !in.done() && ops < 512; ++ops) {
    const uint8_t op = in.Take<uint8_t>();
    const size_t len = 1 + (op >> 3) % 8;
    uint8_t buf[8] = {};
    switch (op % 4) {
      case 0: {
        const uint64_t v = in.Take<uint64_t>();
        std::memcpy(buf, &v, 8);
        table.WriteTable(in.Take<uint16_t>() % (table_size + 16), absl::MakeConstSpan(buf, len));
        break;
      }
      case 1:
        table.ReadTable(in.Take<uint16_t>() % (table_size + 16), absl::MakeSpan(buf, len));
        break;
      case 2: {
        const uint64_t off = in.Take<uint16_t>() % (pba_size + 16);
        table.ReadPba(off, absl::MakeSpan(buf, len));
        // Bits past the last vector read as zero.
        for (size_t i = 0; i < len; ++i) {
          for (int bit = 0; bit < 8; ++bit) {
            if ((buf[i] >> bit) & 1) {
              fuzzing::Require((off + i) * 8 + static_cast<uint64_t>(bit) < vectors,
                               "a pending bit for a vector that does not exist");
            }
          }
        }
        break;
      }
      default:
        table.SetPending(in.Take<uint16_t>(), in.Take<uint8_t>() & 1);
        break;
    }
  }
}

}  // namespace
}  // namespace vmmkit::pci

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::pci::Run(data, size);
  return 0;
}
