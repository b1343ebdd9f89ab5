# shellcheck shell=bash
# Shared set-up for scripts/demo and scripts/test (sourced, not run). Idempotent and fast when
# already set up: the heavy steps are skipped while a stamp (hash of pyproject.toml,
# js/package-lock.json and the interpreter) matches.
#
#   1. .venv with python3.11 (or python3 >= 3.10)
#   2. torch==2.13.0 FIRST (the CPU wheel; a bare `torch` would resolve to a CUDA build)
#   3. js/: `npm ci` when node_modules is missing or the lock file changed
#   4. pip install -e ".[test,bench,docs]"   (hatch-jupyter-builder runs the npm build of js/; bench:
#      umap-learn, openTSNE, jupyter-scatter, psutil, so the benchmarks' smoke tests run too; docs:
#      MkDocs Material + mkdocstrings + mkdocs-jupyter for scripts/docs and tests/test_docs.py)
#   5. npm run build every time (esbuild, < 1 s) so the bundle matches js/src
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH_PIN="torch==2.13.0"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\033[1m[patternviz]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[patternviz] error:\033[0m %s\n' "$*" >&2; exit 1; }

_pick_python() {
  local c
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  die "Python >= 3.10 not found (python3.11 preferred). Install it, e.g. 'apt-get install python3.11 python3.11-venv'."
}

_hash() { cat "$@" | sha256sum | cut -c1-16; }

setup_venv() {
  if [[ ! -x "$PY" ]]; then
    local base; base="$(_pick_python)"
    say "creating .venv with $base ($("$base" --version 2>&1))"
    "$base" -m venv "$VENV" || die "'$base -m venv' failed: install the venv module (e.g. 'apt-get install python3.11-venv')."
  fi
  command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20 (https://nodejs.org or 'apt-get install nodejs npm')."
  command -v npm >/dev/null 2>&1 || die "npm not found: install npm (comes with Node.js 20)."

  # js/ dependencies, exactly as locked.
  local lock_hash; lock_hash="$(_hash "$ROOT/js/package-lock.json")"
  if [[ ! -d "$ROOT/js/node_modules" || "$(cat "$ROOT/js/node_modules/.patternviz-lock" 2>/dev/null)" != "$lock_hash" ]]; then
    say "npm ci (js/)"
    (cd "$ROOT/js" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > "$ROOT/js/node_modules/.patternviz-lock"
  fi

  # Python packages: only when pyproject/lock/interpreter changed since the last good install.
  local stamp="$VENV/.patternviz-setup" want
  want="$(_hash "$ROOT/pyproject.toml" "$ROOT/js/package-lock.json" "$ROOT/scripts/_setup.sh")-$("$PY" -c 'import sys; print(sys.version.split()[0])')"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    say "pip install $TORCH_PIN (CPU wheel, first so no CUDA build is pulled)"
    "$PY" -m pip install -q "$TORCH_PIN"
    say "pip install -e \".[test,bench,docs]\" (builds the JS bundle via hatch-jupyter-builder)"
    "$PY" -m pip install -q -e "$ROOT[test,bench,docs]"
    echo "$want" > "$stamp"
  else
    say ".venv is up to date (stamp matches)"
  fi

  # Always refresh the bundle: cheap, and keeps it in step with js/src between installs.
  (cd "$ROOT/js" && npm run --silent build -- --quiet) || die "JS build failed: run 'npm --prefix js run build' to see why."
  [[ -f "$ROOT/patternviz_widget/static/widget.js" ]] || die "JS bundle missing after build (patternviz_widget/static/widget.js)."
}

ensure_chromium() {
  [[ -x /usr/bin/chromium ]] && return 0
  say "/usr/bin/chromium missing: installing Debian's chromium (browser tests need it)"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "/usr/bin/chromium is missing and this user cannot install it. Run as root: 'apt-get update && apt-get install -y chromium'."
    fi
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [[ -x /usr/bin/chromium ]] || die "apt-get installed chromium but /usr/bin/chromium is still missing."
}

check_cpu_torch() {
  # A CUDA build of torch means the pin was bypassed (~15 nvidia wheels, GBs). Fail in CI.
  local cuda; cuda="$("$PY" -c 'import torch; print(torch.version.cuda)')"
  if [[ "$cuda" != "None" ]]; then
    if [[ "${CI:-}" == "true" ]]; then
      die "torch.version.cuda is $cuda: a CUDA build was installed; expected the CPU wheel of $TORCH_PIN."
    fi
    say "note: torch is a CUDA build (torch.version.cuda=$cuda)"
  fi
}
