#include "loader/multiboot.h"

#include <cstring>
#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loader/testing_images.h"

namespace vmmkit::loader {
namespace {

using ::testing::HasSubstr;
using testing::MakeElf;
using testing::MakeMultibootAout;
using testing::MakeMultibootElf;

constexpr uint64_t kRam = 64 << 20;

GuestMemory Ram(uint64_t size = kRam) {
  auto m = GuestMemory::CreateRam({{GuestAddress(0), size}});
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(m).value();
}

MultibootConfig Config(const std::vector<uint8_t>& kernel) {
  return MultibootConfig{.kernel = kernel,
                         .cmdline = "/boot/kernel console=ttyS0",
                         .e820 = {{0, 0x9fc00, E820Type::kRam},
                                  {0xe0000, 0x20000, E820Type::kReserved},
                                  {0x100000, kRam - 0x100000, E820Type::kRam}}};
}

template <typename T>
void Put(std::vector<uint8_t>& v, size_t offset, T value) {
  std::memcpy(v.data() + offset, &value, sizeof(T));
}

uint32_t Read32(const GuestMemory& mem, uint64_t at) {
  absl::StatusOr<uint32_t> v = mem.ReadObj<uint32_t>(GuestAddress(at));
  EXPECT_TRUE(v.ok()) << v.status();
  return v.value_or(0xdeadbeef);
}

std::string ReadString(const GuestMemory& mem, uint64_t at) {
  std::string s;
  for (char c; (c = static_cast<char>(mem.ReadObj<uint8_t>(GuestAddress(at++)).value_or(0)));) {
    s.push_back(c);
  }
  return s;
}

TEST(MultibootTest, RecognizesItsHeaderAndNotOtherKernels) {
  EXPECT_TRUE(IsMultiboot(MakeMultibootElf()));
  EXPECT_TRUE(IsMultiboot(MakeMultibootAout()));
  EXPECT_FALSE(IsMultiboot(MakeElf())) << "an ELF64 vmlinux";
  std::vector<uint8_t> bad_sum = MakeMultibootElf();
  Put<uint32_t>(bad_sum, 0x68, 0);
  EXPECT_FALSE(IsMultiboot(bad_sum)) << "checksum";
  std::vector<uint8_t> unaligned(0x100, 0);
  Put<uint32_t>(unaligned, 0x42, kMultibootHeaderMagic);
  Put<uint32_t>(unaligned, 0x4a, 0u - kMultibootHeaderMagic);
  EXPECT_FALSE(IsMultiboot(unaligned)) << "not 4-byte aligned";
  std::vector<uint8_t> late(0x2010, 0);
  Put<uint32_t>(late, 0x2000, kMultibootHeaderMagic);
  Put<uint32_t>(late, 0x2008, 0u - kMultibootHeaderMagic);
  EXPECT_FALSE(IsMultiboot(late)) << "beyond the first 8 KiB";
}

TEST(MultibootTest, LoadsAnElfWithItsInformationModuleAndMemoryMap) {
  GuestMemory mem = Ram();
  // Linked at 3 GiB, loaded at 1 MiB: the entry moves with its segment.
  std::vector<uint8_t> kernel = MakeMultibootElf(0x100000, 0xc0100000, 0x3, {0xf4}, 0x1000, 0x3000);
  std::vector<uint8_t> module(0x1800, 0x5a);
  MultibootConfig config = Config(kernel);
  config.module = module;
  config.module_string = "initrd.cpio";
  ASSERT_OK_AND_ASSIGN(MultibootBootInfo info, LoadMultiboot(mem, config));
  EXPECT_EQ(info.entry, GuestAddress(0x10000c));
  EXPECT_EQ(info.kernel_start, GuestAddress(0x100000));
  EXPECT_EQ(info.kernel_end, 0x104000u);
  EXPECT_EQ(info.info, GuestAddress(0x7000));
  EXPECT_EQ(Read32(mem, 0x100000), kMultibootHeaderMagic);
  EXPECT_EQ(Read32(mem, 0x103ffc), 0u) << ".bss zeroed";
  ASSERT_TRUE(info.module.has_value());
  EXPECT_EQ(*info.module, GuestAddress(0x104000)) << "page-aligned after the kernel";
  EXPECT_THAT(mem.ReadObj<uint8_t>(GuestAddress(0x1057ff)), IsOkAndHolds(0x5a));

  const uint64_t mbi = 0x7000;
  EXPECT_EQ(Read32(mem, mbi),
            kMbiMemory | kMbiCmdline | kMbiModules | kMbiMemoryMap | kMbiLoaderName);
  EXPECT_EQ(Read32(mem, mbi + 4), 639u) << "mem_lower, KiB";
  EXPECT_EQ(Read32(mem, mbi + 8), (kRam >> 10) - 1024) << "mem_upper, KiB above 1 MiB";
  EXPECT_EQ(ReadString(mem, Read32(mem, mbi + 16)), "/boot/kernel console=ttyS0");
  EXPECT_EQ(Read32(mem, mbi + 20), 1u) << "mods_count";
  const uint32_t mod = Read32(mem, mbi + 24);
  EXPECT_EQ(Read32(mem, mod), 0x104000u);
  EXPECT_EQ(Read32(mem, mod + 4), 0x105800u) << "mod_end: exclusive";
  EXPECT_EQ(ReadString(mem, Read32(mem, mod + 8)), "initrd.cpio");
  EXPECT_EQ(Read32(mem, mod + 12), 0u);
  EXPECT_EQ(Read32(mem, mbi + 44), 3 * 24u) << "mmap_length";
  const uint32_t mmap = Read32(mem, mbi + 48);
  EXPECT_EQ(Read32(mem, mmap), 20u) << "size, not counting itself";
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(mmap + 24 + 4)), IsOkAndHolds(0xe0000u));
  EXPECT_EQ(Read32(mem, mmap + 24 + 20), 2u) << "reserved";
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(mmap + 48 + 12)), IsOkAndHolds(kRam - 0x100000));
  EXPECT_EQ(Read32(mem, mmap + 48 + 20), 1u) << "available";
  EXPECT_EQ(ReadString(mem, Read32(mem, mbi + 64)), "vmmkit");
}

TEST(MultibootTest, LoadsByTheHeadersAddressFields) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> kernel = MakeMultibootAout(0x200000, 0x1000, 0x208000);
  ASSERT_OK_AND_ASSIGN(MultibootBootInfo info, LoadMultiboot(mem, Config(kernel)));
  EXPECT_EQ(info.entry, GuestAddress(0x200060));
  EXPECT_EQ(info.kernel_start, GuestAddress(0x200000));
  EXPECT_EQ(info.kernel_end, 0x208000u) << "bss_end_addr";
  EXPECT_EQ(Read32(mem, 0x200040), kMultibootHeaderMagic) << "header at header_addr";
  EXPECT_FALSE(info.module.has_value());
  EXPECT_EQ(Read32(mem, 0x7000 + 20), 0u) << "no module";
}

TEST(MultibootTest, RefusesBadHeadersAndImagesNamingTheField) {
  GuestMemory mem = Ram();
  struct Case {
    std::vector<uint8_t> image;
    std::string message;
  };
  std::vector<Case> cases;
  auto aout = [](uint32_t field_offset, uint32_t value) {
    std::vector<uint8_t> v = MakeMultibootAout();
    Put<uint32_t>(v, 0x40 + field_offset, value);
    return v;
  };
  cases.push_back({MakeElf(), "a 64-bit ELF"});
  cases.push_back({std::vector<uint8_t>(0x100, 0), "no header"});
  cases.push_back({MakeMultibootElf(0x100000, 0x100000, 0x8), "requires flags 0x8"});
  cases.push_back({aout(16, 0x200100), "is above header_addr"});
  cases.push_back({aout(12, 0x300000), "reaches before the file's start"});
  cases.push_back({aout(20, 0x100000), "load_end_addr 0x100000 is below load_addr"});
  cases.push_back({aout(20, 0x300000), "needs 1048576 bytes of the file"});
  cases.push_back({aout(24, 0x200010), "bss_end_addr 0x200010 is below"});
  cases.push_back({aout(28, 0x300000), "the entry 0x300000 lies outside the image"});
  cases.push_back({MakeMultibootElf(0x10000, 0x10000), "below 1 MiB"});
  std::vector<uint8_t> x86_64 = MakeMultibootElf();
  Put<uint16_t>(x86_64, 18, 62);
  cases.push_back({x86_64, "i386 executable"});
  std::vector<uint8_t> phdrs = MakeMultibootElf();
  Put<uint16_t>(phdrs, 44, 1000);
  cases.push_back({phdrs, "program headers"});
  std::vector<uint8_t> segment = MakeMultibootElf();
  Put<uint32_t>(segment, 52 + 16, 0x100000);  // p_filesz beyond the file.
  cases.push_back({segment, "segment 0"});
  std::vector<uint8_t> high = MakeMultibootElf(0xfffff000, 0xfffff000);
  cases.push_back({high, "does not fit the file or 4 GiB"});
  std::vector<uint8_t> truncated = MakeMultibootAout();
  truncated.resize(0x50);
  Put<uint32_t>(truncated, 0x44, (1u << 16));
  Put<uint32_t>(truncated, 0x48, 0u - kMultibootHeaderMagic - (1u << 16));
  cases.push_back({truncated, "ends before its address fields"});
  for (const Case& c : cases) {
    EXPECT_THAT(LoadMultiboot(mem, Config(c.image)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.message;
  }
}

TEST(MultibootTest, AVideoRequestIsAnsweredWithNoVideo) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> kernel = MakeMultibootElf(0x100000, 0x100000, 0x7);
  ASSERT_OK(LoadMultiboot(mem, Config(kernel)).status());
  EXPECT_EQ(Read32(mem, 0x7000) & (3u << 11), 0u) << "no VBE or framebuffer information";
}

TEST(MultibootTest, WhatDoesNotFitIsRefusedBeforeAnythingIsWritten) {
  GuestMemory mem = Ram(4 << 20);
  std::vector<uint8_t> kernel = MakeMultibootElf(0x100000, 0x100000, 0x3, {0xf4}, 0x1000, 0);
  MultibootConfig config = Config(kernel);
  std::vector<uint8_t> module(8 << 20, 1);
  config.module = module;
  EXPECT_THAT(LoadMultiboot(mem, config),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("module")));
  EXPECT_EQ(Read32(mem, 0x100000), 0u) << "nothing written";
  std::vector<uint8_t> big = MakeMultibootElf(0x300000, 0x300000, 0x3, {0xf4}, 0x200000, 0);
  EXPECT_THAT(LoadMultiboot(mem, Config(big)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("kernel")));
  config = Config(kernel);
  config.cmdline = std::string(0x10000, 'x');
  EXPECT_THAT(LoadMultiboot(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 65536")));
  config.cmdline = std::string("a\0b", 3);
  EXPECT_THAT(LoadMultiboot(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  config = Config(kernel);
  config.e820.assign(129, {0x100000, 0x1000, E820Type::kRam});
  EXPECT_THAT(LoadMultiboot(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("129 entries")));
  config.e820 = {{0x100000, 0, E820Type::kRam}};
  EXPECT_THAT(LoadMultiboot(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zero size")));
  EXPECT_EQ(Read32(mem, 0x100000), 0u) << "still nothing written";
}

}  // namespace
}  // namespace vmmkit::loader
