#!/usr/bin/env bash
# End-to-end CLI time of compress and decompress of a small file, alternating this checkout and another one.
#   bash results/codec/startup_0.7.4/cli_ab.sh OTHER_CHECKOUT [SCENE.tif] [RUNS]
# Runs `python -m sarcodec compress/decompress` in fresh processes (PYTHONPATH picks the checkout), RUNS times each
# in the order other, this; prints wall seconds per run and whether the two checkouts' files are byte-identical.
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
other=$(cd "$1" && pwd)
scene=${2:-$here/samples/opera/OPERA_L2_RTC-S1_T137-292319-IW1_20211125T015815Z_20250830T093052Z_S1B_30_v1.0_VV.tif}
runs=${3:-3}
py=$(command -v "${PYTHON:-python}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"  # `python -m` puts the working directory first on sys.path: not a checkout
secs() { local tree=$1 t0 t1; shift; t0=$(date +%s.%N); PYTHONPATH=$tree "$@" > /dev/null; t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.2f}')"; }
for tree in "$other" "$here"; do  # byte-compile both first, as an installed package is
  PYTHONPATH=$tree $py -m compileall -q "$tree/sarcodec" > /dev/null
done
for i in $(seq "$runs"); do
  for tree in "$other" "$here"; do
    tag=$(basename "$tree")
    c=$(secs "$tree" $py -m sarcodec compress "$scene" -o "$tmp/$tag.sarc" --overwrite)
    d=$(secs "$tree" $py -m sarcodec decompress "$tmp/$tag.sarc" -o "$tmp/$tag.tif" --overwrite)
    echo "run $i  $tag  compress ${c} s  decompress ${d} s"
  done
done
# the .sarc headers name the version that wrote them; compare the rest: the header's other fields and every record
$py - "$here/scripts" "$tmp/$(basename "$other").sarc" "$tmp/$(basename "$here").sarc" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from same_files import records
print(".sarc headers (but the writer's version) and tile records", "equal" if records(sys.argv[2]) == records(sys.argv[3]) else "DIFFERENT")
PY
cmp -s "$tmp/$(basename "$other").tif" "$tmp/$(basename "$here").tif" && echo ".tif byte-identical" || echo ".tif DIFFERENT"
