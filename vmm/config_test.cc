#include "vmm/config.h"

#include <fstream>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

using ::testing::HasSubstr;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    kernel_ = std::string(tmp ? tmp : "/tmp") + "/kernel";
    std::ofstream(kernel_) << "not empty";
  }
  RawConfig Valid() const {
    return RawConfig{.kernel = kernel_, .memory_mib = "512", .cpus = "2", .serial = "stdio"};
  }
  std::string kernel_;
};

TEST_F(ConfigTest, AcceptsAValidConfiguration) {
  ASSERT_OK_AND_ASSIGN(VmmConfig c, ValidateConfig(Valid()));
  EXPECT_EQ(c.memory_bytes, 512u << 20);
  EXPECT_EQ(c.cpus, 2u);
  EXPECT_EQ(c.serial, SerialMode::kStdio);
  RawConfig file = Valid();
  file.serial = "file:/tmp/console.log";
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(file));
  EXPECT_EQ(c.serial_path, "/tmp/console.log");
}

TEST_F(ConfigTest, EachBadValueNamesItsFlag) {
  struct Case {
    void (*mutate)(RawConfig&);
    const char* message;
  };
  const Case cases[] = {
      {[](RawConfig& r) { r.kernel = ""; }, "--kernel is required"},
      {[](RawConfig& r) { r.kernel = "/nonexistent"; }, "--kernel=/nonexistent: No such file"},
      {[](RawConfig& r) { r.kernel = "/tmp"; }, "not a regular file"},
      {[](RawConfig& r) { r.initrd = "/nonexistent/initrd"; }, "--initrd=/nonexistent/initrd"},
      {[](RawConfig& r) { r.memory_mib = "abc"; }, "--memory=abc: expected an integer from 64"},
      {[](RawConfig& r) { r.memory_mib = "63"; }, "--memory=63"},
      {[](RawConfig& r) { r.memory_mib = "-5"; }, "--memory=-5"},
      {[](RawConfig& r) { r.cpus = "0"; }, "--cpus=0: expected an integer from 1 to 254"},
      {[](RawConfig& r) { r.cpus = "255"; }, "--cpus=255"},
      {[](RawConfig& r) { r.serial = "tcp:1"; },
       "--serial=tcp:1: expected stdio, file:PATH or none"},
      {[](RawConfig& r) { r.serial = "file:"; }, "--serial=file:"},
      {[](RawConfig& r) { r.cmdline = std::string("a\0b", 3); }, "NUL"},
      {[](RawConfig& r) { r.memory_backing = "shm"; }, "--memory_backing=shm: expected memfd"},
      {[](RawConfig& r) {
         r.api_socket = "/tmp/a.sock";
         r.api_tcp = "127.0.0.1:0";
       },
       "--api_socket and --api_tcp exclude each other"},
      {[](RawConfig& r) { r.api_socket = std::string(120, 'x'); }, "longer than a socket path"},
  };
  for (const Case& c : cases) {
    RawConfig r = Valid();
    c.mutate(r);
    EXPECT_THAT(ValidateConfig(r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST_F(ConfigTest, EmptyKernelFileIsRejected) {
  std::ofstream(kernel_, std::ios::trunc).close();
  EXPECT_THAT(ValidateConfig(Valid()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

}  // namespace
}  // namespace vmmkit::vmm
