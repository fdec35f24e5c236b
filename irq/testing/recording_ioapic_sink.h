// File: irq/testing/recording_ioapic_sink.h
// -----------------------------------------------------------------------------
// Testonly: an IoapicSink that keeps the routes an Ioapic gives it and records every pin it
// raises, for the IOAPIC's unit test and fuzz target.
//
//   RecordingIoapicSink sink;
//   Ioapic ioapic(sink);
//   ... ioapic.SetLevel(4, true); EXPECT_THAT(sink.raised, ElementsAre(4));

#ifndef VMMKIT_IRQ_TESTING_RECORDING_IOAPIC_SINK_H_
#define VMMKIT_IRQ_TESTING_RECORDING_IOAPIC_SINK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "irq/ioapic.h"

namespace vmmkit::irq::testing {

class RecordingIoapicSink : public IoapicSink {
 public:
  absl::Status SetRoute(uint32_t pin, std::optional<MsiMessage> msg) override {
    if (fail_routes || (msg && reject && reject(*msg))) {
      return absl::InvalidArgumentError("no such remapping entry");
    }
    if (msg) {
      routes[pin] = *msg;
    } else {
      routes.erase(pin);
    }
    return absl::OkStatus();
  }
  absl::Status Raise(uint32_t pin) override {
    if (!routes.contains(pin)) {
      ++raised_without_route;
      return absl::NotFoundError("raised a pin without a route");
    }
    raised.push_back(pin);
    return absl::OkStatus();
  }

  std::map<uint32_t, MsiMessage> routes;
  std::vector<uint32_t> raised;
  uint64_t raised_without_route = 0;
  bool fail_routes = false;                       // Refuse every route.
  std::function<bool(const MsiMessage&)> reject;  // Refuse these.
};

}  // namespace vmmkit::irq::testing

#endif  // VMMKIT_IRQ_TESTING_RECORDING_IOAPIC_SINK_H_
