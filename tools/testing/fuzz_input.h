// File: tools/testing/fuzz_input.h
// -----------------------------------------------------------------------------
// FuzzInput reads a fuzz target's bytes as the values that drive it; past the end it returns
// zeros, so a target never reads beyond its input and every input, however short, runs.
// Require is a target's own check: a finding (an abort, so libFuzzer keeps the input) unless it
// holds.
//
//   FuzzInput in(data, size);
//   while (!in.done()) Apply(in.Take<uint8_t>(), in.Take<uint32_t>());
//   Require(model == device, "the device disagrees with the model");

#ifndef VMMKIT_TOOLS_TESTING_FUZZ_INPUT_H_
#define VMMKIT_TOOLS_TESTING_FUZZ_INPUT_H_

#include <errno.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vmmkit::fuzzing {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  template <typename T>
  T Take() {
    T v{};
    const size_t n = std::min(sizeof(T), size_ - std::min(pos_, size_));
    if (n > 0) std::memcpy(&v, data_ + pos_, n);
    pos_ += sizeof(T);
    return v;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Aborts, naming the target and `what` on stderr, unless `ok`.
inline void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
  std::abort();
}

}  // namespace vmmkit::fuzzing

#endif  // VMMKIT_TOOLS_TESTING_FUZZ_INPUT_H_
