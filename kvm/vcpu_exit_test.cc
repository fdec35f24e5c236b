#include "kvm/vcpu_exit.h"

#include <array>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::kvm {
namespace {

TEST(VcpuExitTest, IoInSetValueFillsEveryAccessWithExactlySizeBytes) {
  std::array<uint8_t, 8> buf;
  buf.fill(0xee);
  exit::IoIn in{.port = 0x60, .size = 2, .count = 3, .data = absl::MakeSpan(buf).subspan(0, 6)};
  in.SetValue(0x11223344);
  EXPECT_THAT(buf, ::testing::ElementsAre(0x44, 0x33, 0x44, 0x33, 0x44, 0x33, 0xee, 0xee));
}

TEST(VcpuExitTest, MmioValuesAreLittleEndianAndSized) {
  std::array<uint8_t, 8> buf{};
  exit::MmioRead read{.address = 0x1000, .data = absl::MakeSpan(buf).subspan(0, 3)};
  read.SetValue(0xaabbccdd);
  EXPECT_THAT(buf, ::testing::ElementsAre(0xdd, 0xcc, 0xbb, 0, 0, 0, 0, 0));
  exit::MmioWrite write{.address = 0x1000, .data = absl::MakeSpan(buf).subspan(0, 2)};
  EXPECT_EQ(write.value(), 0xccddu);
  exit::IoOut out{.port = 1, .size = 4, .count = 1, .data = absl::MakeSpan(buf).subspan(0, 4)};
  EXPECT_EQ(out.value(), 0xbbccddu);
}

TEST(VcpuExitTest, Describe) {
  std::array<uint8_t, 1> b = {0x41};
  EXPECT_EQ(DescribeExit(exit::IoOut{.port = 0x3f8, .size = 1, .count = 1, .data = b}),
            "IoOut port=0x3f8 size=1 count=1 value=0x41");
  EXPECT_EQ(DescribeExit(exit::Hlt{}), "Hlt");
  EXPECT_EQ(DescribeExit(exit::Unknown{.reason = 99}), "Unknown reason=99");
}

}  // namespace
}  // namespace vmmkit::kvm
