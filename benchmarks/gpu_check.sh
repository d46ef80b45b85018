#!/usr/bin/env bash
# The CUDA checks in one script, for a machine with an NVIDIA GPU and PyTorch installed.
# Usage: bash benchmarks/gpu_check.sh OUTPUT_DIR
# Runs: the per-layer timing check (benchmarks/gpu_latency.py), the two latency engines side by
# side with the profiler engine's goals (benchmarks/latency_engines.py: kernel times vs busy
# time within 2%, profiled wall vs an event-timed pass within 10%, at batch 1 and 32, fp32 and
# bf16, resnet50 and plain50) and a profiler trace, the memory columns with the measured CUDA
# peak, fp16 latency through the CLI,
# the memory guard (one model fits and is timed, one does not and is refused), a short
# degradation run on CUDA with its analyses of the trained nets, a compare report whose latency
# section is measured on the GPU, and, where torchvision and timm import, foreign models and
# their plain twins on CUDA.
set -u
out=${1:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
run() { echo; echo "\$ $*"; "$@"; echo "exit $?"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
run python3 benchmarks/gpu_latency.py --batch-sizes 1,32 --dtypes fp32,bf16
for batch in 1 32; do
    for dtype in fp32 bf16; do
        run python3 benchmarks/latency_engines.py --device cuda --batch-size "$batch" \
            --dtype "$dtype" --repeats 20
    done
done
run python3 -m resnet_probe latency resnet50 --device cuda --engine profiler --repeats 5 \
    --trace "$out/traces" --by layer --format csv
run python3 -m resnet_probe flops resnet50 plain50 --memory --format json
run python3 -m resnet_probe latency resnet50 --device cuda --dtype fp16 --batch-size 8 \
    --repeats 10 --format json
run python3 -m resnet_probe latency resnet8 resnet152 --device cuda --batch-size 6000 \
    --repeats 2 --warmup 1 --format json
run python3 -m resnet_probe degradation --device cuda --depths 20,56 --steps 300 \
    --out /tmp/gpu-degradation --format json
run python3 -m resnet_probe compare resnet50 plain50 --device cuda --train-steps 150 \
    --inline-plotly --out /tmp/gpu-compare
if python3 -c "import torchvision, timm" 2>/dev/null; then
    run python3 -m resnet_probe flops torchvision:resnext50_32x4d plain:torchvision:resnet50 \
        timm:resnet50d
    run python3 -m resnet_probe compare torchvision:resnet50 plain:torchvision:resnet50 \
        --device cuda --train-steps 100 --out /tmp/gpu-foreign
    cp /tmp/gpu-foreign/*-data/latency_models.csv "$out/foreign_latency_models.csv" 2>/dev/null
fi
cp /tmp/gpu-degradation/data/why_findings.csv "$out/gpu_why_findings.csv" 2>/dev/null
cp /tmp/gpu-compare/compare-resnet50-vs-plain50.html "$out/" 2>/dev/null
cp /tmp/gpu-compare/compare-resnet50-vs-plain50-data/latency_models.csv "$out/" 2>/dev/null
cp /tmp/gpu-degradation/data/train_final.csv "$out/gpu_degradation_final.csv" 2>/dev/null
