#!/bin/bash
# Runs on the GPU machine, from the folder the payload was copied to (docs/gpu.md says what travels):
#   tools/gpu_run.sh probe          versions, the GPU, the Vulkan device ncnn sees
#   tools/gpu_run.sh bench EXPDIR M1 [M2...]   ncnn + ncnn-vulkan at 512, fp32 + fp16, on EXPDIR/export
#   tools/gpu_run.sh table2 [ARGS]  python -m mobileseg.perf.table2 ARGS (the committed runs: --autograd; --cuda-graph)
# Results go to $OUT (default ./gpu-out). Needs: python3 with torch (CUDA), numpy and timm; the ncnn wheel in
# .whl/; the Vulkan loader (.gl/*.deb, unpacked into / when libvulkan is missing) and the NVIDIA driver's ICD.
set -o pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/ncnn ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $ICD ] && export VK_DRIVER_FILES=$ICD
export PYTHONUNBUFFERED=1 PYTHONPATH=$HERE:/tmp/site
what=$1; shift
case $what in
probe)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys,torch,numpy;print(sys.version.split()[0],'torch',torch.__version__,'cuda',torch.version.cuda,torch.cuda.get_device_name(0),'numpy',numpy.__version__)"
  python3 -c "import timm;print('timm',timm.__version__)"
  python3 -c "import ncnn;print('ncnn',ncnn.__version__,'vulkan gpus',ncnn.get_gpu_count())"
  python3 -m mobileseg info 2>&1 | tail -25 ;;
bench)
  exp=$1; shift
  # the references travel once (fp16 folders share the fp32 folder's, every model the same input): put them back
  (cd "$exp/export" && I=$(ls */reference/input.npy | head -1) && for d in */; do d=${d%/}; mkdir -p $d/reference
     [ -f $d/reference/input.npy ] || cp "$I" $d/reference/
     [ -f $d/reference/output.npy ] || cp ${d%_fp16}/reference/output.npy $d/reference/; done
   sha256sum -c --quiet ../SHA256SUMS && echo "exports intact: $(ls | tr '\n' ' ')") || exit 1
  (cd "$exp" && python3 -m mobileseg bench --no-export --models "$@" --res 512 --runtimes ncnn ncnn-vulkan \
     --precisions fp32 fp16 --out "$OUT" --quiet) ;;
table2)
  (cd "$HERE" && python3 -m mobileseg.perf.table2 --out "$OUT" "$@") ;;
esac
