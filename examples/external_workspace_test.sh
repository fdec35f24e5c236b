#!/usr/bin/env bash
# Builds and runs examples/external/main.cc from a separate Bazel workspace that depends on vmmkit
# exactly as the README's "Using one library from another Bazel workspace" says, with a Bazel
# server of its own, and checks the README's OUT_OF_RANGE line.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")  # The source tree, through the runfiles symlink.
vmmkit=$(dirname "$here")
[ -f "$vmmkit/WORKSPACE" ] || { echo "FAIL: no vmmkit checkout at $vmmkit"; exit 1; }
ws=$TEST_TMPDIR/ws
mkdir -p "$ws"
sed "s|@VMMKIT@|$vmmkit|" "$here/external/WORKSPACE.in" > "$ws/WORKSPACE"
cp "$here/external/BUILD.in" "$ws/BUILD"
cp "$here/external/bazelrc" "$ws/.bazelrc"
cp "$here/external/main.cc" "$ws/main.cc"
export HOME=$TEST_TMPDIR
nested=(bazel --output_user_root="$TEST_TMPDIR/root" --max_idle_secs=30)
trap 'cd "$ws" && "${nested[@]}" shutdown >/dev/null 2>&1' EXIT
cd "$ws" || exit 1
# Local strategy: the outer test already runs unsandboxed, and the nested actions need no more.
if ! "${nested[@]}" build --spawn_strategy=local //:main >"$TEST_TMPDIR/build.log" 2>&1; then
  tail -n 30 "$TEST_TMPDIR/build.log"
  echo "FAIL: the user's workspace does not build @vmmkit//memory:guest_memory"
  exit 1
fi
out=$(./bazel-bin/main)
echo "main printed: $out"
case "$out" in
  "OUT_OF_RANGE: guest memory read [0xffffe, +0x4): crosses the end of region"*) echo PASS ;;
  *) echo "FAIL: not the README's OUT_OF_RANGE line"; exit 1 ;;
esac
