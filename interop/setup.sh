#!/usr/bin/env bash
# Creates .venv-interop with the pinned aioquic the interop specs drive.
# Idempotent: does nothing when the venv already has that version.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-interop
want=$(sed -n 's/^aioquic==//p' interop/requirements.txt)
if [[ -x $venv/bin/python ]] && [[ $($venv/bin/python -c 'import aioquic; print(aioquic.__version__)' 2>/dev/null) == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r interop/requirements.txt
