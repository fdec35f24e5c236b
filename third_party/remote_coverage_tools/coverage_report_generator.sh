#!/bin/sh
echo "coverage_report_generator: not available offline" >&2
exit 0
