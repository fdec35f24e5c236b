#!/usr/bin/env bash
# Runs a Python script with the system's python3 (Debian's; Bazel 4.2.3 has no hermetic Python).
exec python3 "$@"
