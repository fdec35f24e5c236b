#!/usr/bin/env bash
# Runs examples/hello_guest against the real /dev/kvm and checks what the guest printed.
set -euo pipefail
. "$2"
[ -w /dev/kvm ] || skip_test "/dev/kvm is not usable here"
out=$("$1")
echo "guest printed: $out"
[ "$out" = "Hello from a vmmkit guest!" ] || { echo "unexpected output" >&2; exit 1; }
