"""Re-exports Bazel's native C++ rules under @rules_cc//cc:defs.bzl.

Debian's bazel-rules-cc (0.0.4) needs a newer Bazel than bazel-bootstrap's 4.2.3, and the network
is not available to fetch a matching release, so this file stands in for it.
"""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_shared_library = getattr(native, "cc_shared_library", None)
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
fdo_prefetch_hints = native.fdo_prefetch_hints
fdo_profile = native.fdo_profile
objc_import = native.objc_import
objc_library = native.objc_library
