#!/usr/bin/env bash
# Bootstrap uv and nox on a bare machine (only python3 needed), then run nox.
#   ./nox.sh                       lint + every package's tests + integration tests
#   ./nox.sh -s "tests(sphere-kmeans)"
#   ./nox.sh -s demo               the main job on its built-in default
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

boot="$here/.bootstrap"
if command -v uv >/dev/null 2>&1; then
  UV="$(command -v uv)"
else
  if [ ! -x "$boot/bin/uv" ]; then
    python3 -m venv "$boot"
    "$boot/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
  fi
  UV="$boot/bin/uv"
fi
export PATH="$(dirname "$UV"):$PATH"

# The workspace needs Python >= 3.12 (flax). Find one that runs: PATH, pyenv, uv-managed.
find_python() {
  local c
  for c in python3.12 python3.13; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys' >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for c in "$root"/versions/3.12*/bin/python3 "$root"/versions/3.13*/bin/python3; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  "$UV" python find '>=3.12' 2>/dev/null && return 0
  "$UV" python install 3.12 >&2 && "$UV" python find 3.12
}
PY="${NOX_PYTHON:-$(find_python)}"
export UV_PYTHON="$PY"
exec "$UV" tool run --quiet --python "$PY" --from "nox==2026.10.20" nox "$@"
