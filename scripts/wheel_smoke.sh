#!/usr/bin/env bash
# The wheel as a user installs it: build it, install it (not editable) with the `tf` extra
# into a clean virtual environment in a temporary folder, and from a folder outside the
# source tree run the napari manifest check, the reader, `xray-denoise info`, `denoise`
# with the shipped default model and `score` (BRISQUE) on a sample bag inside the
# installed package. Dependencies come from PyPI through pip's cache, so a second run
# downloads nothing.
#
#   bash scripts/wheel_smoke.sh            # PYTHON=python3.12 to pick the interpreter
#   KEEP=1 bash scripts/wheel_smoke.sh     # keep the temporary folder to look at
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/xray-wheel-smoke.XXXXXX")"
if [[ -z "${KEEP:-}" ]]; then
    trap 'rm -rf "$WORK"' EXIT
else
    echo "keeping $WORK"
fi
start=$SECONDS
step() { echo "--- [$((SECONDS - start)) s] $*"; }

step "build the wheel"
# the checkout's own venv has pip (and the hatchling build backend in pip's cache)
BUILDER="$PYTHON"
[[ -x "$ROOT/.venv/bin/python" ]] && BUILDER="$ROOT/.venv/bin/python"
"$BUILDER" -m pip wheel --no-deps -q -w "$WORK/dist" "$ROOT"
WHEEL="$(ls "$WORK"/dist/napari_xray_denoise-*.whl)"
echo "$(basename "$WHEEL"): $(du -k "$WHEEL" | cut -f1) KiB"

step "clean venv, install the wheel with the tf extra"
"$PYTHON" -m venv "$WORK/venv"
BIN="$WORK/venv/bin"
# PIP_* from the caller's environment apply (an index mirror, a cache dir)
"$BIN/python" -m pip install -q --disable-pip-version-check "${WHEEL}[tf]"

# outside the source tree, nothing of the checkout on the path
cd "$WORK"
unset PYTHONPATH
export KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2

step "the package and its data come from the installed wheel"
SAMPLE="$("$BIN/python" - "$WORK/venv" <<'EOF'
import sys
from importlib.resources import files
from pathlib import Path

import napari_xray_denoise
from napari_xray_denoise import samples, synth
from napari_xray_denoise.core.registry import default_model_path

venv = Path(sys.argv[1]).resolve()
pkg = Path(napari_xray_denoise.__file__).resolve().parent
assert venv in pkg.parents, f"imported from {pkg}, not from the clean venv"
model = default_model_path()
assert model.is_file() and venv in model.resolve().parents, model
photos = synth.training_photographs()  # PyWavelets' two and the shipped textures
assert len(photos) == 2 + len(synth.TEXTURE_FILES), len(photos)
noisy, clean = samples.sample_paths("low_dose")
assert noisy.is_file() and clean.is_file() and venv in noisy.resolve().parents, noisy
brisque = Path(str(files("napari_xray_denoise"))) / "data" / "brisque"
assert all((brisque / n).is_file() for n in ("allmodel", "allrange", "NOTICE-LIVE.txt"))
print(
    f"package {pkg}\nmodel {model.name} {model.stat().st_size / 1e6:.2f} MB, "
    f"{len(photos)} training images, sample {noisy.name}",
    file=sys.stderr,
)
print(noisy)
EOF
)"

step "npe2 validate"
"$BIN/npe2" validate napari-xray-denoise

step "the plugin's reader through npe2, on $(basename "$SAMPLE")"
"$BIN/python" - "$SAMPLE" <<'EOF'
import sys

import npe2

pm = npe2.PluginManager.instance()
pm.discover()
layers = npe2.read([sys.argv[1]], stack=False, plugin_name="napari-xray-denoise")
for data, meta, kind in layers:
    print(f"{kind} {meta['name']}: {data.shape} {data.dtype}")
assert [meta["name"].rsplit(" ", 1)[-1] for _, meta, _ in layers] == ["low", "high"], layers
assert all(str(data.dtype) == "uint16" for data, _, _ in layers)
EOF

step "xray-denoise info"
"$BIN/xray-denoise" info "$SAMPLE"

step "xray-denoise denoise (the shipped default model)"
"$BIN/xray-denoise" denoise "$SAMPLE" -o "$WORK/out" --quiet
OUT="$WORK/out/$(basename "${SAMPLE%.tif}")_denoised.tif"
"$BIN/python" - "$SAMPLE" "$OUT" <<'EOF'
import sys

from napari_xray_denoise import io, metrics

noisy, out = (io.read_scan(p).images() for p in sys.argv[1:])
clean = io.read_scan(sys.argv[1].replace(".tif", "_clean.tif")).images()
for c, name in enumerate(("low", "high")):
    before = metrics.psnr(noisy[c], clean[c], data_range=65535)
    after = metrics.psnr(out[c], clean[c], data_range=65535)
    print(f"{name}: PSNR {before:.2f} -> {after:.2f} dB against the clean reference")
    assert out.dtype == noisy.dtype and after > before + 5, (before, after)
EOF

step "xray-denoise score (BRISQUE with the shipped LIVE model), noisy and denoised"
"$BIN/xray-denoise" score "$SAMPLE" "$OUT"

step "passed in $((SECONDS - start)) s"
