// File: loader/image.h
// -----------------------------------------------------------------------------
// What the loaders share (package-private): an image is planned as chunks, every chunk checked
// against guest RAM, and only then written, so that a rejected image leaves guest memory
// untouched.

#ifndef VMMKIT_LOADER_IMAGE_H_
#define VMMKIT_LOADER_IMAGE_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"

namespace vmmkit::loader {

// What to write where.
struct Chunk {
  GuestAddress address;
  absl::Span<const uint8_t> bytes;
  uint64_t zero_fill = 0;  // Bytes of zeroes after `bytes` (ELF .bss).
};

// RESOURCE_EXHAUSTED naming `what` unless [start, start + size) is guest RAM.
absl::Status RequireRam(const GuestMemory& memory, GuestAddress start, uint64_t size,
                        const std::string& what);

// Writes the chunks (each already checked with RequireRam).
absl::Status WriteChunks(const GuestMemory& memory, absl::Span<const Chunk> chunks);

// A little-endian field of `data` at `offset` (the caller checked the bounds).
template <typename T>
T Field(absl::Span<const uint8_t> data, size_t offset) {
  T v;
  std::memcpy(&v, data.data() + offset, sizeof(T));
  return v;
}

}  // namespace vmmkit::loader

#endif  // VMMKIT_LOADER_IMAGE_H_
