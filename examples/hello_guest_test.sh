#!/usr/bin/env bash
# Runs examples/hello_guest against the real /dev/kvm and checks what the guest printed.
set -euo pipefail
if [ ! -w /dev/kvm ]; then
  echo "SKIP: /dev/kvm is not usable here" >&2
  exit 0
fi
out=$("$1")
echo "guest printed: $out"
[ "$out" = "Hello from a vmmkit guest!" ] || { echo "unexpected output" >&2; exit 1; }
