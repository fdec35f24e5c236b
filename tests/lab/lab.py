#!/usr/bin/env python3
"""The lab: runs a scenario inside a nested QEMU machine (L1) built from Debian packages.

This machine has no hardware virtualization and no IOMMU, so anything that needs a working KVM
for a Linux guest, or VFIO, is proven inside L1: QEMU TCG, q35, an EPYC CPU with SVM (so KVM runs
nested inside L1), the emulated Intel IOMMU with interrupt remapping, QEMU's `edu` PCI device,
and Debian's cloud kernel with its KVM and VFIO modules. See shared LAB.md for the recipe.

The runner
  1. builds L1's initramfs: static busybox, an /init that loads the modules and runs the scenario,
     the given binaries with the shared libraries they need (from ldd) and the dynamic loader, and
     extra files (for example an L2 initramfs);
  2. boots QEMU with a timeout, streaming L1's console to stdout (the test log), line by line;
  3. takes the scenario's exit status from QEMU's isa-debug-exit device and exits with it.
A failure or a timeout prints the tail of the console again at the end.

Usage (normally through the lab_test Bazel macro in lab.bzl):
  lab.py --scenario S.sh [--binary PATH]... [--file SRC=DEST]... [--timeout 300]
         [--qemu-arg=-device --qemu-arg=edu]... [--memory 2048]
Inside L1, binaries are in /lab/bin, the scenario is /lab/scenario.sh, files are where DEST says,
the L1 kernel is also at /lab/vmlinuz (for booting it again as L2), /lab/lib.sh has helpers.
"""
import argparse
import collections
import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

CACHE = os.environ.get("VMMKIT_LAB_CACHE", "/var/cache/vmmkit/lab")
DEBUG_EXIT_PORT = 0xF4
TAIL_LINES = 80
HERE = os.path.dirname(os.path.abspath(__file__))

# insmod order matters: the extracted kernel has no modules.dep.
MODULES = {
    "kvm": ["virt/lib/irqbypass.ko", "arch/x86/kvm/kvm.ko", "arch/x86/kvm/kvm-amd.ko"],
    # vfio-pci-core needs irqbypass too, so the group carries it (loaded once when both are used).
    "vfio": ["virt/lib/irqbypass.ko", "drivers/vfio/vfio.ko", "drivers/vfio/vfio_iommu_type1.ko",
             "drivers/vfio/vfio_virqfd.ko", "drivers/vfio/pci/vfio-pci-core.ko",
             "drivers/vfio/pci/vfio-pci.ko"],
    # A kernel driver for any PCI function with INTx: lets a scenario make an IOMMU group
    # non-viable for VFIO.
    "uio": ["drivers/uio/uio.ko", "drivers/uio/uio_pci_generic.ko"],
    # A virtio-blk disk's drivers (modules in this kernel), for L2 guests that boot from one:
    # --l2-module virtio-blk; l2/blk_init.sh loads them in this order.
    "virtio-blk": ["drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko",
                   "drivers/virtio/virtio_pci_modern_dev.ko",
                   "drivers/virtio/virtio_pci_legacy_dev.ko", "drivers/virtio/virtio_pci.ko",
                   "drivers/block/virtio_blk.ko"],
    # L1's side of a guest's network: tap interfaces (vmm --net tap=).
    "tap": ["drivers/net/tun.ko"],
    # vhost-net (after "tap": it needs tun) and vhost-vsock, for vmm's kernel data paths.
    "vhost": ["drivers/net/tap.ko", "drivers/vhost/vhost_iotlb.ko", "drivers/vhost/vhost.ko",
              "drivers/vhost/vhost_net.ko", "net/vmw_vsock/vsock.ko",
              "net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
              "drivers/vhost/vhost_vsock.ko"],
    # A virtio-net interface's drivers, for L2 guests: --l2-module virtio-net; l2/net_init.sh
    # loads them in this order.
    "virtio-net": ["drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko",
                   "drivers/virtio/virtio_pci_modern_dev.ko",
                   "drivers/virtio/virtio_pci_legacy_dev.ko", "drivers/virtio/virtio_pci.ko",
                   "net/core/failover.ko", "drivers/net/net_failover.ko",
                   "drivers/net/virtio_net.ko"],
    # The guest's side of virtio-vsock (after virtio-net's, which loads the virtio core).
    "virtio-vsock": ["net/vmw_vsock/vsock.ko", "net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
                     "net/vmw_vsock/vmw_vsock_virtio_transport.ko"],
}


def fail(msg):
    print(f"lab: {msg}", file=sys.stderr)
    sys.exit(2)


def kernel_dir():
    d = os.path.join(CACHE, "kernel")
    if not os.path.isfile(os.path.join(d, "READY")):
        fail(f"no lab kernel in {d}: run tools/setup (it downloads Debian's cloud kernel once)")
    return d


def copy_with_libs(src, dest_root, dest_rel, copied):
    """Copies an executable and every shared library ldd names, at the same paths."""
    dest = os.path.join(dest_root, dest_rel.lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copy2(src, dest)
    os.chmod(dest, 0o755)
    out = subprocess.run(["ldd", src], capture_output=True, text=True)
    if out.returncode != 0:
        return  # Static binary ("not a dynamic executable").
    for line in out.stdout.splitlines():
        parts = line.split()
        path = None
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            path = parts[2]
        elif parts and parts[0].startswith("/"):
            path = parts[0]  # The dynamic loader.
        if not path or path in copied:
            continue
        copied.add(path)
        real = os.path.realpath(path)
        target = os.path.join(dest_root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(real, target)


def write_cpio(root, out_path, compress):
    """newc cpio of `root` (gzip-1 when compress; the L1 kernel unpacks either)."""
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True)
    names = "\n".join(sorted(files.stdout.split("\n")[1:])).strip() + "\n"
    data = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names.encode(),
                          capture_output=True, check=True).stdout
    with open(out_path, "wb") as fh:
        fh.write(gzip.compress(data, compresslevel=1) if compress else data)


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/lab/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /tmp
modfail=0
for m in {modules}; do insmod /lab/modules/$m || {{ echo "lab: FAIL insmod $m"; modfail=$((modfail + 1)); }}; done
echo "lab: L1 up after $(cut -d' ' -f1 /proc/uptime) s"
cd /lab
sh /lab/scenario.sh
rc=$?
echo "lab: scenario exited with $rc"
# A module that did not load fails the run even where the scenario got by without it.
[ "$modfail" -gt 0 ] && [ "$rc" -eq 0 ] && {{ echo "lab: FAIL $modfail module(s) did not load"; rc=1; }}
[ "$rc" -gt 127 ] && rc=127
/bin/outb {port} "$rc"
echo "lab: isa-debug-exit did not stop QEMU" ; poweroff -f
"""

LIB = r"""# Helpers for lab scenarios (sourced: . /lab/lib.sh).
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, prints PASS/FAIL, counts failures.
  desc=$1; shift
  if "$@"; then echo "lab: PASS $desc"; else echo "lab: FAIL $desc"; LAB_FAILURES=$((LAB_FAILURES + 1)); fi
}
expect_rc() {  # expect_rc WANT DESCRIPTION COMMAND...: COMMAND exits with WANT. Its output is
  # shown (first lines) and kept in /tmp/ctl.out for further checks.
  want=$1 desc=$2; shift 2
  "$@" >/tmp/ctl.out 2>&1
  got=$?
  sed 's/^/  output| /' /tmp/ctl.out | head -n 3
  check "$desc (exit $got, want $want)" test "$got" -eq "$want"
}
edu_to_vfio() {  # Binds every edu to vfio-pci; sets edu (sysfs dir), bdf and group for the first
  # one and waits for its group's device node (binding through new_id is asynchronous).
  edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||')
  bdf=$(basename "$edu")
  echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
  group=$(basename "$(readlink "$edu/iommu_group")")
  for i in $(seq 1 50); do [ -c "/dev/vfio/$group" ] && break; usleep 100000; done
}
wait_log() {  # wait_log FILE PATTERN SECONDS: true once FILE has a line matching PATTERN.
  for i in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" && return 0; usleep 100000; done
  return 1
}
uptime_cs() { sed 's/^\([0-9]*\)\.\([0-9]*\) .*/\1\2/' /proc/uptime; }  # Centiseconds since boot.
warm_l1_ram() {  # warm_l1_ram MIB: L0 (TCG) backs L1's RAM lazily, so a first touch of an L1
  # page costs a page fault in L0 that real hardware does not have (about 3 ms per MiB, 4x a touch
  # of warm memory), falling on whoever touches it first. Benchmarks touch L1's free memory once.
  t0=$(uptime_cs)
  dd if=/dev/zero of=/dev/null bs=${1}M count=1 2>/dev/null
  echo "lab: L1 RAM warmed ($1 MiB touched once) in $(( ($(uptime_cs) - t0) * 10 )) ms"
}
# Benchmarks that take turns between VMs booted at once (one guest per VMM, each reading jobs
# from its console):
vm_start() {  # vm_start VM COMMAND...: runs COMMAND in the background (for at most 3000 s), its
  # console input a FIFO /tmp/in.VM (held open by a sleep, so that each command's writer closing it
  # is no end of input), its output /tmp/VM.log, its pid in /tmp/VM.pid.
  vm=$1; shift
  mkfifo /tmp/in.$vm
  timeout 3000 "$@" </tmp/in.$vm >/tmp/$vm.log 2>&1 &
  echo $! > /tmp/$vm.pid
  sleep 100000 >/tmp/in.$vm &
}
vm_await() {  # vm_await VM PATTERN SECONDS: until the guest's console shows PATTERN; false after,
  # or as soon as the VMM has exited.
  local tries=0
  while ! grep -q "$2" /tmp/$1.log 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -gt $(($3 * 5)) ] && return 1
    [ -e /proc/$(cat /tmp/$1.pid 2>/dev/null || echo none) ] || return 1
    usleep 200000
  done
}
vm_threadcpu() {  # vm_threadcpu VM: "TID COMM TICKS" for each of the VMM's threads (user + system
  # time, 1/100 s). QEMU names its vCPU threads "CPU N/KVM" (debug-threads=on), vmm "vcpuN".
  for t in /proc/$(cat /tmp/$1.pid)/task/*; do
    echo "${t##*/} $(tr ' ' '_' < $t/comm) $(sed 's/.*) //' $t/stat | awk '{ print $12 + $13 }')"
  done
}
vm_cpu_split() {  # vm_cpu_split BEFORE AFTER: "OWN VCPU", the ticks the VMM's own threads and its
  # vCPU threads took between two vm_threadcpu snapshots.
  awk 'NR == FNR { b[$1] = $3; next }
    { d = $3 - b[$1]; if ($2 ~ /^vcpu|^CPU_/) c += d; else o += d }
    END { print o + 0, c + 0 }' "$1" "$2"
}
# KVM's own counters for a VMM's VM (debugfs sums its vCPUs), to see where the time goes: exits,
# of them MMIO and HLT, wake-ups from HLT, interrupts injected, instructions emulated.
KVM_STATS="exits mmio_exits halt_exits halt_wakeup irq_injections insn_emulation"
vm_kvmstats() {  # vm_kvmstats VM: the counters, in KVM_STATS's order.
  [ -d /sys/kernel/debug/kvm ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
  d=$(ls -d /sys/kernel/debug/kvm/$(cat /tmp/$1.pid)-* 2>/dev/null | head -n 1)
  for f in $KVM_STATS; do cat $d/$f 2>/dev/null || echo 0; done | tr '\n' ' '
}
vm_take_turns() {  # vm_take_turns DONE SECONDS RECORD: ROUNDS rounds of every job in JOBS, each
  # run in every VM of VMS in turn (the order rotating every round) while the others idle: the
  # guest reads "job NAME SEQ" from its console and answers "DONE SEQ" (within SECONDS). Then
  # RECORD ROUND VM JOB "OWN VCPU" (vm_cpu_split's ticks for the job) is called, and KVM's counters
  # before and after go to /tmp/kvmstats ("VM JOB BEFORE... AFTER...").
  local order=$VMS n=0 round j vm tag before
  for round in $(seq 1 $ROUNDS); do
    for j in $JOBS; do
      for vm in $order; do
        n=$((n + 1)) tag=$(printf %04d $n)
        vm_threadcpu $vm > /tmp/cpu.before
        before=$(vm_kvmstats $vm)
        echo "job $j $tag" > /tmp/in.$vm
        if vm_await $vm "$1 $tag" $2; then
          echo "$vm $j $before $(vm_kvmstats $vm)" >> /tmp/kvmstats
          vm_threadcpu $vm > /tmp/cpu.after
          $3 $round $vm $j "$(vm_cpu_split /tmp/cpu.before /tmp/cpu.after)"
        else
          check "$vm: $j round $round finished" false
          tail -n 20 /tmp/$vm.log
        fi
      done
    done
    order="$(echo $order | cut -d' ' -f2-) $(echo $order | cut -d' ' -f1)"  # Rotate.
  done
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
LAB_FAILURES=0
finish() { echo "lab: $LAB_FAILURES failure(s)"; [ "$LAB_FAILURES" -eq 0 ]; }
"""


def make_root(root, outb, extra_dirs=()):
    """The skeleton both L1's and L2's initramfs start from: mount points, busybox and outb."""
    for d in ["bin", "sbin", "proc", "sys", "dev", "tmp", *extra_dirs]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin/busybox"))
    shutil.copy2(outb, os.path.join(root, "bin/outb"))


def build_initramfs(args, kdir, work):
    root = os.path.join(work, "root")
    make_root(root, args.outb, ["lab/bin", "lab/modules"])
    mods = []
    for group in args.modules.split(",") if args.modules else []:
        if group not in MODULES:
            fail(f"unknown module group {group!r} (known: {', '.join(MODULES)})")
        for rel in MODULES[group]:
            src = os.path.join(kdir, "modules", "kernel", rel)
            if not os.path.isfile(src):
                fail(f"module {rel} missing from {kdir}")
            name = os.path.basename(rel)
            if name in mods:
                continue
            shutil.copy2(src, os.path.join(root, "lab/modules", name))
            mods.append(name)
    with open(os.path.join(root, "init"), "w") as fh:
        fh.write(INIT.format(modules=" ".join(mods), port=DEBUG_EXIT_PORT))
    os.chmod(os.path.join(root, "init"), 0o755)
    with open(os.path.join(root, "lab/lib.sh"), "w") as fh:
        fh.write(LIB)
    shutil.copy2(args.scenario, os.path.join(root, "lab/scenario.sh"))
    shutil.copy2(os.path.join(kdir, "vmlinuz"), os.path.join(root, "lab/vmlinuz"))
    copied = set()
    for b in args.binary:
        copy_with_libs(b, root, "/lab/bin/" + os.path.basename(b), copied)
    for d in args.host_dir:
        target = os.path.join(root, d.lstrip("/"))
        shutil.copytree(d, target, symlinks=False, dirs_exist_ok=True)
    for spec in args.file:
        src, _, dest = spec.partition("=")
        if not dest:
            fail(f"--file wants SRC=DEST, got {spec!r}")
        target = os.path.join(root, dest.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    l2_extras = l2_extra_files(args, kdir, work)
    for spec in args.l2_initramfs:
        script, _, dest = spec.partition("=")
        write_l2_initramfs(script, os.path.join(root, dest.lstrip("/")), work, args.outb, l2_extras)
    out = os.path.join(work, "l1.cpio.gz")
    write_cpio(root, out, compress=True)
    return out


def build_kmod(source, kdir, work):
    """Builds an out-of-tree module (one .c file) against the lab kernel's Debian headers
    (linux-headers-<version>, which tools/setup installs)."""
    version = open(os.path.join(kdir, "READY")).read().strip().removeprefix("linux-image-")
    headers = f"/usr/src/linux-headers-{version}"
    if not os.path.isdir(headers):
        fail(f"{headers} missing: run tools/setup (it installs linux-headers-{version})")
    name = os.path.splitext(os.path.basename(source))[0]
    build = tempfile.mkdtemp(prefix="kmod", dir=work)
    shutil.copy2(source, os.path.join(build, name + ".c"))
    with open(os.path.join(build, "Makefile"), "w") as fh:
        fh.write(f"obj-m := {name}.o\n")
    proc = subprocess.run(["make", "-s", "-C", headers, f"M={build}", "modules"],
                          capture_output=True, text=True)
    ko = os.path.join(build, name + ".ko")
    if proc.returncode != 0 or not os.path.isfile(ko):
        fail(f"building {source} against {headers} failed:\n{proc.stdout}{proc.stderr}")
    return ko


def l2_extra_files(args, kdir, work):
    """(source, destination) pairs every L2 initramfs gets: files, kernel modules, built modules."""
    extras = []
    for spec in args.l2_file:
        src, _, dest = spec.partition("=")
        if not dest:
            fail(f"--l2-file wants SRC=DEST, got {spec!r}")
        extras.append((src, dest))
    rels = []
    for name in args.l2_module:
        rels += MODULES.get(name, [name])  # A group, or one module's path.
    for rel in rels:
        src = os.path.join(kdir, "modules", "kernel", rel)
        if not os.path.isfile(src):
            fail(f"module {rel} missing from {kdir}")
        extras.append((src, "/modules/" + os.path.basename(rel)))
    for source in args.l2_kmod:
        ko = build_kmod(source, kdir, work)
        extras.append((ko, "/modules/" + os.path.basename(ko)))
    return extras


def write_l2_initramfs(init_script, dest, work, outb, extras=()):
    """A minimal initramfs for an L2 Linux guest: static busybox, outb, `init_script` as /init,
    and `extras` ((source, destination) pairs)."""
    root = tempfile.mkdtemp(prefix="l2root", dir=work)
    make_root(root, outb)
    copied = set()
    for src, rel in extras:
        if not src.endswith(".ko") and os.access(src, os.X_OK):
            copy_with_libs(src, root, rel, copied)  # A program: its shared libraries too.
            continue
        target = os.path.join(root, rel.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    shutil.copy2(init_script, os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    write_cpio(root, dest, compress=False)


def run_interactive(cmd):
    """QEMU on this terminal: the L1 console is the user's (Ctrl-A X quits QEMU)."""
    proc = subprocess.run(cmd)
    status = proc.returncode
    return status >> 1 if status % 2 == 1 else 125


# Every scenario step is bounded inside L1 (at most 300 s) and prints when it ends, so a console
# that stays silent longer than this means L1 itself is frozen, not the software under test.
STALL_SECONDS = int(os.environ.get("VMMKIT_LAB_STALL_SECONDS", "360"))


def monitor_commands(monitor, commands):
    """Sends HMP `commands` to QEMU's monitor and prints what it answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(monitor)
            out = b""
            for command in commands:
                s.sendall(command + b"\n")
                time.sleep(1)
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        out += chunk
                        if len(chunk) < 65536:
                            break
                except socket.timeout:
                    pass
        for line in out.decode(errors="replace").splitlines():
            line = line.rstrip("\r")
            if line.strip():
                print(f"L0 monitor| {line}", flush=True)
    except OSError as e:
        print(f"lab: no monitor: {e}", flush=True)


def boot_once(cmd, timeout, monitor=None):
    """Runs QEMU once. Returns (rc, verdict, console tail, stalled)."""
    start = time.monotonic()
    last_output = [start]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    tail = collections.deque(maxlen=TAIL_LINES)

    def pump():
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            last_output[0] = time.monotonic()
            print(f"L1| {line}", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    status, stalled, timed_out = None, False, False
    while status is None:
        try:
            status = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            stalled = now - last_output[0] > STALL_SECONDS
            timed_out = now - start > timeout
            if stalled and monitor:
                # Where L1's vCPU is: in every freeze so far, halted with interrupts enabled and
                # its local APIC timer's vector pending in IRR, undelivered (an NMI from the
                # monitor is not delivered either).
                monitor_commands(monitor, [b"info registers", b"info lapic"])
            if stalled or timed_out:
                proc.kill()
                status = proc.wait()
    reader.join(timeout=5)
    elapsed = time.monotonic() - start
    if stalled:
        verdict, rc = f"L1 printed nothing for {STALL_SECONDS} s: the nested machine froze", 124
    elif timed_out:
        verdict, rc = f"timed out after {timeout} s", 124
    elif status % 2 == 1:
        rc = status >> 1
        verdict = f"scenario exited with {rc}"
    else:
        verdict, rc = f"QEMU exited with {status} without a verdict", 125
    print(f"lab: {verdict} ({elapsed:.1f} s in QEMU)", flush=True)
    return rc, verdict, tail, stalled


def run_qemu(args, kdir, initramfs):
    # A short path: a Unix socket's is limited to 107 bytes, and test temp dirs are long.
    monitor = os.path.join(tempfile.mkdtemp(prefix="lab-", dir="/tmp"), "monitor")
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-cpu", "EPYC,+svm",
           "-smp", "1", "-m", str(args.memory), "-nographic", "-no-reboot",
           # No network: nothing in the lab needs a way out of QEMU (and no iPXE ROM runs).
           "-nic", "none",
           "-device", "intel-iommu,intremap=on",
           "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04",
           "-kernel", os.path.join(kdir, "vmlinuz"), "-initrd", initramfs,
           "-append", " ".join(["console=ttyS0 panic=-1 quiet intel_iommu=on"] + args.append)
           ] + args.qemu_arg
    if not args.interactive:
        cmd += ["-monitor", f"unix:{monitor},server=on,wait=off"]
        # All of QEMU on one host CPU. QEMU 7.2's nested SVM sets the virtual-interrupt request
        # in VMRUN without the lock or an atomic operation, racing with the main loop's local
        # APIC timer, whose wakeup it can then lose: L1 halts for good with the timer vector
        # pending (fixed upstream by making interrupt_request updates atomic, QEMU 10.2). With
        # the vCPU thread and the main loop on one CPU they cannot be in that window at once.
        cpus = sorted(os.sched_getaffinity(0))
        cmd = ["taskset", "-c", str(cpus[-1])] + cmd
    print("lab: " + " ".join(cmd), flush=True)
    if args.interactive:
        return run_interactive(cmd)
    rc, _, tail, stalled = boot_once(cmd, args.timeout, monitor)
    if stalled:
        # A frozen L1 (the wakeup race above, should the pinning not prevent it; or anything
        # else that stops L0's TCG) is not a result of the scenario: boot L1 once more.
        print("lab: retrying once in a fresh L1 (a frozen nested machine is not a test result)",
              flush=True)
        rc, _, tail, stalled = boot_once(cmd, args.timeout, monitor)
    if rc != 0:
        print(f"lab: --- last {len(tail)} lines of the L1 console ---")
        for line in tail:
            print(f"L1| {line}")
    return rc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", help="shell script run as /lab/scenario.sh in L1")
    p.add_argument("--interactive", action="store_true",
                   help="give QEMU this terminal (no timeout, no console capture): tools/demo")
    p.add_argument("--build-l2-initramfs", nargs=2, metavar=("INIT", "OUT"),
                   help="only write an L2 guest initramfs with INIT as /init to OUT, and exit")
    p.add_argument("--binary", action="append", default=[], help="executable for /lab/bin")
    p.add_argument("--outb", required=True, help="the static outb helper (//tests/lab:outb)")
    p.add_argument("--file", action="append", default=[], help="SRC=DEST extra file")
    p.add_argument("--host-dir", action="append", default=[],
                   help="a directory of this machine copied to the same path in L1 (e.g. firmware)")
    p.add_argument("--l2-initramfs", action="append", default=[],
                   help="INIT=DEST: build an L2 initramfs with INIT as /init at DEST")
    p.add_argument("--modules", default="kvm,vfio", help="module groups to load: kvm,vfio,uio")
    p.add_argument("--timeout", type=int, default=300, help="seconds before QEMU is killed")
    p.add_argument("--memory", type=int, default=2048, help="L1 memory in MiB")
    p.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument")
    p.add_argument("--append", action="append", default=[], help="extra L1 kernel argument")
    p.add_argument("--l2-file", action="append", default=[],
                   help="SRC=DEST: a file for every L2 initramfs")
    p.add_argument("--l2-module", action="append", default=[],
                   help="a lab kernel module (path under kernel/) or a group of --modules' "
                        "(e.g. virtio-blk) for L2, in /modules")
    p.add_argument("--l2-kmod", action="append", default=[],
                   help="an out-of-tree module source (.c) built for L2, in /modules")
    args = p.parse_args()
    if args.build_l2_initramfs:
        init, out = args.build_l2_initramfs
        work = tempfile.mkdtemp(prefix="l2")
        try:
            extras = l2_extra_files(args, kernel_dir(), work) if args.l2_module else []
            write_l2_initramfs(init, os.path.abspath(out), work, args.outb, extras)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if not args.scenario:
        fail("--scenario is required")
    if shutil.which("qemu-system-x86_64") is None:
        fail("qemu-system-x86_64 not found: run tools/setup")
    kdir = kernel_dir()
    work = tempfile.mkdtemp(prefix="lab", dir=os.environ.get("TEST_TMPDIR"))
    try:
        initramfs = build_initramfs(args, kdir, work)
        print(f"lab: L1 initramfs {os.path.getsize(initramfs) // 1024} KiB", flush=True)
        sys.exit(run_qemu(args, kdir, initramfs))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
