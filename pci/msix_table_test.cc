#include "pci/msix_table.h"

#include <cstring>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::pci {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<uint8_t> U32(uint32_t v) {
  std::vector<uint8_t> b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}
std::vector<uint8_t> U64(uint64_t v) {
  std::vector<uint8_t> b(8);
  std::memcpy(b.data(), &v, 8);
  return b;
}
uint64_t Read(const MsixTable& t, uint64_t off, size_t len) {
  std::vector<uint8_t> b(len);
  t.ReadTable(off, absl::MakeSpan(b));
  uint64_t v = 0;
  std::memcpy(&v, b.data(), len);
  return v;
}

class MsixTableTest : public ::testing::Test {
 protected:
  std::vector<std::pair<uint16_t, MsixVector>> changes_;
  MsixTable table_{8, [this](uint16_t i, const MsixVector& v) { changes_.push_back({i, v}); }};
};

TEST_F(MsixTableTest, VectorsStartMaskedAndReportEffectiveChanges) {
  EXPECT_TRUE(table_.vector(3).masked);
  EXPECT_EQ(Read(table_, 3 * 16 + 12, 4), 1u);
  // The guest programs vector 3 while masked, then unmasks it.
  table_.WriteTable(3 * 16, U64(0xfee01000));
  table_.WriteTable(3 * 16 + 8, U32(0x41));
  table_.WriteTable(3 * 16 + 12, U32(0));
  ASSERT_EQ(changes_.size(), 3u);
  EXPECT_EQ(changes_.back().first, 3);
  EXPECT_EQ(changes_.back().second, (MsixVector{0xfee01000, 0x41, false}));
  changes_.clear();
  table_.WriteTable(3 * 16 + 12, U32(0));  // The same again: nothing to say.
  EXPECT_THAT(changes_, IsEmpty());
  table_.WriteTable(3 * 16 + 12, U32(0xfffffffe));  // Reserved bits: ignored.
  EXPECT_THAT(changes_, IsEmpty());
  EXPECT_EQ(Read(table_, 3 * 16 + 8, 8), 0x41u) << "QWORD read of data + control";
}

TEST_F(MsixTableTest, BadAccessesReadZeroAndWriteNothing) {
  table_.WriteTable(8 * 16, U32(0x41));              // Past the table.
  table_.WriteTable(2, U32(0x41));                   // Misaligned.
  table_.WriteTable(0, std::vector<uint8_t>{1, 2});  // Not a DWORD or QWORD.
  table_.WriteTable(4, U64(0x1));                    // A QWORD not 8-aligned.
  EXPECT_THAT(changes_, IsEmpty());
  EXPECT_EQ(Read(table_, 8 * 16, 4), 0u);
  EXPECT_EQ(Read(table_, 2, 4), 0u);
  EXPECT_EQ(table_.vector(100), MsixVector{});
}

TEST_F(MsixTableTest, PendingBitsShowInThePba) {
  table_.SetPending(5, true);
  table_.SetPending(200, true);  // Out of range: ignored.
  std::vector<uint8_t> pba(8);
  table_.ReadPba(0, absl::MakeSpan(pba));
  EXPECT_THAT(pba, ElementsAre(0x20, 0, 0, 0, 0, 0, 0, 0));
  table_.SetPending(5, false);
  table_.ReadPba(0, absl::MakeSpan(pba));
  EXPECT_EQ(pba[0], 0);
  std::vector<uint8_t> far(4, 0xff);
  table_.ReadPba(4096, absl::MakeSpan(far));
  EXPECT_THAT(far, ElementsAre(0, 0, 0, 0));
}

TEST(MsixTableConcurrencyTest, VcpusWritingDifferentVectors) {
  std::atomic<int> changes{0};
  MsixTable table(64, [&](uint16_t, const MsixVector&) { ++changes; });
  std::vector<std::thread> vcpus;
  for (int t = 0; t < 4; ++t) {
    vcpus.emplace_back([&, t] {
      for (uint16_t v = static_cast<uint16_t>(t); v < 64; v += 4) {
        table.WriteTable(v * 16u + 8, U32(0x40u + v));
        table.WriteTable(v * 16u + 12, U32(0));
      }
    });
  }
  for (auto& t : vcpus) t.join();
  EXPECT_EQ(changes.load(), 128);
  for (uint16_t v = 0; v < 64; ++v) EXPECT_EQ(table.vector(v).data, 0x40u + v);
}

}  // namespace
}  // namespace vmmkit::pci
