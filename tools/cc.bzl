"""The one set of compiler options for vmmkit's own code, and thin macros that apply it.

System headers (Abseil, gRPC, GoogleTest in /usr/include) are outside these warnings because the
compiler treats /usr/include as a system directory; generated protobuf code is compiled without
them (see proto.bzl).
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

# Labels of vmmkit's own targets, resolved relative to this file so that the macros also work in
# BUILD files of a workspace that depends on vmmkit (where "//tools:..." is that workspace's).
# (Bazel 4.2's select() takes keys as strings only, hence the spelled-out form.)
def _absolute(label):
    return "@%s//%s:%s" % (label.workspace_name, label.package, label.name)

_FUZZING = _absolute(Label("//tools:fuzzing"))
_FUZZ_REPLAY_MAIN = _absolute(Label("//tools:fuzz_replay_main"))

VMMKIT_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wconversion",
    "-Wnon-virtual-dtor",
    "-Wimplicit-fallthrough",
    "-Wthread-safety",
]

def vmm_cc_library(name, copts = [], **kwargs):
    cc_library(name = name, copts = VMMKIT_COPTS + copts, **kwargs)

def vmm_cc_binary(name, copts = [], **kwargs):
    cc_binary(name = name, copts = VMMKIT_COPTS + copts, **kwargs)

def vmm_cc_test(name, copts = [], deps = [], **kwargs):
    """A GoogleTest unit test; links gtest_main unless the test brings its own main."""
    cc_test(
        name = name,
        copts = VMMKIT_COPTS + copts,
        deps = deps + ["@system_libs//:gtest_main"],
        **kwargs
    )

def vmm_cc_benchmark(name, copts = [], deps = [], tags = [], **kwargs):
    """A Google Benchmark binary. Benchmarks print numbers; they are never run as tests."""
    cc_binary(
        name = name,
        testonly = True,
        copts = VMMKIT_COPTS + copts,
        deps = deps + ["@system_libs//:benchmark"],
        tags = tags + ["benchmark"],
        **kwargs
    )

def vmm_cc_fuzz_test(name, srcs, corpus = [], copts = [], deps = [], tags = [], **kwargs):
    """A libFuzzer target (it defines LLVMFuzzerTestOneInput).

    Under --config=fuzz it links libFuzzer; fuzz with
    `bazel run --config=fuzz //pkg:name -- -max_total_time=60 /tmp/corpus`.
    In every other configuration it links a replay driver that runs `corpus` plus a fixed set of
    pseudo-random inputs, so each fuzz entry point is built and exercised (under ASan/UBSan too)
    on every CI run. Both drivers treat file arguments as inputs to run once.
    """
    cc_test(
        name = name,
        srcs = srcs,
        copts = VMMKIT_COPTS + copts,
        args = ["$(location %s)" % c for c in corpus],
        data = corpus,
        deps = deps + select({
            _FUZZING: [],
            "//conditions:default": [_FUZZ_REPLAY_MAIN],
        }),
        linkopts = select({
            _FUZZING: ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = tags + ["fuzz"],
        **kwargs
    )
