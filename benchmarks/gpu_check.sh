#!/usr/bin/env bash
# The GPU check in one command (see benchmarks/gpu_check.py): on a machine with one NVIDIA GPU,
#   benchmarks/gpu_check.sh --out gpu-check
# and its dry run on the CPU:
#   benchmarks/gpu_check.sh --device cpu --tiny --out dry-run
exec python3 "$(dirname "$0")/gpu_check.py" "$@"
