"""Re-exports Bazel's native Java rules under @rules_java//java:defs.bzl.

vmmkit has no Java code, but Bazel 4.2.3 registers its JDK toolchains for every build and their
BUILD file loads this file; without a local copy Bazel would try to download rules_java.
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_lite_proto_library = native.java_lite_proto_library
java_package_configuration = native.java_package_configuration
java_plugin = native.java_plugin
java_proto_library = native.java_proto_library
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain
