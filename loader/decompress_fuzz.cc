// Fuzzes DecompressPayload with hostile bzImage payloads: each codec's magic (chosen by the first
// byte) before fuzzer bytes, and a size trailer from the input. Whatever the input, the decoder
// must return a Status or exactly the trailer's size (never crash, never write past its buffer:
// ASan checks that), within the size limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "loader/decompress.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::vector<uint8_t>> kMagics = {
      {0x02, 0x21, 0x4c, 0x18}, {0x28, 0xb5, 0x2f, 0xfd}, {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00},
      {0x5d, 0x00, 0x00},       {0x1f, 0x8b, 0x08},       {}};
  if (size < 1) return 0;
  std::vector<uint8_t> payload = kMagics[data[0] % kMagics.size()];
  payload.insert(payload.end(), data + 1, data + size);
  absl::StatusOr<std::vector<uint8_t>> out = vmmkit::loader::DecompressPayload(payload, 16 << 20);
  if (out.ok() && out->size() > (16u << 20)) std::abort();
  return 0;
}
