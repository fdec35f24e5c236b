"""Turns Debian's -dev packages into Bazel targets, offline.

Headers live in /usr/include, which the auto-configured toolchain already treats as a builtin
include directory, so each target only carries the defines and link flags that pkg-config reports.
pkg-config runs once, at fetch time, so the link lines always match the installed packages (gRPC
alone pulls in about 40 Abseil libraries; a hand-written list goes stale and fails to link).

Targets in @system_libs: absl, protobuf, grpc, grpc_reflection, gtest, gtest_main, benchmark,
seccomp, uring, decompress.
"""

# Libraries that stay shared even in a static build (the C runtime's).
_ALWAYS_SHARED = ["-ldl", "-pthread", "-lrt", "-latomic", "-lm"]

# Targets that can be linked statically (Debian ships their .a archives): with
# --define=vmmkit_static_system_libs=1 they link against the archives, so a binary does not
# resolve symbols across ~70 shared libraries at start (see //tests/vmm:api_start_benchmark).
_STATIC_OK = ["absl", "protobuf", "grpc", "grpc_reflection", "seccomp", "uring", "decompress"]

# vmmkit's setting, named relative to this file: in a workspace that depends on vmmkit, a plain
# "//tools:..." or "@//tools:..." would name the user's own (absent) package.
_STATIC_LABEL = Label("//tools:static_system_libs")
_STATIC_SETTING = "@%s//%s:%s" % (_STATIC_LABEL.workspace_name, _STATIC_LABEL.package, _STATIC_LABEL.name)

# Target name -> (pkg-config modules, extra link flags).
_LIBS = {
    "absl": ([
        "absl_base",
        "absl_flags",
        "absl_flags_parse",
        "absl_flags_usage",
        "absl_hash",
        "absl_raw_hash_set",
        "absl_random_random",
        "absl_status",
        "absl_statusor",
        "absl_str_format",
        "absl_strings",
        "absl_synchronization",
        "absl_time",
    ], []),
    "protobuf": (["protobuf"], []),
    "grpc": (["grpc++", "protobuf"], []),
    # libgrpc++_reflection ships without a .pc file.
    "grpc_reflection": (["grpc++", "protobuf"], ["-lgrpc++_reflection"]),
    "gtest": (["gtest", "gmock"], []),
    "gtest_main": (["gtest", "gmock", "gtest_main"], []),
    "benchmark": (["benchmark"], []),
    "seccomp": (["libseccomp"], []),
    "uring": (["liburing"], []),
    # The codecs a bzImage's payload may use (loader/decompress.h).
    "decompress": (["liblz4", "libzstd", "liblzma", "zlib"], []),
}

def _pkg_config(ctx, flag, modules):
    result = ctx.execute(["pkg-config", flag] + modules)
    if result.return_code != 0:
        fail("pkg-config %s %s failed (run tools/setup): %s" % (flag, " ".join(modules), result.stderr))
    return [f for f in result.stdout.strip().split(" ") if f]

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (modules, extra) in _LIBS.items():
        cflags = _pkg_config(ctx, "--cflags", modules)
        defines = [f[2:] for f in cflags if f.startswith("-D")]
        linkopts = _pkg_config(ctx, "--libs", modules) + extra
        build.append("cc_library(")
        build.append("    name = %r," % name)
        build.append("    defines = %r," % defines)
        if name in _STATIC_OK:
            static = [f for f in extra + _pkg_config(ctx, "--static", ["--libs"] + modules)
                      if f.startswith("-l") and f not in _ALWAYS_SHARED]
            deduped = []
            for f in static:
                if f not in deduped:
                    deduped.append(f)
            static_opts = (["-Wl,-Bstatic", "-Wl,--start-group"] + deduped +
                           ["-Wl,--end-group", "-Wl,-Bdynamic"] + _ALWAYS_SHARED)
            build.append("    linkopts = select({")
            build.append("        %r: %r," % (_STATIC_SETTING, static_opts))
            build.append("        \"//conditions:default\": %r," % linkopts)
            build.append("    }),")
        else:
            build.append("    linkopts = %r," % linkopts)
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(build))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    doc = "Exposes Debian's Abseil, protobuf, gRPC, GoogleTest and Benchmark as cc_library targets.",
)
