// Fuzzes the userspace IOAPIC as a hostile guest and devices drive it: any register accesses
// (of any size, at any offset), input levels and EOIs. Checked: nothing crashes, and every
// delivery is of a pin that is unmasked, whose route is the message its current redirection
// entry describes (the IOAPIC never raises a vector the guest did not program there).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "irq/ioapic.h"
#include "irq/testing/recording_ioapic_sink.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::irq {
namespace {

// Every pin raised since the last call was unmasked, and routed to what its entry says (checked
// after each call: the sink runs under the Ioapic's lock).
void CheckRaised(testing::RecordingIoapicSink& sink, const Ioapic& ioapic) {
  fuzzing::Require(sink.raised_without_route == 0, "raised a pin without a route");
  for (uint32_t pin : sink.raised) {
    const uint64_t rte = ioapic.rte(pin);
    fuzzing::Require(!(rte & (uint64_t{1} << 16)), "raised a masked pin");
    fuzzing::Require(sink.routes[pin] == IoapicRteMessage(rte),
                     "raised a route that is not the entry's");
  }
  sink.raised.clear();
}

void Run(const uint8_t* data, size_t size) {
  testing::RecordingIoapicSink sink;
  // Some messages cannot be routed (as a remapping entry the guest left invalid).
  sink.reject = [](const MsiMessage& m) { return (m.data & 0xff) == 0x99; };
  Ioapic ioapic(sink, 1);
  bool resample = false;
  ioapic.SetEoiHandler(16, [&] { return resample; });
  vmmkit::fuzzing::FuzzInput in(data, size);
  for (int ops = 0; !in.done() && ops < 512; ++ops) {
    switch (in.Take<uint8_t>() % 5) {
      case 0: {
        const uint64_t off = in.Take<uint8_t>() % (Ioapic::kSize + 8);
        const uint64_t v = in.Take<uint64_t>();
        uint8_t b[8];
        std::memcpy(b, &v, 8);
        ioapic.Write(off, absl::MakeConstSpan(b, 1 + in.Take<uint8_t>() % 8));
        break;
      }
      case 1: {
        uint8_t b[8];
        const uint64_t off = in.Take<uint8_t>() % (Ioapic::kSize + 8);
        ioapic.Read(off, absl::MakeSpan(b, 1 + in.Take<uint8_t>() % 8));
        break;
      }
      case 2:  // An entry written the usual way: select, then the window.
        for (uint32_t reg : {in.Take<uint8_t>() % 0x40u, 0u}) {
          const uint32_t sel = reg, value = in.Take<uint32_t>();
          ioapic.Write(0x00, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&sel), 4));
          ioapic.Write(0x10, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), 4));
        }
        break;
      case 3:
        ioapic.SetLevel(in.Take<uint8_t>() % 32, in.Take<uint8_t>() & 1);
        break;
      case 4:
        resample = in.Take<uint8_t>() & 1;
        ioapic.Eoi(in.Take<uint8_t>());
        break;
    }
    CheckRaised(sink, ioapic);
  }
}

}  // namespace
}  // namespace vmmkit::irq

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::irq::Run(data, size);
  return 0;
}
