#!/usr/bin/env bash
# Download CS231n's COCO captioning data (VGG-16 fc7 features, captions, vocabulary, image URLs; ~1 GB)
# into DIR (default: data/coco_captioning), then check that it loads. Needs a network; visgrad never runs
# this by itself. Afterwards: python train.py data=coco data.root=DIR
#
#   bash scripts/get_coco_captioning.sh [DIR]
#
# COCO_CAPTIONING_URL overrides the source (a mirror, or a file:// URL of a zip you already have).
set -euo pipefail

URL="${COCO_CAPTIONING_URL:-http://cs231n.stanford.edu/coco_captioning.zip}"
dest="${1:-data/coco_captioning}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python=python3

if [ -f "$dest/coco2014_captions.h5" ]; then
    echo "$dest already holds coco2014_captions.h5; nothing to download."
    exit 0
fi
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    echo "error: $dest exists and is not empty; choose another folder." >&2
    exit 1
fi

parent="$(dirname "$dest")"
mkdir -p "$parent"
tmp="$(mktemp -d "$parent/.coco_captioning.download.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "downloading $URL ..."
if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$tmp/coco_captioning.zip" "$URL"
else
    wget -O "$tmp/coco_captioning.zip" "$URL"
fi
"$python" -m zipfile -e "$tmp/coco_captioning.zip" "$tmp/unzipped"
if [ ! -f "$tmp/unzipped/coco_captioning/coco2014_captions.h5" ]; then
    echo "error: $URL does not hold coco_captioning/coco2014_captions.h5; nothing was installed." >&2
    exit 1
fi
rmdir "$dest" 2>/dev/null || true
mv "$tmp/unzipped/coco_captioning" "$dest"

"$python" - "$dest" <<'PY'
import sys

from visgrad.data.coco import load_coco_data

data = load_coco_data(sys.argv[1])
print(f"ok: {len(data['train_captions'])} train / {len(data['val_captions'])} val captions, "
      f"{data['train_features'].shape[1]}-d PCA features, {len(data['idx_to_word'])} words in {sys.argv[1]}")
PY
