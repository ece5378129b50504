#!/usr/bin/env bash
# Poses and downsampled images for a folder of photos, with the interface of multinerf's script:
#   bash mipnerf360/scripts/local_colmap_and_resize.sh DATA_DIR [CAMERA_MODEL]
# DATA_DIR/images holds the photos; writes DATA_DIR/sparse/0 and DATA_DIR/images_{2,4,8}.
# pycolmap does the work (no colmap binary needed); see `python -m data_tools.colmap --help`.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 DATA_DIR [CAMERA_MODEL (default OPENCV)]" >&2
  exit 2
fi
DATA_DIR=$1
CAMERA=${2:-OPENCV}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" -m data_tools.colmap "$DATA_DIR" --camera_model "$CAMERA" "${@:3}"
