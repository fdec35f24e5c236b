"""vmm_cc_grpc_library: one .proto -> one C++ library (messages and, optionally, gRPC stubs).

Runs Debian's protoc and grpc_cpp_plugin from /usr/bin in a genrule, so no proto or gRPC rules
have to be downloaded. Generated code is compiled without the project's warning flags.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def vmm_cc_grpc_library(name, src, grpc = True, deps = [], **kwargs):
    """Generates and compiles `src` (a single .proto in this package).

    Args:
      name: the cc_library's name.
      src: the .proto file, relative to the package.
      grpc: also generate gRPC service stubs (.grpc.pb.h/.cc).
      deps: cc libraries of imported protos (made with this macro).
      **kwargs: passed to cc_library (visibility, testonly, ...).
    """
    base = src[:-len(".proto")]
    outs = [base + ".pb.h", base + ".pb.cc"]
    if grpc:
        outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    pkg = native.package_name()
    grpc_flags = ""
    if grpc:
        grpc_flags = ("--grpc_out=$(GENDIR) " +
                      "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) ")
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = outs,
        cmd = ("protoc --proto_path=. --cpp_out=$(GENDIR) " + grpc_flags +
               ("%s/%s" % (pkg, src) if pkg else src)),
        testonly = kwargs.get("testonly", False),
    )
    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@system_libs//:grpc" if grpc else "@system_libs//:protobuf"],
        **kwargs
    )
