#include "sandbox/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>

#include <cstdlib>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace vmmkit::sandbox {
namespace {

class PrivilegesTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(PrivilegesTest, NoNewPrivsSticks) {
  EXPECT_EXIT(
      {
        if (!SetNoNewPrivs().ok()) std::_Exit(1);
        std::_Exit(::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 2);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(PrivilegesTest, DropKeepsOnlyWhatWasAskedForAndHeld) {
  absl::StatusOr<uint64_t> before = EffectiveCapabilities();
  ASSERT_OK(before.status());
  const uint64_t ipc_lock = uint64_t{1} << CAP_IPC_LOCK;
  const int expected = (*before & ipc_lock) != 0 ? 1 : 0;
  EXPECT_EXIT(
      {
        if (!DropCapabilities({CAP_IPC_LOCK}).ok()) std::_Exit(10);
        absl::StatusOr<uint64_t> after = EffectiveCapabilities();
        if (!after.ok()) std::_Exit(11);
        if ((*after & ~ipc_lock) != 0) std::_Exit(12);
        // The bounding set lost the rest too, when there was CAP_SETPCAP to do it.
        if (((*before >> CAP_SETPCAP) & 1) && prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN) != 0) {
          std::_Exit(13);
        }
        // Dropping again is a no-op, and keeps what is kept.
        if (!DropCapabilities({CAP_IPC_LOCK}).ok()) std::_Exit(14);
        std::_Exit((*after & ipc_lock) != 0 ? 1 : 0);
      },
      ::testing::ExitedWithCode(expected), "");
}

TEST_F(PrivilegesTest, DropEverything) {
  EXPECT_EXIT(
      {
        if (!DropCapabilities({}).ok()) std::_Exit(10);
        absl::StatusOr<uint64_t> after = EffectiveCapabilities();
        std::_Exit(after.ok() && *after == 0 ? 0 : 11);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace vmmkit::sandbox
