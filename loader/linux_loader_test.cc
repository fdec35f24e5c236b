#include "loader/linux_loader.h"

#include <asm/bootparam.h>

#include <fstream>
#include <iterator>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loader/testing_images.h"

namespace vmmkit::loader {
namespace {

using ::testing::HasSubstr;
using testing::MakeBzImage;
using testing::MakeElf;

constexpr uint64_t kRam = 64 << 20;

GuestMemory Ram(uint64_t size = kRam) {
  auto m = GuestMemory::CreateRam({{GuestAddress(0), size}});
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(m).value();
}

LinuxBootConfig Config(const std::vector<uint8_t>& kernel) {
  return LinuxBootConfig{
      .kernel = kernel,
      .cmdline = "console=ttyS0 panic=-1",
      .e820 = {{0, 0x9fc00, E820Type::kRam}, {0x100000, kRam - 0x100000, E820Type::kRam}},
      .rsdp = GuestAddress(0xe0000)};
}

template <typename T>
void Put(std::vector<uint8_t>& v, size_t offset, T value) {
  std::memcpy(v.data() + offset, &value, sizeof(T));
}

TEST(LinuxLoaderTest, LoadsABzImageForThe64BitEntry) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> kernel = MakeBzImage(0x2000, 0x10000);
  std::vector<uint8_t> initrd(0x1800, 0x5a);
  LinuxBootConfig config = Config(kernel);
  config.initrd = initrd;
  ASSERT_OK_AND_ASSIGN(LinuxBootInfo info, LoadLinux(mem, config));
  EXPECT_EQ(info.format, KernelFormat::kBzImage);
  EXPECT_EQ(info.entry, GuestAddress(0x100200));
  EXPECT_EQ(info.kernel_end, 0x110000u);
  EXPECT_THAT(mem.ReadObj<uint8_t>(GuestAddress(0x100000)), IsOkAndHolds(0xcc));
  EXPECT_THAT(mem.ReadObj<uint8_t>(GuestAddress(0x101fff)), IsOkAndHolds(0xcc));

  ASSERT_OK_AND_ASSIGN(boot_params bp, mem.ReadObj<boot_params>(info.boot_params));
  // boot_params is packed: fields are compared as values (+x), never bound to references.
  EXPECT_EQ(+bp.hdr.header, 0x53726448u) << "setup header copied";
  EXPECT_EQ(+bp.hdr.version, 0x020f);
  EXPECT_EQ(+bp.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+bp.hdr.cmd_line_ptr, 0x20000u);
  EXPECT_EQ(+bp.acpi_rsdp_addr, 0xe0000u);
  ASSERT_EQ(+bp.e820_entries, 2);
  EXPECT_EQ(+bp.e820_table[1].addr, 0x100000u);
  EXPECT_EQ(+bp.e820_table[1].type, 1u);
  // The initrd sits as high as possible: page-aligned, ending at most at the top of RAM.
  ASSERT_TRUE(info.initrd.has_value());
  EXPECT_EQ(+bp.hdr.ramdisk_image, info.initrd->raw());
  EXPECT_EQ(+bp.hdr.ramdisk_size, 0x1800u);
  EXPECT_EQ(info.initrd->raw() % 4096, 0u);
  EXPECT_EQ(info.initrd->raw(), kRam - 0x2000);
  EXPECT_THAT(mem.ReadObj<uint8_t>(*info.initrd), IsOkAndHolds(0x5a));
  std::string cmdline(22, '\0');
  ASSERT_OK(mem.Read(GuestAddress(0x20000),
                     absl::MakeSpan(reinterpret_cast<uint8_t*>(cmdline.data()), cmdline.size())));
  EXPECT_EQ(cmdline, "console=ttyS0 panic=-1");
  EXPECT_THAT(mem.ReadObj<uint8_t>(GuestAddress(0x20000 + 22)), IsOkAndHolds(0));
}

TEST(LinuxLoaderTest, InitrdRespectsInitrdAddrMax) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> kernel = MakeBzImage();
  Put<uint32_t>(kernel, 0x22c, 0x01ffffff);  // 32 MiB - 1
  std::vector<uint8_t> initrd(0x1000, 1);
  LinuxBootConfig config = Config(kernel);
  config.initrd = initrd;
  ASSERT_OK_AND_ASSIGN(LinuxBootInfo info, LoadLinux(mem, config));
  EXPECT_EQ(info.initrd->raw(), 0x01fff000u);
}

TEST(LinuxLoaderTest, RejectsEveryBadHeaderField) {
  GuestMemory mem = Ram();
  struct Case {
    const char* name;
    size_t offset;
    std::vector<uint8_t> bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"boot flag", 0x1fe, {0, 0}, "boot_flag"},
      {"old protocol", 0x206, {0x0b, 0x02}, "older than 2.12"},
      {"no 64-bit entry", 0x236, {0x2, 0}, "XLF_KERNEL_64"},
      {"zImage", 0x211, {0}, "LOADED_HIGH"},
      {"short header", 0x201, {0x10}, "too short"},
      {"syssize past EOF", 0x1f4, {0, 0, 0, 1}, "truncated"},
      {"zero syssize", 0x1f4, {0, 0, 0, 0}, "truncated"},
      {"setup sects past EOF", 0x1f1, {0xff}, "truncated"},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> kernel = MakeBzImage();
    std::copy(c.bytes.begin(), c.bytes.end(), kernel.begin() + static_cast<long>(c.offset));
    EXPECT_THAT(LoadLinux(mem, Config(kernel)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.name;
  }
}

TEST(LinuxLoaderTest, TruncatedImagesAreRejectedAtEveryLength) {
  GuestMemory mem = Ram();
  const std::vector<uint8_t> full = MakeBzImage(0x2000);
  for (size_t len : {size_t{0}, size_t{3}, size_t{0x1f0}, size_t{0x205}, size_t{0x240},
                     size_t{0x400}, size_t{0x800}, full.size() - 16, full.size() - 1}) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(len));
    EXPECT_THAT(LoadLinux(mem, Config(cut)), StatusIs(absl::StatusCode::kInvalidArgument))
        << "length " << len;
  }
  EXPECT_OK(LoadLinux(mem, Config(full)));
}

TEST(LinuxLoaderTest, CommandLineLimits) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> kernel = MakeBzImage();
  Put<uint32_t>(kernel, 0x238, 16);
  LinuxBootConfig config = Config(kernel);
  config.cmdline = std::string(17, 'x');
  EXPECT_THAT(LoadLinux(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16")));
  config.cmdline = std::string("a\0b", 3);
  EXPECT_THAT(LoadLinux(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  config.cmdline = std::string(16, 'x');
  EXPECT_OK(LoadLinux(mem, config));
}

TEST(LinuxLoaderTest, TooLittleRamIsResourceExhaustedAndWritesNothing) {
  GuestMemory mem = Ram(2 << 20);
  std::vector<uint8_t> kernel = MakeBzImage(0x2000, 0x200000);  // Needs 2 MiB above 1 MiB.
  EXPECT_THAT(LoadLinux(mem, Config(kernel)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("kernel")));
  std::vector<uint8_t> small = MakeBzImage(0x2000, 0x10000);
  std::vector<uint8_t> initrd(4 << 20, 1);
  LinuxBootConfig config = Config(small);
  config.initrd = initrd;
  EXPECT_THAT(LoadLinux(mem, config),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("initrd of 4194304 bytes")));
  // Validation happens before any write: the kernel area is still empty.
  EXPECT_THAT(mem.ReadObj<uint8_t>(GuestAddress(0x100000)), IsOkAndHolds(0));
}

TEST(LinuxLoaderTest, E820Validation) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> kernel = MakeBzImage();
  LinuxBootConfig config = Config(kernel);
  config.e820.assign(129, {0, 0x1000, E820Type::kRam});
  EXPECT_THAT(LoadLinux(mem, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("128")));
  config.e820 = {{0x1000, 0, E820Type::kRam}};
  EXPECT_THAT(LoadLinux(mem, config), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(LinuxLoaderTest, LoadsAnElfVmlinuxWithBss) {
  GuestMemory mem = Ram();
  ASSERT_OK(mem.WriteObj<uint64_t>(GuestAddress(0x1001000), ~uint64_t{0}));  // Dirty the .bss.
  std::vector<uint8_t> kernel = MakeElf(0x1000000, 0x1000, 0x1000);
  ASSERT_OK_AND_ASSIGN(LinuxBootInfo info, LoadLinux(mem, Config(kernel)));
  EXPECT_EQ(info.format, KernelFormat::kElf);
  EXPECT_EQ(info.entry, GuestAddress(0x1000000));
  EXPECT_EQ(info.kernel_end, 0x1002000u);
  EXPECT_THAT(mem.ReadObj<uint8_t>(GuestAddress(0x1000fff)), IsOkAndHolds(0x90));
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(0x1001000)), IsOkAndHolds(0u)) << ".bss zeroed";
  ASSERT_OK_AND_ASSIGN(boot_params bp, mem.ReadObj<boot_params>(info.boot_params));
  EXPECT_EQ(+bp.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(+bp.hdr.header, 0x53726448u);
  EXPECT_EQ(+bp.acpi_rsdp_addr, 0xe0000u);
}

TEST(LinuxLoaderTest, RejectsBadElfFiles) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> wrong_machine = MakeElf();
  Put<uint16_t>(wrong_machine, 18, 3);  // e_machine = EM_386
  EXPECT_THAT(LoadLinux(mem, Config(wrong_machine)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x86-64")));
  std::vector<uint8_t> entry_outside = MakeElf();
  Put<uint64_t>(entry_outside, 24, 0x5000000);  // e_entry
  EXPECT_THAT(LoadLinux(mem, Config(entry_outside)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("entry point")));
  std::vector<uint8_t> truncated = MakeElf();
  truncated.resize(truncated.size() - 1);
  EXPECT_THAT(LoadLinux(mem, Config(truncated)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
  std::vector<uint8_t> phoff_past_end = MakeElf();
  Put<uint64_t>(phoff_past_end, 32, ~uint64_t{0} - 8);  // e_phoff
  EXPECT_THAT(LoadLinux(mem, Config(phoff_past_end)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("program headers")));
  std::vector<uint8_t> outside_ram = MakeElf(0x8000000);
  EXPECT_THAT(LoadLinux(mem, Config(outside_ram)), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(LinuxLoaderTest, RejectsUnknownFormats) {
  GuestMemory mem = Ram();
  std::vector<uint8_t> junk(4096, 0x41);
  EXPECT_THAT(LoadLinux(mem, Config(junk)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("neither a bzImage")));
}

// Debian's cloud kernel, as downloaded by tools/setup for the lab.
TEST(LinuxLoaderTest, LoadsTheDebianCloudKernel) {
  std::ifstream in("/var/cache/vmmkit/lab/kernel/vmlinuz", std::ios::binary);
  if (!in) GTEST_SKIP() << "no lab kernel cached (tools/setup downloads it)";
  std::vector<uint8_t> kernel((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
  GuestMemory mem = Ram(256 << 20);
  ASSERT_OK_AND_ASSIGN(LinuxBootInfo info, LoadLinux(mem, Config(kernel)));
  EXPECT_EQ(info.format, KernelFormat::kBzImage);
  EXPECT_GT(info.kernel_end, 0x100000u + kernel.size() / 2);
  std::vector<uint8_t> cut(kernel.begin(), kernel.begin() + static_cast<long>(kernel.size() / 2));
  EXPECT_THAT(LoadLinux(mem, Config(cut)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
}

}  // namespace
}  // namespace vmmkit::loader
