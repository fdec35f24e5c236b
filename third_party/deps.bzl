"""vmmkit_dependencies(): every external repository vmmkit needs, all local and offline.

Used by vmmkit's own WORKSPACE and by any workspace that depends on vmmkit:

    local_repository(name = "vmmkit", path = "/path/to/vmmkit")
    load("@vmmkit//third_party:deps.bzl", "vmmkit_dependencies")
    vmmkit_dependencies()

Repositories the caller already defined are left alone.
"""

load("//third_party:system_libs.bzl", "system_libs")

def _vendored_dir_impl(ctx):
    # The stand-in lives in vmmkit's tree; link its files so the path works from any workspace.
    src = ctx.path(ctx.attr.marker).dirname
    for child in src.readdir():
        ctx.symlink(child, child.basename)

_vendored_dir = repository_rule(
    implementation = _vendored_dir_impl,
    attrs = {"marker": attr.label(allow_single_file = True)},
    local = True,
)

# Bazel 4.2.3 would download these; the local stand-ins keep the build offline:
#   rules_cc: Debian's bazel-rules-cc is too new for Bazel 4.2.3; re-exports the native rules.
#   rules_java: loaded by the JDK toolchains Bazel registers for every build.
#   remote_coverage_tools: referenced by Bazel's test rules.
_STAND_INS = ["rules_cc", "rules_java", "remote_coverage_tools"]

def vmmkit_dependencies():
    existing = native.existing_rules()
    for name in _STAND_INS:
        if name not in existing:
            _vendored_dir(name = name, marker = Label("//third_party/%s:WORKSPACE" % name))
    if "system_libs" not in existing:
        # Abseil, protobuf, gRPC, GoogleTest and Benchmark from Debian's packages in /usr.
        system_libs(name = "system_libs")
