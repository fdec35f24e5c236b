// File: devices/testing/fuzz_access.h
// -----------------------------------------------------------------------------
// Testonly, for fuzz targets: one guest access to a BusDevice decided by the fuzzer's bytes, as a
// vCPU's port or MMIO exit makes it: a read or a write of 1-8 bytes at an offset up to 8 past the
// device's size (a bus hands a device only accesses inside its range, but a device must not trust
// that). Returns what a read returned (zero for a write).
//
//   FuzzInput in(data, size);
//   while (!in.done()) (void)devices::testing::FuzzAccess(in, uart, 8);

#ifndef VMMKIT_DEVICES_TESTING_FUZZ_ACCESS_H_
#define VMMKIT_DEVICES_TESTING_FUZZ_ACCESS_H_

#include <cstdint>
#include <cstring>

#include "devices/bus.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::devices::testing {

inline uint64_t FuzzAccess(fuzzing::FuzzInput& in, BusDevice& device, uint64_t size) {
  const uint8_t how = in.Take<uint8_t>();
  const uint64_t offset = in.Take<uint16_t>() % (size + 8);
  const size_t len = 1 + (how >> 1) % 8;
  uint8_t buf[8] = {};
  if (how & 1) {
    const uint64_t v = in.Take<uint64_t>();
    std::memcpy(buf, &v, 8);
    device.Write(offset, absl::MakeConstSpan(buf, len));
    return 0;
  }
  device.Read(offset, absl::MakeSpan(buf, len));
  uint64_t v = 0;
  std::memcpy(&v, buf, 8);
  return v;
}

}  // namespace vmmkit::devices::testing

#endif  // VMMKIT_DEVICES_TESTING_FUZZ_ACCESS_H_
