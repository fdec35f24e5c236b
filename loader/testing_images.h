// File: loader/testing_images.h
// -----------------------------------------------------------------------------
// Testonly: minimal but well-formed kernel images for loader tests, fuzz targets and seed corpora.

#ifndef VMMKIT_LOADER_TESTING_IMAGES_H_
#define VMMKIT_LOADER_TESTING_IMAGES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace vmmkit::loader::testing {

// A bzImage with one setup sector after the boot sector, protocol 2.15, a relocatable 64-bit
// kernel of `kernel_size` bytes (a multiple of 16) filled with 0xcc, init_size `init_size`.
std::vector<uint8_t> MakeBzImage(uint32_t kernel_size = 0x2000, uint32_t init_size = 0x10000);

// An ELF64 x86-64 vmlinux with one PT_LOAD at `paddr`: `file_size` bytes of 0x90, then
// `bss_size` bytes of .bss; the entry point is the start of the segment.
std::vector<uint8_t> MakeElf(uint64_t paddr = 0x1000000, uint32_t file_size = 0x1000,
                             uint32_t bss_size = 0x1000);

// A Multiboot ELF32 (i386) kernel: one PT_LOAD at `paddr` (linked at `vaddr`), its first bytes a
// Multiboot header with `flags`, then `code`, padded to `file_size` bytes with 0x90, then
// `bss_size` bytes of .bss; the entry (a virtual address) is the code's first byte.
std::vector<uint8_t> MakeMultibootElf(uint32_t paddr = 0x100000, uint32_t vaddr = 0x100000,
                                      uint32_t flags = 0x3, std::vector<uint8_t> code = {0xf4},
                                      uint32_t file_size = 0x1000, uint32_t bss_size = 0x1000);

// A Multiboot kernel described by its header's address fields (flags bit 16): a 0x40-byte
// preamble, the header at file offset 0x40 naming header_addr `load_addr` + 0x40, then 0x90
// bytes up to `file_size`; entry `load_addr` + 0x60, load_end_addr 0 (to the file's end),
// bss_end_addr `bss_end` (0: none).
std::vector<uint8_t> MakeMultibootAout(uint32_t load_addr = 0x200000, uint32_t file_size = 0x1000,
                                       uint32_t bss_end = 0);

// For fuzz targets: 32 MiB of guest RAM made once, and a well-formed image spoiled by fuzzer bytes:
// data[2..] patched over its first `window` bytes at an offset chosen by data[1] (which, when odd,
// also truncates the image).
const GuestMemory& FuzzRam();
void PatchImage(std::vector<uint8_t>& image, const uint8_t* data, size_t size, size_t window);

}  // namespace vmmkit::loader::testing

#endif  // VMMKIT_LOADER_TESTING_IMAGES_H_
