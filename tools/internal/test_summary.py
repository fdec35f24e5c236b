#!/usr/bin/env python3
"""Counts test cases for tools/test.

--pass NAME LOG TESTLOGS: reads the `bazel test` summary lines in LOG (one per target, with
PASSED / FAILED / ...), then each target's test.xml under TESTLOGS, and prints one line per target
and a machine-readable "COUNT name passed failed skipped" line.
--total SUMMARY: adds up the COUNT lines, prints the per-target lines and a closing
"tests: N passed, N failed, N skipped" line.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

LINE = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD|INCOMPLETE|SKIPPED)\b")


def cases(xml_path):
    """(passed, failed, skipped) test cases in one target's test.xml."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return None
    p = f = s = 0
    testcases = list(root.iter("testcase"))
    for tc in testcases:
        if tc.find("failure") is not None or tc.find("error") is not None:
            f += 1
        elif tc.find("skipped") is not None or tc.get("result") == "skipped" or tc.get("status") == "notrun":
            s += 1
        else:
            p += 1
    return p, f, s


def do_pass(name, log, testlogs):
    passed = failed = skipped = 0
    with open(log, errors="replace") as fh:
        for line in fh:
            m = LINE.match(line)
            if not m:
                continue
            target, state = m.group(1), m.group(2)
            counted = None
            if state in ("PASSED", "FAILED", "FLAKY") and testlogs:
                rel = target[2:].replace(":", "/")
                counted = cases(os.path.join(testlogs, rel, "test.xml"))
            if counted is None or sum(counted) == 0:
                counted = (1, 0, 0) if state == "PASSED" else (0, 1, 0)
            if state != "PASSED" and counted[1] == 0:
                counted = (counted[0], 1, counted[2])
            passed += counted[0]
            failed += counted[1]
            skipped += counted[2]
            print(f"TARGET {name} {target} {state} cases={counted[0]}/{sum(counted)}")
    print(f"COUNT {name} {passed} {failed} {skipped}")


def do_total(summary):
    totals = [0, 0, 0]
    with open(summary) as fh:
        lines = fh.read().splitlines()
    print("=== tools/test: executed test targets (pass, target, state, cases passed/run)")
    for line in lines:
        if line.startswith("TARGET "):
            print("  " + line[len("TARGET "):])
    for line in lines:
        if line.startswith("COUNT "):
            _, name, p, f, s = line.split()
            print(f"=== tools/test: {name}: {p} passed, {f} failed, {s} skipped")
            totals = [totals[0] + int(p), totals[1] + int(f), totals[2] + int(s)]
    print(f"tests: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")


if __name__ == "__main__":
    if sys.argv[1] == "--pass":
        do_pass(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "")
    else:
        do_total(sys.argv[2])
