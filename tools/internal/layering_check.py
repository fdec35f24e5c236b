#!/usr/bin/env python3
"""Checks vmmkit's BUILD dependencies against its declared layering (tools/test runs it).

Reads every BUILD file of the repository (executing it with stand-ins for the rules and macros,
which is enough for these files: Starlark they use is Python), then checks:
  1. every dependency between packages points down the layers below (or stays in its package);
  2. the VMM library (//vmm:vmm_lib) has no gRPC and no generated protos in its closure, so that
     a program can embed the VMM without the control plane's transport.
Prints each violation and exits 1 if there is any.
"""
import os
import sys

# Lower layers first. A package may depend on packages of strictly lower layers only. The same
# order is drawn in README.md ("Layout") and docs/architecture.md.
LAYERS = [
    ["base"],
    ["memory", "sandbox", "tap", "uring"],  # tap/: tap interfaces; uring/: io_uring rings.
    ["kvm", "loader", "acpi", "devices", "vfio", "virtio", "proto"],
    ["irq", "pci", "vhost"],  # vhost/: the kernel's vhost devices serving virtio/'s queues.   # Interrupt plumbing on kvm/; PCI functions and their bus on devices/.
    ["iommu", "virtio_pci"],  # The vIOMMU: vfio/, irq/. The virtio PCI transport: pci/, virtio/.
    ["passthrough", "virtio_blk", "virtio_net", "virtio_vsock"],  # vfio-pci; virtio devices.
    ["vmm"],
]
# Outside the layering: build glue anyone may use, and programs/tests that may use anything.
INFRA = {"tools", "third_party"}
TOP = {"examples", "tests"}
# Targets whose closure must stay free of these (label prefixes).
NO_TRANSPORT = {"//vmm:vmm_lib": ["@system_libs//:grpc", "//proto"]}


def rank(package):
    top = package.split("/")[0]
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    return None


class Collector:
    """Stand-ins for what BUILD files call; records each target's deps."""

    def __init__(self, package):
        self.package = package
        self.targets = {}

    def rule(self, *args, **kwargs):
        name = kwargs.get("name")
        if name is None:
            return
        deps = []
        for attr in ("deps", "data", "srcs"):
            value = kwargs.get(attr, [])
            deps += flatten(value)
        self.targets["//%s:%s" % (self.package, name)] = [
            absolute(self.package, d) for d in deps if isinstance(d, str) and is_label(d)
        ]


class Select(list):
    pass


def flatten(value):
    if isinstance(value, Select):
        return list(value)
    if isinstance(value, list):
        out = []
        for v in value:
            out += flatten(v)
        return out
    return [value]


def is_label(s):
    return s.startswith(":") or s.startswith("//") or s.startswith("@")


def absolute(package, label):
    if label.startswith(":"):
        return "//%s%s" % (package, label)
    if label.startswith("//") and ":" not in label:
        return label + ":" + label.rsplit("/", 1)[-1]
    return label


class Adder(list):
    def __add__(self, other):
        return Adder(flatten(list(self)) + flatten(other))

    def __radd__(self, other):
        return Adder(flatten(other) + flatten(list(self)))


def select(d):
    values = []
    for v in d.values():
        values += flatten(v)
    return Adder(values)


def read_build(root, package):
    path = os.path.join(root, package, "BUILD")
    c = Collector(package)
    env = {
        "load": lambda *a, **k: None,
        "package": lambda *a, **k: None,
        "licenses": lambda *a, **k: None,
        "exports_files": lambda *a, **k: None,
        "config_setting": lambda *a, **k: None,
        "glob": lambda *a, **k: [],
        "select": select,
        "Label": lambda s: s,
    }

    class Env(dict):
        def __missing__(self, key):
            return c.rule  # Every rule or macro: record its name and deps.

    with open(path) as fh:
        code = fh.read()
    exec(compile(code, path, "exec"), Env(env))
    return c.targets


def packages(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "bazel-"))]
        if "BUILD" in filenames:
            yield os.path.relpath(dirpath, root).replace(os.sep, "/").strip(".") or ""


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    graph = {}
    for pkg in packages(root):
        if pkg.startswith("third_party"):
            continue  # Stand-ins for external repositories, not vmmkit code.
        graph.update(read_build(root, pkg))
    problems = []
    for target, deps in sorted(graph.items()):
        pkg = target[2:].split(":")[0]
        src = rank(pkg)
        if pkg.split("/")[0] in TOP | INFRA or src is None:
            continue
        for dep in deps:
            if not dep.startswith("//"):
                continue
            dep_pkg = dep[2:].split(":")[0]
            if dep_pkg == pkg or dep_pkg.split("/")[0] in INFRA:
                continue
            dst = rank(dep_pkg)
            if dst is None or dst >= src:
                problems.append("%s depends on %s: %s is not below %s in the layering" %
                                (target, dep, dep_pkg, pkg))
    for target, banned in NO_TRANSPORT.items():
        seen, stack = set(), [target]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            stack += graph.get(t, [])
        for t in sorted(seen):
            if any(t.startswith(b) for b in banned):
                problems.append("%s has %s in its dependency closure" % (target, t))
    for p in problems:
        print("layering_check: " + p)
    print("layering_check: %d targets, %d problem(s)" % (len(graph), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
