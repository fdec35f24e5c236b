#!/usr/bin/env bash
# Bazel entry point for lab tests: lab.py is data; its path is the first argument.
set -euo pipefail
exec python3 "$@"
