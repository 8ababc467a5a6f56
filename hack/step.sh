#!/usr/bin/env bash
# Runs one long, quiet step of make with a line when it starts and one when
# it ends; the command's own output (go's download and build noise) goes to a
# log file, whose tail is printed if the step fails.
#
#   hack/step.sh NAME LOG COMMAND...
set -uo pipefail
name=$1 log=$2
shift 2
mkdir -p "$(dirname "$log")"
echo "make: $name (output: $log)" >&2
start=$SECONDS
if "$@" >"$log" 2>&1; then
  echo "make: $name: done in $((SECONDS - start))s" >&2
else
  rc=$?
  echo "make: $name: FAILED after $((SECONDS - start))s; last 40 lines of $log:" >&2
  tail -n 40 "$log" | sed 's/^/    /' >&2
  exit "$rc"
fi
