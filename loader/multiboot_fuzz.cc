// Fuzzes LoadMultiboot with hostile kernel images: a well-formed Multiboot ELF32 or address-field
// image with fuzzer bytes patched over its headers, or raw fuzzer bytes. Whatever the input, the
// loader must return a Status (never crash, never touch memory outside the guest's RAM; ASan
// checks the latter).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "loader/multiboot.h"
#include "loader/testing_images.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<uint8_t> image;
  switch (data[0] % 3) {
    case 0:
      image = vmmkit::loader::testing::MakeMultibootElf();
      break;
    case 1:
      image = vmmkit::loader::testing::MakeMultibootAout();
      break;
    default:
      image.assign(data + 2, data + size);
      break;
  }
  // Patch the rest of the input over the ELF and Multiboot headers.
  if (data[0] % 3 != 2) vmmkit::loader::testing::PatchImage(image, data, size, 0x80);
  std::vector<uint8_t> module(data[1] * 4096u, 0x11);
  vmmkit::loader::MultibootConfig config{
      .kernel = image,
      .cmdline = "kernel console=ttyS0",
      .module = module,
      .module_string = "module",
      .e820 = {{0, 0x9fc00, vmmkit::loader::E820Type::kRam},
               {0x100000, (32 << 20) - 0x100000, vmmkit::loader::E820Type::kRam}}};
  if (vmmkit::loader::IsMultiboot(image) || data[0] & 0x80) {
    (void)vmmkit::loader::LoadMultiboot(vmmkit::loader::testing::FuzzRam(), config);
  }
  return 0;
}
