// Fuzzes the ACPI generic event device's status register (GSTA, read to clear) as a guest's _EVT
// reads it, while the VMM raises events at any time. Checked: nothing crashes; a read returns
// only events that were raised and not read before, and each raised event is read exactly once.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "devices/acpi_events.h"
#include "devices/testing/fuzz_access.h"

namespace vmmkit::devices {
namespace {

uint32_t ReadGsta(AcpiEvents& events) {
  uint32_t v = 0;
  events.Read(AcpiEvents::kGsta, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4));
  return v;
}

void Run(const uint8_t* data, size_t size) {
  AcpiEvents events([] {});
  uint32_t raised = 0;  // Raised and not read yet.
  fuzzing::FuzzInput in(data, size);
  for (int ops = 0; !in.done() && ops < 1024; ++ops) {
    switch (in.Take<uint8_t>() % 3) {
      case 0: {
        const uint32_t e = in.Take<uint32_t>();
        events.Raise(e);
        raised |= e;
        break;
      }
      case 1: {
        fuzzing::Require(ReadGsta(events) == raised,
                         "GSTA is not what was raised since the last read");
        raised = 0;
        break;
      }
      default: {
        // Anything else a guest might do; a write or a partial read changes nothing a full read
        // then sees, except that a read of GSTA's first byte clears it.
        const uint64_t before = raised;
        (void)testing::FuzzAccess(in, events, AcpiEvents::kSize);
        const uint32_t got = ReadGsta(events);
        fuzzing::Require(got == 0 || got == before,
                         "GSTA changed by something other than a raise or read");
        raised = 0;
        break;
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
