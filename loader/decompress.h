// File: loader/decompress.h
// -----------------------------------------------------------------------------
// DecompressBzImage takes the compressed kernel out of a bzImage and decompresses it on the host,
// so that the guest need not run the bzImage's decompressor (which, in a nested guest, takes about
// a second of every boot). The setup header says where the payload is (payload_offset and
// payload_length, boot protocol 2.08+); its first bytes say the format (LZ4's legacy frame, zstd,
// xz, lzma or gzip: the libraries Debian ships; bzip2 and LZO are refused); its last four bytes
// the decompressed size, which the result must match. The result is the kernel's vmlinux: an ELF,
// optionally followed by its relocation table, which a loader placing segments at their physical
// addresses does not need.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> vmlinux, loader::DecompressBzImage(bzimage, 1 << 30));
//   ... LoadLinux with .kernel = vmlinux, .setup_header = bzimage
//
// The image is untrusted input: every offset is checked, every codec is bounded by the size the
// trailer states (at most `max_size`), and a payload that decodes to anything else is refused.

#ifndef VMMKIT_LOADER_DECOMPRESS_H_
#define VMMKIT_LOADER_DECOMPRESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vmmkit::loader {

enum class PayloadFormat { kLz4, kZstd, kXz, kLzma, kGzip, kBzip2, kLzo, kUnknown };
std::string PayloadFormatName(PayloadFormat f);

// The payload of a bzImage (INVALID_ARGUMENT if it has none: not a bzImage, protocol < 2.08, or
// offsets outside the file).
absl::StatusOr<absl::Span<const uint8_t>> BzImagePayload(absl::Span<const uint8_t> bzimage);
PayloadFormat DetectPayloadFormat(absl::Span<const uint8_t> payload);

// Decompresses `payload` (a bzImage's, its 4-byte size trailer included). INVALID_ARGUMENT for a
// corrupt stream, a size other than the trailer's, or a format vmm does not decode (bzip2, LZO,
// unknown); RESOURCE_EXHAUSTED for a trailer above `max_size`.
absl::StatusOr<std::vector<uint8_t>> DecompressPayload(absl::Span<const uint8_t> payload,
                                                       uint64_t max_size);

// BzImagePayload, then DecompressPayload; the result must be an ELF.
absl::StatusOr<std::vector<uint8_t>> DecompressBzImage(absl::Span<const uint8_t> bzimage,
                                                       uint64_t max_size);

}  // namespace vmmkit::loader

#endif  // VMMKIT_LOADER_DECOMPRESS_H_
