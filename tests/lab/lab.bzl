"""lab_test: a Bazel test that runs a scenario script inside the lab's nested QEMU machine (L1).

Lab tests are tagged `lab` and sized `large`; tools/test runs them in its default pass and skips
them in the sanitizer passes (their binaries run inside L1, not in the test process).
"""

def _unique(labels):
    out = []
    for label in labels:
        if label not in out:
            out.append(label)
    return out

def lab_test(name, scenario, binaries = [], files = {}, l2_initramfs = {}, qemu_args = [],
             modules = "kvm,vfio", timeout_s = 300, tags = [], host_binaries = [], host_dirs = [],
             memory_mib = 2048, kernel_args = [], l2_files = {}, l2_host_binaries = [], l2_modules = [],
             l2_kmods = [], **kwargs):
    """Runs `scenario` in L1 with `binaries` in /lab/bin.

    Args:
      name: test name.
      scenario: shell script; exit status 0 passes.
      binaries: executables (labels) copied into /lab/bin with their shared libraries.
      files: {label: "/path/in/L1"} extra files.
      l2_initramfs: {init script label: "/path/in/L1"}: builds an L2 initramfs around the script.
      qemu_args: extra QEMU arguments (e.g. ["-device", "edu"]).
      modules: module groups to insmod in L1.
      host_binaries: absolute paths of this machine's executables (from Debian packages) to copy
        into /lab/bin with their libraries, e.g. QEMU as a peer to measure against.
      host_dirs: absolute paths of this machine's directories to copy to the same place in L1.
      timeout_s: seconds before QEMU is killed. The runner boots L1 a second time when the first
        froze, so the test's own (Bazel) timeout is set to outlast two boots: "long" (900 s) when
        that fits, else "eternal".
      memory_mib: L1's memory.
      kernel_args: extra L1 kernel command-line arguments.
      l2_files: {label: "/path/in/L2"}: files every L2 initramfs gets (e.g. static test programs).
      l2_host_binaries: absolute paths of this machine's executables (from Debian packages) every
        L2 initramfs gets at the same path, with their shared libraries (e.g. iperf3).
      l2_modules: lab kernel modules (paths under the kernel's modules dir, or lab.py's module
        groups) for L2, in /modules.
      l2_kmods: out-of-tree module sources (one .c each), built against the lab kernel's Debian
        headers, for L2, in /modules.
      tags: extra tags.
      **kwargs: passed to sh_test.
    """
    args = ["$(location //tests/lab:lab.py)", "--scenario", "$(location %s)" % scenario,
            "--outb", "$(location //tests/lab:outb)", "--modules", modules,
            "--timeout", str(timeout_s), "--memory", str(memory_mib)]
    for b in binaries:
        args += ["--binary", "$(location %s)" % b]
    for b in host_binaries:
        args += ["--binary", b]
    for d in host_dirs:
        args += ["--host-dir", d]
    for label, dest in files.items():
        args += ["--file", "$(location %s)=%s" % (label, dest)]
    for label, dest in l2_initramfs.items():
        args += ["--l2-initramfs", "$(location %s)=%s" % (label, dest)]
    for a in qemu_args:
        args.append("--qemu-arg=" + a)
    for a in kernel_args:
        args.append("--append=" + a)
    for label, dest in l2_files.items():
        args += ["--l2-file", "$(location %s)=%s" % (label, dest)]
    for b in l2_host_binaries:
        args += ["--l2-file", "%s=%s" % (b, b)]
    for rel in l2_modules:
        args += ["--l2-module", rel]
    for label in l2_kmods:
        args += ["--l2-kmod", "$(location %s)" % label]
    # Two boots of up to timeout_s each, and building L1's initramfs while the other lab test of
    # tools/test's pair runs.
    timeout = "long" if 2 * timeout_s + 300 <= 900 else "eternal"
    native.sh_test(
        name = name,
        srcs = ["//tests/lab:run_lab.sh"],
        timeout = timeout,
        args = args,
        data = _unique(["//tests/lab:lab.py", "//tests/lab:outb", scenario] + binaries +
                       list(files.keys()) + list(l2_initramfs.keys()) + list(l2_files.keys()) +
                       l2_kmods),
        size = "large",
        tags = tags + ["lab"],
        **kwargs
    )
