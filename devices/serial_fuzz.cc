// Fuzzes the 16550A UART as a guest and the console drive it: register reads and writes of any
// size at any offset (DLAB on and off), host input arriving at any time. Checked: nothing crashes,
// the receive FIFO never holds more than it can (QueueInput never takes more than the space it
// reports), and output only ever comes from a write.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "devices/serial.h"
#include "devices/testing/fuzz_access.h"

namespace vmmkit::devices {
namespace {

void Run(const uint8_t* data, size_t size) {
  size_t output = 0;
  bool writing = false;
  Serial16550 uart([] {},
                   [&](absl::Span<const uint8_t> bytes) {
                     fuzzing::Require(writing, "output without a guest write");
                     output += bytes.size();
                   });
  fuzzing::FuzzInput in(data, size);
  for (int ops = 0; !in.done() && ops < 1024; ++ops) {
    if (in.Take<uint8_t>() % 4 == 0) {
      std::vector<uint8_t> input(in.Take<uint8_t>() % 100, 'x');
      const size_t space = uart.InputSpace();
      const size_t took = uart.QueueInput(input);
      fuzzing::Require(took <= space && took <= input.size(),
                       "took more input than there was room for");
      fuzzing::Require(uart.InputSpace() == space - took, "the FIFO's space does not add up");
    } else {
      writing = true;
      (void)testing::FuzzAccess(in, uart, 8);
      writing = false;
    }
  }
  fuzzing::Require(output <= size, "more output than writes");
}

}  // namespace
}  // namespace vmmkit::devices

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::devices::Run(data, size);
  return 0;
}
