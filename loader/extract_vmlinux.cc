// extract_vmlinux: writes the kernel inside a bzImage, decompressed (loader/decompress.h), as the
// vmlinux ELF it is; vmm boots that directly (--kernel_entry=pvh, or as-is through its 64-bit
// entry) with no decompression at any boot. Like the kernel's scripts/extract-vmlinux, without
// its shell tools.
//
//   extract_vmlinux /boot/vmlinuz-6.1.0-57-cloud-amd64 /tmp/vmlinux
//
// Exit status: 0 written; 1 the output could not be written; 2 bad arguments or input.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "loader/decompress.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: extract_vmlinux BZIMAGE OUT\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "extract_vmlinux: cannot read %s\n", argv[1]);
    return 2;
  }
  const std::vector<uint8_t> bzimage((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
  // The largest vmlinux a 32-bit size trailer can state.
  absl::StatusOr<std::vector<uint8_t>> vmlinux =
      vmmkit::loader::DecompressBzImage(bzimage, uint64_t{1} << 32);
  if (!vmlinux.ok()) {
    std::fprintf(stderr, "extract_vmlinux: %s: %s\n", argv[1],
                 std::string(vmlinux.status().message()).c_str());
    return 2;
  }
  std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(vmlinux->data()),
            static_cast<std::streamsize>(vmlinux->size()));
  if (!out.flush()) {
    std::fprintf(stderr, "extract_vmlinux: cannot write %s\n", argv[2]);
    return 1;
  }
  std::printf(
      "extract_vmlinux: %s: %zu bytes of %s payload -> %s (%zu bytes)\n", argv[1], bzimage.size(),
      vmmkit::loader::PayloadFormatName(
          vmmkit::loader::DetectPayloadFormat(
              vmmkit::loader::BzImagePayload(bzimage).value_or(absl::Span<const uint8_t>())))
          .c_str(),
      argv[2], vmlinux->size());
  return 0;
}
