#!/bin/sh
# bench-loading.sh BUILD [COPIES] [PIECE]: a loader's many small host-to-device
# copies into one arena, on the simulated driver, without and with
# libneuzip.so, alternated 3 times in one run; prints each time and the ratio
# of the medians (issue: loading within 1.1x of the time without neuzip).
set -eu
build=${1:?usage: bench-loading.sh BUILD [COPIES] [PIECE]}
copies=${2:-8192}
piece=${3:-8192}
bench="$build/tests/frameworks/load_bench"
export LD_LIBRARY_PATH="$build/tests/sim"
export NEUZIP_SIM_MODULE="$build/kernels/sim/libnzsim_codec.so"
plain="" ; nz=""
for i in 1 2 3; do
  p=$("$bench" "$copies" "$piece" | sed 's/.*ms=//')
  n=$(LD_PRELOAD="$build/interpose/libneuzip.so" "$bench" "$copies" "$piece" | sed 's/.*ms=//')
  echo "run $i: plain $p ms, neuzip $n ms"
  plain="$plain $p"; nz="$nz $n"
done
median() { printf '%s\n' $1 | sort -g | sed -n 2p; }
mp=$(median "$plain"); mn=$(median "$nz")
echo "median: plain $mp ms, neuzip $mn ms, ratio $(echo "$mn $mp" | awk '{printf "%.3f", $1/$2}')"
