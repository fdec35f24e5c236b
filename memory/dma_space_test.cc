#include "memory/dma_space.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::HasSubstr;

// Two RAM regions with a hole between, as a VMM's low and high RAM.
GuestMemory TwoRegions() {
  absl::StatusOr<GuestMemory> m =
      GuestMemory::CreateRam({{GuestAddress(0), 0x10000}, {GuestAddress(0x20000), 0x10000}});
  EXPECT_THAT(m, IsOk());
  return *std::move(m);
}

TEST(IdentityDmaSpaceTest, ReadsAndWritesGuestRamAtTheBusAddress) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  ASSERT_OK(dma.WriteObj<uint64_t>(Iova(0x20008), 0x1122334455667788));
  EXPECT_THAT(ram.ReadObj<uint64_t>(GuestAddress(0x20008)), IsOkAndHolds(0x1122334455667788u));
  ASSERT_OK(ram.WriteObj<uint32_t>(GuestAddress(0xfffc), 0xabcd));
  EXPECT_THAT(dma.ReadObj<uint32_t>(Iova(0xfffc)), IsOkAndHolds(0xabcdu));
}

TEST(IdentityDmaSpaceTest, NothingOutsideGuestRamIsReachable) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  uint8_t buf[16] = {};
  // In the hole, across a region's end into it, past the end, and wrapping the address space.
  EXPECT_THAT(dma.Read(Iova(0x18000), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("DMA read at bus address")));
  EXPECT_THAT(dma.Write(Iova(0xfff8), absl::MakeConstSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("DMA write")));
  EXPECT_THAT(dma.Read(Iova(0x30000), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(dma.Read(Iova(~0ull - 4), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  // A refused write changed nothing at the part that was in RAM.
  EXPECT_THAT(ram.ReadObj<uint64_t>(GuestAddress(0xfff8)), IsOkAndHolds(0u));
}

// A temporary file holding `bytes`.
class TempFile {
 public:
  explicit TempFile(const std::vector<uint8_t>& bytes) {
    std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/dmaXXXXXX";
    fd_ = ::mkstemp(path.data());
    ::unlink(path.c_str());
    EXPECT_EQ(::pwrite(fd_, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  ~TempFile() { ::close(fd_); }
  int fd() const { return fd_; }
  std::vector<uint8_t> Bytes(off_t offset, size_t n) const {
    std::vector<uint8_t> out(n);
    EXPECT_EQ(::pread(fd_, out.data(), n, offset), static_cast<ssize_t>(n));
    return out;
  }

 private:
  int fd_;
};

// A space that only has Read and Write: ReadFromFd/WriteToFd take the bounce path.
class CopyingSpace : public DmaSpace {
 public:
  explicit CopyingSpace(const GuestMemory& ram) : identity_(ram) {}
  absl::Status Read(Iova iova, absl::Span<uint8_t> dst) const override {
    return identity_.Read(iova, dst);
  }
  absl::Status Write(Iova iova, absl::Span<const uint8_t> src) const override {
    return identity_.Write(iova, src);
  }

 private:
  IdentityDmaSpace identity_;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13);
  return v;
}

TEST(DmaSpaceFileTest, FileToMemoryAndBackDirectlyOrThroughTheBounceBuffer) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace direct(ram);
  CopyingSpace copying(ram);
  for (const DmaSpace* dma :
       {static_cast<const DmaSpace*>(&direct), static_cast<const DmaSpace*>(&copying)}) {
    TempFile file(Pattern(0x30000, 5));
    // 0x9000 bytes from file offset 0x100 into RAM at 0x2000, then out again at 0x20000.
    ASSERT_OK(dma->ReadFromFd(file.fd(), 0x100, {{Iova(0x2000), 0x9000}}));
    std::vector<uint8_t> got(0x9000);
    ASSERT_OK(ram.Read(GuestAddress(0x2000), absl::MakeSpan(got)));
    EXPECT_EQ(got, file.Bytes(0x100, 0x9000));
    ASSERT_OK(dma->WriteToFd(file.fd(), 0x20000, {{Iova(0x2000), 0x9000}}));
    EXPECT_EQ(file.Bytes(0x20000, 0x9000), got);
    // Scattered ranges, in both regions, laid end to end in the file; an empty one among them.
    const std::vector<DmaRange> scattered = {
        {Iova(0x8000), 0x1000}, {Iova(0x21000), 0x800}, {Iova(0x100), 0}, {Iova(0x300), 0x123}};
    ASSERT_OK(dma->ReadFromFd(file.fd(), 0x1000, scattered));
    std::vector<uint8_t> laid;
    for (const DmaRange& r : scattered) {
      std::vector<uint8_t> part(r.len);
      ASSERT_OK(ram.Read(GuestAddress(r.iova.raw()), absl::MakeSpan(part)));
      laid.insert(laid.end(), part.begin(), part.end());
    }
    EXPECT_EQ(laid, file.Bytes(0x1000, laid.size()));
    ASSERT_OK(dma->WriteToFd(file.fd(), 0x28000, scattered));
    EXPECT_EQ(file.Bytes(0x28000, laid.size()), laid);
  }
}

TEST(DmaSpaceFileTest, MemoryOutsideGuestRamAndAFileTooShortAreErrors) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  TempFile file(Pattern(0x1000, 1));
  // Into the hole, and across the end of the first region (the bounce path, which refuses too).
  EXPECT_THAT(dma.ReadFromFd(file.fd(), 0, {{Iova(0x18000), 0x100}}),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(dma.WriteToFd(file.fd(), 0, {{Iova(0), 0x10}, {Iova(0xff00), 0x200}}),
              StatusIs(absl::StatusCode::kOutOfRange));
  // Past the file's end.
  EXPECT_THAT(dma.ReadFromFd(file.fd(), 0x800, {{Iova(0), 0x1000}}),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("end of file")));
  // A bad fd names the call.
  EXPECT_THAT(dma.ReadFromFd(-1, 0, {{Iova(0), 0x10}}), StatusIs(::testing::_, HasSubstr("pread")));
  // Nothing to move is nothing done.
  EXPECT_OK(dma.ReadFromFd(file.fd(), 0, {}));
  // More ranges than one preadv takes (IOV_MAX): the file offset carries on across calls.
  std::vector<DmaRange> many;
  for (uint64_t i = 0; i < 1500; ++i) many.push_back({Iova(0x20000 + i * 8), 2});
  TempFile big(Pattern(3000, 9));
  ASSERT_OK(dma.ReadFromFd(big.fd(), 0, many));
  EXPECT_THAT(
      ram.ReadObj<uint16_t>(GuestAddress(0x20000 + 1499 * 8)),
      IsOkAndHolds(static_cast<uint16_t>(Pattern(3000, 9)[2998] | Pattern(3000, 9)[2999] << 8)));
}

TEST(DmaSpaceFileTest, HostIovecsNameGuestRamOnlyWhereTheSpaceCan) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace direct(ram);
  std::vector<iovec> iov;
  ASSERT_TRUE(
      direct.HostIovecs({{Iova(0x2000), 0x100}, {Iova(0x100), 0}, {Iova(0x21000), 8}}, iov));
  ASSERT_EQ(iov.size(), 2u);  // The empty range names nothing.
  EXPECT_EQ(iov[0].iov_base, *ram.Translate(GuestAddress(0x2000), 0x100));
  EXPECT_EQ(iov[0].iov_len, 0x100u);
  EXPECT_EQ(iov[1].iov_base, *ram.Translate(GuestAddress(0x21000), 8));
  // Into the hole, across the first region's end: not named (the caller takes ReadFromFd).
  EXPECT_FALSE(direct.HostIovecs({{Iova(0x18000), 0x100}}, iov));
  EXPECT_FALSE(direct.HostIovecs({{Iova(0), 8}, {Iova(0xff00), 0x200}}, iov));
  // A space without host memory of its own never names any.
  CopyingSpace copying(ram);
  EXPECT_FALSE(copying.HostIovecs({{Iova(0x2000), 0x100}}, iov));
}

TEST(IdentityDmaSpaceTest, AgreesWithAModelOfTheRamUnderRandomAccesses) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  std::vector<uint8_t> model(0x30000, 0);  // Bytes 0x10000-0x1ffff are the hole.
  const auto in_ram = [](uint64_t a, uint64_t n) {
    return (a + n <= 0x10000) || (a >= 0x20000 && a + n <= 0x30000);
  };
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t a = rng() % 0x32000, n = 1 + rng() % 64;
    std::vector<uint8_t> buf(n);
    if (rng() % 2) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      const absl::Status s = dma.Write(Iova(a), buf);
      ASSERT_EQ(s.ok(), in_ram(a, n)) << std::hex << a << " +" << n << ": " << s;
      if (s.ok()) std::copy(buf.begin(), buf.end(), model.begin() + static_cast<long>(a));
    } else {
      const absl::Status s = dma.Read(Iova(a), absl::MakeSpan(buf));
      ASSERT_EQ(s.ok(), in_ram(a, n)) << std::hex << a << " +" << n << ": " << s;
      if (s.ok()) {
        ASSERT_TRUE(std::equal(buf.begin(), buf.end(), model.begin() + static_cast<long>(a)));
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit
