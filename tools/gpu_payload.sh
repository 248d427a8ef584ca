#!/bin/bash
# Builds what travels to a GPU machine (docs/gpu.md), from a checkout with the exports already made:
#   tools/gpu_payload.sh code DEST            mobileseg/, device_scripts/, bench/, tools/gpu_run.sh, results/published.csv
#   tools/gpu_payload.sh exports DEST M1 [M2...]  export/<M>_512x512 and _512x512_fp16 of each model into DEST/export,
#       each reference file once (fp16 folders share the fp32 folder's; every model the same input), with a
#       SHA256SUMS that tools/gpu_run.sh checks after putting the copies back
set -e
what=$1; dest=$2; shift 2
src=$(cd "$(dirname "$0")/.." && pwd)
case $what in
code)
  rm -rf "$dest"; mkdir -p "$dest/results" "$dest/tools"
  (cd "$src" && tar --exclude=__pycache__ -cf - mobileseg device_scripts bench pyproject.toml) | tar -xf - -C "$dest"
  cp "$src/results/published.csv" "$dest/results/"; cp "$src/tools/gpu_run.sh" "$dest/tools/" ;;
exports)
  rm -rf "$dest"; mkdir -p "$dest/export"
  for m in "$@"; do for f in ${m}_512x512 ${m}_512x512_fp16; do cp -a "$src/export/$f" "$dest/export/"; done; done
  (cd "$dest/export" && sha256sum */manifest.json */model.ncnn.* */reference/*.npy > ../SHA256SUMS)
  first=1
  for m in "$@"; do
    rm -rf "$dest/export/${m}_512x512_fp16/reference"
    if [ $first = 1 ]; then first=0; else rm "$dest/export/${m}_512x512/reference/input.npy"; fi
  done
  du -sb "$dest" ;;
*) echo "usage: $0 code DEST | exports DEST MODEL..." >&2; exit 2 ;;
esac
