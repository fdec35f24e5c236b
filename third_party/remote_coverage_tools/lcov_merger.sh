#!/bin/sh
echo "lcov_merger: not available offline" >&2
exit 0
