#!/usr/bin/env bash
# The package as a user installs it: build a wheel, install it into a fresh venv (the CPU torch wheel
# first, so pip never pulls a CUDA build) and run the commands from a directory outside the checkout.
#   make wheel-check                  (or TORCH=torch==X PYTHON=python3 .ci/wheel_check.sh [WORK_DIR];
#                                      WORK_DIR: default a new temporary directory, removed afterwards)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:?the torch pin, as the Makefile gives it: run make wheel-check}"
if [ $# -gt 0 ]; then work="$1"; mkdir -p "$work"; else work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi
work="$(cd "$work" && pwd)"
export RAY_USAGE_STATS_ENABLED=0 PIP_DISABLE_PIP_VERSION_CHECK=1
export NAS_CACHE_DIR="$work/cache"  # never the real user cache
unset PYTHONPATH
step() { echo "wheel check [${SECONDS}s]: $*"; }

# Build from a copy of the files git knows about: a stale build/ in the checkout cannot leak in.
step "building the wheel"
mkdir -p "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$repo/$f" ] || [ -L "$repo/$f" ] && printf '%s\0' "$f"; done |
  tar -C "$repo" --null -T - -cf - | tar -C "$work/src" -xf -
"$PYTHON" -m pip wheel -qq --no-deps -w "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/nas_mobilenetv3-*.whl)"

step "installing $(basename "$wheel") into a fresh venv"
"$PYTHON" -m venv "$work/venv"
bin="$work/venv/bin"
"$bin/python" -m pip install -qq "$TORCH"  # the CPU wheel (find-links); the range below then keeps it
"$bin/python" -m pip install -qq "$wheel"
"$bin/python" -m pip check >/dev/null
if "$bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then echo "a CUDA package was installed" >&2; exit 1; fi

mkdir -p "$work/elsewhere"
cd "$work/elsewhere"
site="$("$bin/python" -c 'import nas, pathlib; print(pathlib.Path(nas.__file__).parent)')"
case "$site" in "$repo"*) echo "nas imported from the checkout ($site), not the wheel" >&2; exit 1;; esac
touch "$work/before"
json() { tail -n 1 "$1" | "$bin/python" -c "import json, sys; r = json.load(sys.stdin); $2"; }

step "nas-inspect mobilenetv3_small (built-in spec)"
"$bin/nas-inspect" mobilenetv3_small --json > inspect.out
json inspect.out 'assert r["name"] == "mobilenetv3_small" and r["params"] > 0, r'

step "a bad name is one line and exit status 2"
set +e; "$bin/nas-inspect" no_such_spec > /dev/null 2> bad.err; rc=$?; set -e
[ "$rc" = 2 ] && [ "$(grep -c . bad.err)" = 1 ] && grep -q "mobilenetv3_small" bad.err || {
  echo "expected one error line and exit 2, got $rc:" >&2; cat bad.err >&2; exit 1; }

step "nas-search --budget smoke"
"$bin/nas-search" --target-ms 15 --space mobilenetv3_small --budget smoke --out "$work/run" --json -q > search.out
json search.out 'import os; assert all(os.path.exists(r[k]) for k in ("final_spec", "onnx", "report")), r'

step "--device host on a small calibrated table in \$NAS_CACHE_DIR"
cat > tiny_space.yaml <<'EOF'
name: tiny
resolution: 32
num_classes: 10
stem: {out: 8, k: 3, s: 2, act: hswish}
choices: {layers: [0], k: [3], exp: [3], se: [false], act: [relu], width: [1.0]}
stages:
  - {out: 8, layers: 1, s: 1, k: 3, exp: 1, se: false, act: relu, fixed: true}
  - {out: 16, layers: 1, s: 2, k: 3, exp: 3, se: false, act: relu}
head: {conv: 64, act: hswish, fc: 128, dropout: 0.2}
EOF
"$bin/python" -c "
from nas.core.space import load_space
from nas.core.spec import save_spec
save_spec(load_space('tiny_space.yaml').seed_spec(), 'tiny.yaml')"
"$bin/nas-latency" build --space tiny_space.yaml --calibration-samples 2 --json -q > build.out
"$bin/nas-inspect" tiny.yaml --device host --json > host.out
json host.out 'assert r["device"] == "host" and r["latency_ms"] > 0, r'
ls "$NAS_CACHE_DIR"/host-t1-*.yaml > /dev/null

step "nothing was written into the installed package"
written="$(find "$site" -newer "$work/before" -type f ! -name '*.pyc' | head -5)"
[ -z "$written" ] || { echo "written into site-packages: $written" >&2; exit 1; }
[ ! -e "$work/elsewhere/runs" ] || { echo "a run went to ./runs despite --out" >&2; exit 1; }
step "ok"
