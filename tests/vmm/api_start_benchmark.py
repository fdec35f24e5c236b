"""How fast vmm's API socket accepts: process start -> a successful connect(), in wall ms and in
the process's CPU ms up to that moment (the sum of /proc/PID/task/*/schedstat, in ns, which counts
dynamic loading and static initialisation too). The counters are read once the process is
stopped: a thread running on another CPU has its count brought up to date only when it stops
running. Its peer, taking turns with it run by run, is //vmm:grpc_floor: the same gRPC server
with nothing of vmm behind it, so the difference is vmm's. vmmkit's goal is 2 CPU ms
(Firecracker's specification: 8), measured natively with --config=release. Without a usable
/dev/kvm vmm cannot start and only the floor is measured (vmm's part says skipped).

usage: api_start_benchmark.py VMM MAKE_ELF GRPC_FLOOR [RUNS]
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_CPU_MS = 2.0


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # A thread that just exited.
    return total


def stopped(pid):
    """Whether every thread of pid is stopped (state T)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                    return False
        except (FileNotFoundError, ProcessLookupError):
            pass
    return True


def start_to_accept(argv, sock_path):
    """(wall ms, CPU ms) from launching argv until sock_path accepts, or None if it exited."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sock_path)
                wall = time.monotonic() - t0
                os.kill(p.pid, signal.SIGSTOP)
                while not stopped(p.pid):
                    time.sleep(0.0001)
                return wall * 1e3, cpu_ns(p.pid) / 1e6
            except (FileNotFoundError, ConnectionRefusedError):
                if p.poll() is not None:
                    return None
                if time.monotonic() - t0 > 10:
                    sys.exit(f"{argv[0]}: the API socket did not accept within 10 s")
            finally:
                s.close()
    finally:
        if p.poll() is None:
            p.terminate()
            os.kill(p.pid, signal.SIGCONT)
        p.wait()
        try:
            os.unlink(sock_path)  # Both remove their own on SIGTERM; this is for a crash.
        except FileNotFoundError:
            pass


def summary(name, samples):
    walls = [w for w, _ in samples]
    cpus = [c for _, c in samples]
    print(f"api-start: {name}: {len(samples)} runs: wall ms median {statistics.median(walls):.2f} "
          f"(min {min(walls):.2f}, max {max(walls):.2f}); CPU ms median "
          f"{statistics.median(cpus):.2f} (min {min(cpus):.2f}, max {max(cpus):.2f})")
    return statistics.median(cpus)


def main():
    vmm, make_elf, floor = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    tmp = tempfile.mkdtemp(dir="/tmp", prefix="vmmkit-bench-")
    kernel = os.path.join(tmp, "idle.elf")
    subprocess.run([sys.executable, make_elf, kernel, "f4ebfd"], check=True)
    sock_path = os.path.join(tmp, "api.sock")
    vmm_argv = [vmm, f"--kernel={kernel}", "--memory=64", "--serial=none",
                f"--api_socket={sock_path}"]
    floor_argv = [floor, sock_path]
    vmm_samples, floor_samples = [], []
    vmm_runs = os.access("/dev/kvm", os.R_OK | os.W_OK)
    for i in range(runs):
        # Taking turns, the floor first in odd runs.
        order = [("vmm", vmm_argv), ("floor", floor_argv)]
        if i % 2:
            order.reverse()
        for name, argv in order:
            if name == "vmm" and not vmm_runs:
                continue
            sample = start_to_accept(argv, sock_path)
            if sample is None:
                if name == "vmm":
                    print("api-start: vmm exited before accepting: no usable /dev/kvm?")
                    vmm_runs = False
                    continue
                sys.exit(f"{name} exited before accepting")
            (vmm_samples if name == "vmm" else floor_samples).append(sample)
    floor_cpu = summary("grpc_floor (gRPC alone)", floor_samples)
    print(f"api-start: the floor against the goal of {GOAL_CPU_MS:g} CPU ms: "
          f"{floor_cpu / GOAL_CPU_MS:.2f}x")
    if not vmm_samples:
        print("api-start: vmm: skipped (no usable /dev/kvm here)")
        return
    vmm_cpu = summary("vmm", vmm_samples)
    print(f"api-start: vmm / floor (CPU ms): {vmm_cpu / floor_cpu:.2f}; vmm's own "
          f"{vmm_cpu - floor_cpu:.2f} CPU ms; goal <= {GOAL_CPU_MS:g} CPU ms: "
          f"{'met' if vmm_cpu <= GOAL_CPU_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
