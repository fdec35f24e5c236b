#include "loader/decompress.h"

#include <elf.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loader/linux_loader.h"
#include "loader/pvh.h"
#include "loader/testing_images.h"

namespace vmmkit::loader {
namespace {

using ::testing::HasSubstr;

template <typename T>
void Put(std::vector<uint8_t>& v, size_t offset, T value) {
  std::memcpy(v.data() + offset, &value, sizeof(T));
}

void AppendSize(std::vector<uint8_t>& v, uint32_t size) {
  v.resize(v.size() + 4);
  Put(v, v.size() - 4, size);
}

// An x86-64 ELF with one segment and a PVH note: what a CONFIG_PVH vmlinux looks like.
std::vector<uint8_t> ElfWithPvhNote(uint32_t pvh_entry) {
  std::vector<uint8_t> elf = testing::MakeElf(0x1000000, 0x4000, 0x1000);
  // A second program header would not fit before the segment: rewrite the one there is as a
  // PT_LOAD and append a PT_NOTE after the file's end.
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  std::vector<uint8_t> note;
  auto put32 = [&](uint32_t v) {
    note.resize(note.size() + 4);
    Put(note, note.size() - 4, v);
  };
  put32(4), put32(4), put32(1), note.insert(note.end(), {'G', 'N', 'U', 0}), put32(0xabcd);
  put32(4), put32(8), put32(18), note.insert(note.end(), {'X', 'e', 'n', 0});
  put32(pvh_entry), put32(0);
  const uint64_t note_at = elf.size(), phdrs_at = elf.size() + note.size();
  elf.insert(elf.end(), note.begin(), note.end());
  Elf64_Phdr load;
  std::memcpy(&load, elf.data() + eh.e_phoff, sizeof(load));
  Elf64_Phdr pt_note{.p_type = PT_NOTE, .p_offset = note_at, .p_filesz = note.size(), .p_align = 4};
  elf.resize(phdrs_at + 2 * sizeof(Elf64_Phdr));
  std::memcpy(elf.data() + phdrs_at, &load, sizeof(load));
  std::memcpy(elf.data() + phdrs_at + sizeof(load), &pt_note, sizeof(pt_note));
  eh.e_phoff = phdrs_at;
  eh.e_phnum = 2;
  std::memcpy(elf.data(), &eh, sizeof(eh));
  return elf;
}

std::vector<uint8_t> Lz4Legacy(const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out = {0x02, 0x21, 0x4c, 0x18};
  for (size_t at = 0; at < in.size(); at += 8 << 20) {
    const int n = static_cast<int>(std::min<size_t>(8 << 20, in.size() - at));
    std::vector<char> block(static_cast<size_t>(LZ4_compressBound(n)));
    const int c = LZ4_compress_default(reinterpret_cast<const char*>(in.data() + at), block.data(),
                                       n, static_cast<int>(block.size()));
    AppendSize(out, static_cast<uint32_t>(c));
    out.insert(out.end(), block.begin(), block.begin() + c);
  }
  AppendSize(out, static_cast<uint32_t>(in.size()));
  return out;
}

std::vector<uint8_t> Zstd(const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out(ZSTD_compressBound(in.size()));
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  AppendSize(out, static_cast<uint32_t>(in.size()));
  return out;
}

std::vector<uint8_t> Xz(const std::vector<uint8_t>& in, bool alone) {
  lzma_stream s = LZMA_STREAM_INIT;
  lzma_options_lzma opt;
  lzma_lzma_preset(&opt, 1);
  EXPECT_EQ(alone ? lzma_alone_encoder(&s, &opt) : lzma_easy_encoder(&s, 1, LZMA_CHECK_CRC32),
            LZMA_OK);
  std::vector<uint8_t> out(in.size() + 4096);
  s.next_in = in.data();
  s.avail_in = in.size();
  s.next_out = out.data();
  s.avail_out = out.size();
  EXPECT_EQ(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
  out.resize(out.size() - s.avail_out);
  lzma_end(&s);
  AppendSize(out, static_cast<uint32_t>(in.size()));
  return out;
}

std::vector<uint8_t> Gzip(const std::vector<uint8_t>& in) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out(deflateBound(&s, in.size()));
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
  out.resize(out.size() - s.avail_out);
  deflateEnd(&s);  // gzip's own trailer ends with the size, as the kernel's does.
  return out;
}

// A bzImage whose protected-mode part starts with `payload` (payload_offset 0).
std::vector<uint8_t> BzImageWith(const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> bz =
      testing::MakeBzImage(static_cast<uint32_t>((payload.size() + 15) & ~15u));
  std::copy(payload.begin(), payload.end(), bz.begin() + 2 * 512);
  Put<uint32_t>(bz, 0x248, 0);
  Put<uint32_t>(bz, 0x24c, static_cast<uint32_t>(payload.size()));
  return bz;
}

TEST(DecompressTest, EveryCodecDebianShipsGivesBackTheVmlinux) {
  const std::vector<uint8_t> vmlinux = ElfWithPvhNote(0x1000040);
  const std::pair<const char*, std::vector<uint8_t>> cases[] = {
      {"lz4", Lz4Legacy(vmlinux)}, {"zstd", Zstd(vmlinux)}, {"xz", Xz(vmlinux, false)},
      {"lzma", Xz(vmlinux, true)}, {"gzip", Gzip(vmlinux)},
  };
  for (const auto& [name, payload] : cases) {
    SCOPED_TRACE(name);
    EXPECT_EQ(PayloadFormatName(DetectPayloadFormat(payload)), name);
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> out,
                         DecompressBzImage(BzImageWith(payload), 1 << 30));
    EXPECT_EQ(out, vmlinux);
  }
}

TEST(DecompressTest, RefusesWhatIsNotAValidPayload) {
  const std::vector<uint8_t> vmlinux = ElfWithPvhNote(0x1000040);
  std::vector<uint8_t> lz4 = Lz4Legacy(vmlinux);
  EXPECT_THAT(DecompressPayload(lz4, 100),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("at most 100")));
  std::vector<uint8_t> wrong_size = lz4;
  Put<uint32_t>(wrong_size, wrong_size.size() - 4, static_cast<uint32_t>(vmlinux.size() + 1));
  EXPECT_THAT(DecompressPayload(wrong_size, 1 << 30),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the trailer says")));
  std::vector<uint8_t> corrupt = Zstd(vmlinux);
  corrupt[8] ^= 0xff;
  corrupt[9] ^= 0xff;
  EXPECT_THAT(DecompressPayload(corrupt, 1 << 30), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<uint8_t> huge_block = {0x02, 0x21, 0x4c, 0x18, 0xff, 0xff, 0xff, 0x00, 1, 2, 3, 4};
  EXPECT_THAT(DecompressPayload(huge_block, 1 << 30),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a block of")));
  // An lzma header asking for a 4 GiB dictionary: refused by the decoder's memory limit, not
  // allocated.
  std::vector<uint8_t> greedy = {0x5d, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x10, 0x00, 0x00};
  EXPECT_THAT(DecompressPayload(greedy, 1 << 30), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<uint8_t> bzip2 = {'B', 'Z', 'h', '9', 0, 0, 0, 0, 0x10, 0, 0, 0};
  EXPECT_THAT(DecompressPayload(bzip2, 1 << 30),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bzip2 is not decompressed")));
  std::vector<uint8_t> not_elf(4096, 0x41);
  EXPECT_THAT(DecompressBzImage(BzImageWith(Gzip(not_elf)), 1 << 30),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an ELF")));
  std::vector<uint8_t> outside = BzImageWith(lz4);
  Put<uint32_t>(outside, 0x24c, 0x7fffffff);
  EXPECT_THAT(BzImagePayload(outside),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lies outside the file")));
  std::vector<uint8_t> old = BzImageWith(lz4);
  Put<uint16_t>(old, 0x206, 0x0207);
  EXPECT_THAT(BzImagePayload(old),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no payload fields")));
  EXPECT_THAT(BzImagePayload(vmlinux), StatusIs(absl::StatusCode::kInvalidArgument));
}

// The decompressed ELF, booted with the bzImage's setup header, and its PVH entry.
TEST(DecompressTest, TheVmlinuxLoadsWithTheBzImagesHeaderAndItsPvhEntry) {
  auto ram = GuestMemory::CreateRam({{GuestAddress(0), 64 << 20}});
  ASSERT_OK(ram.status());
  const std::vector<uint8_t> vmlinux = ElfWithPvhNote(0x1000040);
  const std::vector<uint8_t> bz = BzImageWith(Lz4Legacy(vmlinux));
  LinuxBootConfig config{.kernel = vmlinux,
                         .cmdline = "console=ttyS0",
                         .e820 = {{0x100000, (64 << 20) - 0x100000, E820Type::kRam}},
                         .setup_header_from = bz};
  ASSERT_OK_AND_ASSIGN(LinuxBootInfo info, LoadLinux(*ram, config));
  EXPECT_EQ(info.format, KernelFormat::kElf);
  EXPECT_EQ(info.entry, GuestAddress(0x1000000));
  ASSERT_TRUE(info.pvh_entry.has_value());
  EXPECT_EQ(*info.pvh_entry, GuestAddress(0x1000040));
  EXPECT_THAT(ram->ReadObj<uint16_t>(GuestAddress(0x7000 + 0x206)), IsOkAndHolds(0x020f))
      << "the bzImage's protocol version in the zero page";
  std::vector<uint8_t> outside = ElfWithPvhNote(0x4000000);
  config.kernel = outside;
  EXPECT_THAT(LoadLinux(*ram, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("PVH entry")));
}

TEST(PvhTest, WritesTheStartInfoModuleAndMemoryMap) {
  auto ram = GuestMemory::CreateRam({{GuestAddress(0), 4 << 20}});
  ASSERT_OK(ram.status());
  PvhConfig config{.cmdline = GuestAddress(0x20000),
                   .initrd = GuestAddress(0x300000),
                   .initrd_size = 0x1234,
                   .rsdp = GuestAddress(0xe0000),
                   .e820 = {{0, 0x9fc00, E820Type::kRam}, {0x100000, 0x300000, E820Type::kRam}}};
  ASSERT_OK(WritePvhStartInfo(*ram, config));
  auto u32 = [&](uint64_t a) { return ram->ReadObj<uint32_t>(GuestAddress(a)).value_or(0); };
  auto u64 = [&](uint64_t a) { return ram->ReadObj<uint64_t>(GuestAddress(a)).value_or(0); };
  EXPECT_EQ(u32(0x6000), kPvhStartInfoMagic);
  EXPECT_EQ(u32(0x6004), 1u) << "version 1: the memory map";
  EXPECT_EQ(u32(0x600c), 1u) << "one module";
  EXPECT_EQ(u64(0x6010), 0x6040u);
  EXPECT_EQ(u64(0x6018), 0x20000u);
  EXPECT_EQ(u64(0x6020), 0xe0000u);
  EXPECT_EQ(u64(0x6028), 0x6080u);
  EXPECT_EQ(u32(0x6030), 2u);
  EXPECT_EQ(u64(0x6040), 0x300000u);
  EXPECT_EQ(u64(0x6048), 0x1234u);
  EXPECT_EQ(u64(0x6080 + 24), 0x100000u);
  EXPECT_EQ(u64(0x6080 + 32), 0x300000u);
  EXPECT_EQ(u32(0x6080 + 40), 1u);
  config.e820.clear();
  EXPECT_THAT(WritePvhStartInfo(*ram, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 127")));
  config.e820.assign(128, {0, 0x1000, E820Type::kRam});
  EXPECT_THAT(WritePvhStartInfo(*ram, config), StatusIs(absl::StatusCode::kInvalidArgument));
  config.e820.assign(1, {0, 0x1000, E820Type::kRam});
  config.start_info = GuestAddress(0x40000000);
  EXPECT_THAT(WritePvhStartInfo(*ram, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("below 1 GiB")));
  config.start_info = GuestAddress(0x3ff000);
  config.initrd = GuestAddress(uint64_t{1} << 32);
  EXPECT_THAT(WritePvhStartInfo(*ram, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("above 4 GiB")));
  config.initrd.reset();
  config.start_info = GuestAddress(0x3ff008);
  EXPECT_THAT(WritePvhStartInfo(*ram, config), StatusIs(absl::StatusCode::kResourceExhausted));
}

// Debian's cloud kernel (an LZ4 bzImage, CONFIG_PVH), as downloaded by tools/setup for the lab.
TEST(DecompressTest, TheDebianCloudKernelDecompressesToAVmlinuxWithAPvhEntry) {
  std::ifstream in("/var/cache/vmmkit/lab/kernel/vmlinuz", std::ios::binary);
  if (!in) GTEST_SKIP() << "no lab kernel cached (tools/setup downloads it)";
  std::vector<uint8_t> kernel((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
  ASSERT_OK_AND_ASSIGN(absl::Span<const uint8_t> payload, BzImagePayload(kernel));
  EXPECT_EQ(DetectPayloadFormat(payload), PayloadFormat::kLz4);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> vmlinux, DecompressBzImage(kernel, 1 << 30));
  auto ram = GuestMemory::CreateRam({{GuestAddress(0), 256 << 20}});
  ASSERT_OK(ram.status());
  ASSERT_OK_AND_ASSIGN(
      LinuxBootInfo info,
      LoadLinux(*ram, {.kernel = vmlinux,
                       .e820 = {{0x100000, (256 << 20) - 0x100000, E820Type::kRam}},
                       .setup_header_from = kernel}));
  EXPECT_EQ(info.entry, GuestAddress(0x1000000)) << "startup_64";
  ASSERT_TRUE(info.pvh_entry.has_value());
  EXPECT_GT(info.pvh_entry->raw(), 0x1000000u);
}

}  // namespace
}  // namespace vmmkit::loader
