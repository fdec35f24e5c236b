// File: tools/testing/skip.h
// -----------------------------------------------------------------------------
// SkipTest for test binaries that are not GoogleTest tests (fuzz-target replays): reports the
// test skipped to Bazel (a JUnit XML with <skipped/> at $XML_OUTPUT_FILE, which tools/test counts)
// and exits 0, so that a test that cannot run here never counts as passed. The shell twin is
// tools/testing/skip.sh.
//
//   if (!kvm.ok()) vmmkit::SkipTest("no /dev/kvm");

#ifndef VMMKIT_TOOLS_TESTING_SKIP_H_
#define VMMKIT_TOOLS_TESTING_SKIP_H_

namespace vmmkit {

[[noreturn]] void SkipTest(const char* reason);

}  // namespace vmmkit

#endif  // VMMKIT_TOOLS_TESTING_SKIP_H_
