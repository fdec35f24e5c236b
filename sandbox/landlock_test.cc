#include "sandbox/landlock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::sandbox {
namespace {

using ::testing::HasSubstr;

class LandlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    if (LandlockRuleset::AbiVersion() < 1) GTEST_SKIP() << "this kernel has no Landlock";
    dir_ = ::testing::TempDir() + "/landlock";
    allowed_ = dir_ + "/allowed";
    other_ = dir_ + "/other";
    (void)::mkdir(dir_.c_str(), 0700);
    (void)::mkdir(allowed_.c_str(), 0700);
    (void)::mkdir(other_.c_str(), 0700);
    std::ofstream(allowed_ + "/a") << "a";
    std::ofstream(other_ + "/b") << "b";
    std::ofstream(dir_ + "/image") << "image";
  }
  std::string dir_, allowed_, other_;
};

TEST_F(LandlockTest, OnlyAllowedPathsCanBeOpened) {
  EXPECT_EXIT(
      {
        absl::StatusOr<LandlockRuleset> rules = LandlockRuleset::Create();
        if (!rules.ok()) std::_Exit(1);
        if (!rules->AllowPath(allowed_, kLandlockReadWrite).ok()) std::_Exit(2);
        if (!rules->AllowPath(dir_ + "/image", kLandlockRead).ok()) std::_Exit(3);
        if (!rules->RestrictSelf().ok()) std::_Exit(4);
        if (::open((allowed_ + "/a").c_str(), O_RDWR) < 0) std::_Exit(5);
        if (::open((dir_ + "/image").c_str(), O_RDONLY) < 0) std::_Exit(6);
        // Read-only: a write open is refused; so is everything not named.
        if (::open((dir_ + "/image").c_str(), O_RDWR) >= 0 || errno != EACCES) std::_Exit(7);
        if (::open((other_ + "/b").c_str(), O_RDONLY) >= 0 || errno != EACCES) std::_Exit(8);
        if (::open("/etc/passwd", O_RDONLY) >= 0 || errno != EACCES) std::_Exit(9);
        // Creating in the read-write directory needs MAKE_REG, which was not given.
        if (::open((allowed_ + "/new").c_str(), O_CREAT | O_WRONLY, 0600) >= 0) std::_Exit(10);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(LandlockTest, CreatingASocketNeedsMakeSock) {
  EXPECT_EXIT(
      {
        absl::StatusOr<LandlockRuleset> rules = LandlockRuleset::Create();
        if (!rules.ok()) std::_Exit(1);
        if (!rules->AllowPath(allowed_, LANDLOCK_ACCESS_FS_MAKE_SOCK).ok()) std::_Exit(2);
        if (!rules->RestrictSelf().ok()) std::_Exit(3);
        if (::mknod((allowed_ + "/s").c_str(), S_IFSOCK | 0600, 0) != 0) std::_Exit(4);
        if (::mknod((other_ + "/s").c_str(), S_IFSOCK | 0600, 0) == 0) std::_Exit(5);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(LandlockTest, AMissingPathIsAnErrorNamingIt) {
  absl::StatusOr<LandlockRuleset> rules = LandlockRuleset::Create();
  ASSERT_OK(rules.status());
  EXPECT_THAT(rules->AllowPath(dir_ + "/nosuch", kLandlockRead),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("landlock: open(O_PATH) ")));
  EXPECT_NE(rules->handled() & LANDLOCK_ACCESS_FS_READ_FILE, 0u);
}

}  // namespace
}  // namespace vmmkit::sandbox
