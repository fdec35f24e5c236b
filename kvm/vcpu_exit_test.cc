#include "kvm/vcpu_exit.h"

#include <array>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvm/internal/kvm_abi.h"

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

// A kvm_run mapping as KVM leaves it: struct kvm_run, then room for I/O data (KVM puts it in the
// next page, at io.data_offset 4096).
class DecodeExitTest : public ::testing::Test {
 protected:
  static constexpr size_t kRunSize = 2 * 4096;
  kvm_run& run() { return *reinterpret_cast<kvm_run*>(area_.data()); }
  uint8_t* at(size_t offset) { return area_.data() + offset; }
  void Io(uint8_t direction, uint8_t size, uint32_t count, uint64_t data_offset) {
    run().exit_reason = KVM_EXIT_IO;
    run().io.direction = direction;
    run().io.size = size;
    run().io.port = 0x3f8;
    run().io.count = count;
    run().io.data_offset = data_offset;
  }

  std::vector<uint8_t> area_ = std::vector<uint8_t>(kRunSize);  // new[]: aligned for kvm_run.
};

TEST_F(DecodeExitTest, IoInSpansTheDataInTheMapping) {
  Io(KVM_EXIT_IO_IN, 2, 3, 4096);
  ASSERT_OK_AND_ASSIGN(VcpuExit exit, DecodeExit(run(), kRunSize, 0));
  const auto* in = std::get_if<exit::IoIn>(&exit);
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->port, 0x3f8);
  EXPECT_EQ(in->data.data(), at(4096));
  EXPECT_EQ(in->data.size(), 6u);
  in->SetValue(0xbeef);
  EXPECT_EQ(*at(4096 + 4), 0xef);
}

TEST_F(DecodeExitTest, IoOutReadsTheDataInTheMapping) {
  Io(KVM_EXIT_IO_OUT, 1, 1, kRunSize - 1);  // The last byte of the mapping.
  *at(kRunSize - 1) = 0x41;
  ASSERT_OK_AND_ASSIGN(VcpuExit exit, DecodeExit(run(), kRunSize, 0));
  ASSERT_TRUE(std::holds_alternative<exit::IoOut>(exit));
  EXPECT_EQ(std::get<exit::IoOut>(exit).value(), 0x41u);
}

TEST_F(DecodeExitTest, RefusesIoDataOutsideTheMapping) {
  Io(KVM_EXIT_IO_OUT, 4, 2, kRunSize - 4);  // The second access would be past the end.
  EXPECT_THAT(DecodeExit(run(), kRunSize, 3),
              StatusIs(absl::StatusCode::kInternal,
                       ::testing::HasSubstr("vcpu=3: I/O data at offset 8188 length 8 lies "
                                            "outside kvm_run (8192 bytes)")));
  Io(KVM_EXIT_IO_IN, 1, 1, ~uint64_t{0});  // An offset that wraps.
  EXPECT_THAT(DecodeExit(run(), kRunSize, 3), StatusIs(absl::StatusCode::kInternal));
  Io(KVM_EXIT_IO_IN, 4, 0xffffffff, 4096);  // A count whose length overflows 32 bits.
  EXPECT_THAT(DecodeExit(run(), kRunSize, 3), StatusIs(absl::StatusCode::kInternal));
}

TEST_F(DecodeExitTest, RefusesIoOfABadSizeOrNoCount) {
  for (uint8_t size : std::initializer_list<uint8_t>{0, 3, 8}) {
    Io(KVM_EXIT_IO_IN, size, 1, 4096);
    EXPECT_THAT(DecodeExit(run(), kRunSize, 1),
                StatusIs(absl::StatusCode::kInternal, ::testing::HasSubstr("I/O exit with size")))
        << int{size};
  }
  Io(KVM_EXIT_IO_IN, 1, 0, 4096);
  EXPECT_THAT(DecodeExit(run(), kRunSize, 1),
              StatusIs(absl::StatusCode::kInternal, ::testing::HasSubstr("count 0")));
}

TEST_F(DecodeExitTest, MmioSpansTheExitsOwnBytes) {
  run().exit_reason = KVM_EXIT_MMIO;
  run().mmio.phys_addr = 0xfec00010;
  run().mmio.len = 4;
  run().mmio.is_write = 1;
  std::memcpy(run().mmio.data, "\x78\x56\x34\x12", 4);
  ASSERT_OK_AND_ASSIGN(VcpuExit exit, DecodeExit(run(), kRunSize, 0));
  ASSERT_TRUE(std::holds_alternative<exit::MmioWrite>(exit));
  EXPECT_EQ(std::get<exit::MmioWrite>(exit).address, 0xfec00010u);
  EXPECT_EQ(std::get<exit::MmioWrite>(exit).value(), 0x12345678u);
  run().mmio.is_write = 0;
  run().mmio.len = 8;
  ASSERT_OK_AND_ASSIGN(exit, DecodeExit(run(), kRunSize, 0));
  ASSERT_TRUE(std::holds_alternative<exit::MmioRead>(exit));
  EXPECT_EQ(std::get<exit::MmioRead>(exit).data.data(), run().mmio.data);
  EXPECT_EQ(std::get<exit::MmioRead>(exit).data.size(), 8u);
}

TEST_F(DecodeExitTest, RefusesMmioOfNoLengthOrMoreThanEightBytes) {
  run().exit_reason = KVM_EXIT_MMIO;
  for (uint32_t len : {0u, 9u, 0xffffffffu}) {
    run().mmio.len = len;
    EXPECT_THAT(DecodeExit(run(), kRunSize, 2),
                StatusIs(absl::StatusCode::kInternal, ::testing::HasSubstr(absl::StrCat(
                                                          "vcpu=2: MMIO exit with length ", len))));
  }
}

TEST_F(DecodeExitTest, DecodesTheOtherReasons) {
  run().exit_reason = KVM_EXIT_HLT;
  EXPECT_TRUE(std::holds_alternative<exit::Hlt>(*DecodeExit(run(), kRunSize, 0)));
  run().exit_reason = KVM_EXIT_SHUTDOWN;
  EXPECT_TRUE(std::holds_alternative<exit::Shutdown>(*DecodeExit(run(), kRunSize, 0)));
  run().exit_reason = KVM_EXIT_SYSTEM_EVENT;
  run().system_event.type = KVM_SYSTEM_EVENT_RESET;
  EXPECT_EQ(std::get<exit::SystemEvent>(*DecodeExit(run(), kRunSize, 0)).type,
            uint32_t{KVM_SYSTEM_EVENT_RESET});
  run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run().internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
  EXPECT_EQ(std::get<exit::InternalError>(*DecodeExit(run(), kRunSize, 0)).suberror,
            uint32_t{KVM_INTERNAL_ERROR_EMULATION});
  run().exit_reason = KVM_EXIT_FAIL_ENTRY;
  run().fail_entry.hardware_entry_failure_reason = 0x80000021;
  EXPECT_EQ(
      std::get<exit::FailEntry>(*DecodeExit(run(), kRunSize, 0)).hardware_entry_failure_reason,
      0x80000021u);
  run().exit_reason = KVM_EXIT_IOAPIC_EOI;
  run().eoi.vector = 0x31;
  EXPECT_EQ(std::get<exit::IoapicEoi>(*DecodeExit(run(), kRunSize, 0)).vector, 0x31);
  run().exit_reason = KVM_EXIT_INTR;
  EXPECT_TRUE(std::holds_alternative<exit::Interrupted>(*DecodeExit(run(), kRunSize, 0)));
  run().exit_reason = 0x7777;
  EXPECT_EQ(std::get<exit::Unknown>(*DecodeExit(run(), kRunSize, 0)).reason, 0x7777u);
}

}  // namespace
}  // namespace vmmkit::kvm
