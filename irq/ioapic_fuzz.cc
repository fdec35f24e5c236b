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
#include "tools/testing/fuzz_input.h"

namespace vmmkit::irq {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ioapic_fuzz: %s\n", what);
    std::abort();
  }
}

class CheckingSink : public IoapicSink {
 public:
  absl::Status SetRoute(uint32_t pin, std::optional<MsiMessage> msg) override {
    Check(pin < Ioapic::kPins, "a route for a pin that does not exist");
    if (msg && ((msg->address >> 20) & 0xfff) == 0xfee && (msg->data & 0xff) == 0x99) {
      return absl::InvalidArgumentError("the fuzzer's unroutable vector");
    }
    if (msg) {
      routes[pin] = *msg;
    } else {
      routes.erase(pin);
    }
    return absl::OkStatus();
  }
  // Called with the Ioapic's lock held: what was raised is checked after the call returns.
  absl::Status Raise(uint32_t pin) override {
    Check(routes.contains(pin), "raised a pin without a route");
    raised.push_back(pin);
    return absl::OkStatus();
  }
  // Every pin raised by the last call was unmasked, and routed to what its entry says.
  void CheckRaised(const Ioapic& ioapic) {
    for (uint32_t pin : raised) {
      const uint64_t rte = ioapic.rte(pin);
      Check(!(rte & (uint64_t{1} << 16)), "raised a masked pin");
      Check(routes[pin] == IoapicRteMessage(rte), "raised a route that is not the entry's");
    }
    raised.clear();
  }
  std::map<uint32_t, MsiMessage> routes;
  std::vector<uint32_t> raised;
};

void Run(const uint8_t* data, size_t size) {
  CheckingSink sink;
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
    sink.CheckRaised(ioapic);
  }
}

}  // namespace
}  // namespace vmmkit::irq

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::irq::Run(data, size);
  return 0;
}
