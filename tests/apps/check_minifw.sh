#!/bin/sh
# check_minifw.sh: checks on minifw runs, for meson tests.
#   check_minifw.sh same-digest EXE -- ARGS1... -- ARGS2...
#       runs EXE twice (ARGS1, then ARGS2); both must succeed and end with
#       the same "digest:" line.
#   check_minifw.sh exit-code CODE VAR=VALUE EXE ARGS...
#       runs EXE with VAR=VALUE in the environment; it must exit with CODE.
set -u
mode=$1; shift
case "$mode" in
same-digest)
  exe=$1; shift
  [ "$1" = "--" ] || { echo "usage: same-digest EXE -- ARGS1 -- ARGS2" >&2; exit 99; }
  shift
  first=""
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do first="$first $1"; shift; done
  [ $# -gt 0 ] && shift
  second="$*"
  out1=$("$exe" $first) || { echo "first run failed: $exe$first" >&2; exit 1; }
  out2=$("$exe" $second) || { echo "second run failed: $exe $second" >&2; exit 1; }
  d1=$(printf '%s\n' "$out1" | tail -n 1)
  d2=$(printf '%s\n' "$out2" | tail -n 1)
  printf 'run 1:%s\n%s\nrun 2: %s\n%s\n' "$first" "$out1" "$second" "$out2"
  case "$d1" in digest:*) ;; *) echo "run 1 does not end with a digest line" >&2; exit 1 ;; esac
  if [ "$d1" != "$d2" ]; then
    echo "digests differ: '$d1' vs '$d2'" >&2
    exit 1
  fi
  l1=$(printf '%s\n' "$out1" | grep '^step ')
  l2=$(printf '%s\n' "$out2" | grep '^step ')
  if [ "$l1" != "$l2" ]; then
    echo "losses differ" >&2
    exit 1
  fi
  ;;
exit-code)
  want=$1; assignment=$2; exe=$3; shift 3
  env "$assignment" "$exe" "$@"
  got=$?
  if [ "$got" != "$want" ]; then
    echo "expected exit code $want, got $got" >&2
    exit 1
  fi
  echo "exit code $got as expected"
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 99
  ;;
esac
