// Fuzzes LoadLinux with hostile kernel images: a well-formed bzImage or ELF with fuzzer bytes
// patched over its headers, or raw fuzzer bytes. Whatever the input, the loader must return a
// Status (never crash, never touch memory outside the guest's RAM; ASan checks the latter).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "loader/linux_loader.h"
#include "loader/testing_images.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<uint8_t> image;
  switch (data[0] % 3) {
    case 0:
      image = vmmkit::loader::testing::MakeBzImage();
      break;
    case 1:
      image = vmmkit::loader::testing::MakeElf();
      break;
    default:
      image.assign(data + 2, data + size);
      break;
  }
  // Patch the rest of the input over the header area.
  if (data[0] % 3 != 2) vmmkit::loader::testing::PatchImage(image, data, size, 0x300);
  std::vector<uint8_t> initrd(data[1] * 4096u, 0x11);
  vmmkit::loader::LinuxBootConfig config{.kernel = image,
                                         .initrd = initrd,
                                         .cmdline = "console=ttyS0",
                                         .e820 = {{0, 32 << 20, vmmkit::loader::E820Type::kRam}}};
  (void)vmmkit::loader::LoadLinux(vmmkit::loader::testing::FuzzRam(), config);
  return 0;
}
