#include "loader/decompress.h"

#include <elf.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "loader/image.h"

namespace vmmkit::loader {
namespace {

// Setup header fields, as offsets into the bzImage file.
constexpr size_t kSetupSects = 0x1f1;
constexpr size_t kHeaderMagic = 0x202;
constexpr size_t kVersion = 0x206;
constexpr size_t kPayloadOffset = 0x248;
constexpr size_t kPayloadLength = 0x24c;
constexpr uint32_t kHdrS = 0x53726448;
constexpr uint16_t kPayloadVersion = 0x0208;

constexpr uint32_t kLz4LegacyMagic = 0x184c2102;
// liblzma's memory limit: the stream's header names the dictionary it needs (up to 4 GiB in the
// lzma "alone" format); the kernel's (lzma -9, xz's 32 MiB dictionaries) need far less.
constexpr uint64_t kLzmaMemoryLimit = 256 << 20;
constexpr uint64_t kLz4LegacyBlock = 8 << 20;  // Every block but the last decompresses to this.

absl::Status Corrupt(PayloadFormat f, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("kernel payload (", PayloadFormatName(f), "): ", what));
}

// LZ4's legacy frame: the magic, then [u32 compressed size][block]... (a repeated magic starts a
// concatenated stream).
absl::Status Lz4Legacy(absl::Span<const uint8_t> in, std::vector<uint8_t>& out) {
  size_t at = 4, produced = 0;
  while (at < in.size()) {
    if (in.size() - at < 4) return Corrupt(PayloadFormat::kLz4, "truncated block size");
    const uint32_t size = Field<uint32_t>(in, at);
    at += 4;
    if (size == kLz4LegacyMagic) continue;
    if (size > static_cast<uint32_t>(LZ4_COMPRESSBOUND(kLz4LegacyBlock)) || size > in.size() - at) {
      return Corrupt(PayloadFormat::kLz4, absl::StrCat("a block of ", size, " bytes at ", Hex(at)));
    }
    const size_t room = std::min<uint64_t>(kLz4LegacyBlock, out.size() - produced);
    const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + at),
                                      reinterpret_cast<char*>(out.data() + produced),
                                      static_cast<int>(size), static_cast<int>(room));
    if (n < 0) return Corrupt(PayloadFormat::kLz4, absl::StrCat("bad block at ", Hex(at)));
    produced += static_cast<size_t>(n);
    at += size;
  }
  if (produced != out.size()) {
    return Corrupt(PayloadFormat::kLz4,
                   absl::StrCat("decoded ", produced, " bytes, the trailer says ", out.size()));
  }
  return absl::OkStatus();
}

absl::Status Zstd(absl::Span<const uint8_t> in, std::vector<uint8_t>& out) {
  const size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) return Corrupt(PayloadFormat::kZstd, ZSTD_getErrorName(n));
  if (n != out.size()) {
    return Corrupt(PayloadFormat::kZstd,
                   absl::StrCat("decoded ", n, " bytes, the trailer says ", out.size()));
  }
  return absl::OkStatus();
}

// xz (a stream) or lzma (the legacy "alone" format), with liblzma.
absl::Status Lzma(PayloadFormat f, absl::Span<const uint8_t> in, std::vector<uint8_t>& out) {
  lzma_stream s = LZMA_STREAM_INIT;
  const lzma_ret init = f == PayloadFormat::kXz ? lzma_stream_decoder(&s, kLzmaMemoryLimit, 0)
                                                : lzma_alone_decoder(&s, kLzmaMemoryLimit);
  if (init != LZMA_OK) return Corrupt(f, absl::StrCat("decoder setup failed (", init, ")"));
  s.next_in = in.data();
  s.avail_in = in.size();
  s.next_out = out.data();
  s.avail_out = out.size();
  const lzma_ret r = lzma_code(&s, LZMA_FINISH);
  const size_t produced = out.size() - s.avail_out;
  lzma_end(&s);
  if (r != LZMA_STREAM_END || produced != out.size()) {
    return Corrupt(f, absl::StrCat("stopped after ", produced, " of the trailer's ", out.size(),
                                   " bytes (liblzma ", r, ")"));
  }
  return absl::OkStatus();
}

absl::Status Gzip(absl::Span<const uint8_t> in, std::vector<uint8_t>& out) {
  z_stream s{};
  if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) {
    return Corrupt(PayloadFormat::kGzip, "decoder setup failed");
  }
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int r = inflate(&s, Z_FINISH);
  const size_t produced = out.size() - s.avail_out;
  inflateEnd(&s);
  if (r != Z_STREAM_END || produced != out.size()) {
    return Corrupt(PayloadFormat::kGzip,
                   absl::StrCat("stopped after ", produced, " of the trailer's ", out.size(),
                                " bytes (zlib ", r, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string PayloadFormatName(PayloadFormat f) {
  switch (f) {
    case PayloadFormat::kLz4:
      return "lz4";
    case PayloadFormat::kZstd:
      return "zstd";
    case PayloadFormat::kXz:
      return "xz";
    case PayloadFormat::kLzma:
      return "lzma";
    case PayloadFormat::kGzip:
      return "gzip";
    case PayloadFormat::kBzip2:
      return "bzip2";
    case PayloadFormat::kLzo:
      return "lzo";
    case PayloadFormat::kUnknown:
      break;
  }
  return "unknown";
}

absl::StatusOr<absl::Span<const uint8_t>> BzImagePayload(absl::Span<const uint8_t> bzimage) {
  if (bzimage.size() < kPayloadLength + 4 || Field<uint32_t>(bzimage, kHeaderMagic) != kHdrS) {
    return absl::InvalidArgumentError("kernel image: not a bzImage (no \"HdrS\" at 0x202)");
  }
  const uint16_t version = Field<uint16_t>(bzimage, kVersion);
  if (version < kPayloadVersion) {
    return absl::InvalidArgumentError(absl::StrCat("kernel image: boot protocol ", Hex(version),
                                                   " has no payload fields (2.08+)"));
  }
  const uint64_t setup_sects = bzimage[kSetupSects] == 0 ? 4 : bzimage[kSetupSects];
  const uint64_t start = (setup_sects + 1) * 512 + Field<uint32_t>(bzimage, kPayloadOffset);
  const uint64_t length = Field<uint32_t>(bzimage, kPayloadLength);
  if (length < 8 || start > bzimage.size() || length > bzimage.size() - start) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel image: payload of ", length, " bytes at ", Hex(start),
                     " lies outside the file (", bzimage.size(), " bytes)"));
  }
  return bzimage.subspan(start, length);
}

PayloadFormat DetectPayloadFormat(absl::Span<const uint8_t> p) {
  auto starts = [&](std::initializer_list<uint8_t> magic) {
    return p.size() >= magic.size() && std::equal(magic.begin(), magic.end(), p.begin());
  };
  if (starts({0x02, 0x21, 0x4c, 0x18})) return PayloadFormat::kLz4;
  if (starts({0x28, 0xb5, 0x2f, 0xfd})) return PayloadFormat::kZstd;
  if (starts({0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00})) return PayloadFormat::kXz;
  if (starts({0x5d, 0x00, 0x00})) return PayloadFormat::kLzma;
  if (starts({0x1f, 0x8b})) return PayloadFormat::kGzip;
  if (starts({0x42, 0x5a, 0x68})) return PayloadFormat::kBzip2;
  if (starts({0x89, 0x4c, 0x5a, 0x4f})) return PayloadFormat::kLzo;
  return PayloadFormat::kUnknown;
}

absl::StatusOr<std::vector<uint8_t>> DecompressPayload(absl::Span<const uint8_t> payload,
                                                       uint64_t max_size) {
  const PayloadFormat f = DetectPayloadFormat(payload);
  if (payload.size() < 8) return Corrupt(f, "shorter than a stream and its size");
  const uint64_t size = Field<uint32_t>(payload, payload.size() - 4);
  const absl::Span<const uint8_t> stream = payload.first(payload.size() - 4);
  if (size > max_size || size > INT_MAX) {
    return absl::ResourceExhaustedError(absl::StrCat("kernel payload (", PayloadFormatName(f),
                                                     ") decompresses to ", size, " bytes; at most ",
                                                     max_size));
  }
  std::vector<uint8_t> out(size);
  absl::Status s;
  switch (f) {
    case PayloadFormat::kLz4:
      s = Lz4Legacy(stream, out);
      break;
    case PayloadFormat::kZstd:
      s = Zstd(stream, out);
      break;
    case PayloadFormat::kXz:
    case PayloadFormat::kLzma:
      s = Lzma(f, stream, out);
      break;
    case PayloadFormat::kGzip:
      s = Gzip(payload, out);  // The size is gzip's own trailer (ISIZE), part of the stream.
      break;
    case PayloadFormat::kBzip2:
    case PayloadFormat::kLzo:
    case PayloadFormat::kUnknown:
      return absl::InvalidArgumentError(absl::StrCat(
          "kernel payload: ", PayloadFormatName(f),
          " is not decompressed on the host (lz4, zstd, xz, lzma and gzip are); boot the bzImage "
          "as it is"));
  }
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<uint8_t>> DecompressBzImage(absl::Span<const uint8_t> bzimage,
                                                       uint64_t max_size) {
  absl::StatusOr<absl::Span<const uint8_t>> payload = BzImagePayload(bzimage);
  if (!payload.ok()) return payload.status();
  absl::StatusOr<std::vector<uint8_t>> vmlinux = DecompressPayload(*payload, max_size);
  if (!vmlinux.ok()) return vmlinux.status();
  if (vmlinux->size() < SELFMAG || std::memcmp(vmlinux->data(), ELFMAG, SELFMAG) != 0) {
    return absl::InvalidArgumentError("kernel payload: decompressed, but not an ELF");
  }
  return vmlinux;
}

}  // namespace vmmkit::loader
