#!/usr/bin/env bash
# The GPU checks of issue 5, prepared to fit one call of the `device` tool (a lent H100/H200, 15 min of device
# time per session, 10 min per call, nothing to fetch there). Two halves:
#
#   bash benchmarks/device_kit.sh wheels   # here, once: the cp312 wheels the device image lacks, into .whl/
#   run(command="bash benchmarks/device_kit.sh run", carry=[".whl"], timeout_s=600)   # there
#
# The device image (/work/.library/device/KINDS.md) has Python 3.12 with jax 0.11.2 (CUDA 13), flax, optax,
# orbax, rich, matplotlib, scipy; it lacks MuJoCo, MJX, Playground, gymnasium and tyro, which travel as wheels
# (about 42 MB of the 64 MiB a call may carry). Left out: warp-lang (149 MB; `--impl jax` needs no warp) and
# dm_control (56 MB; only `dmc:` envs import it). simpo is not installed there (it pins Python 3.11): the repo
# root goes on PYTHONPATH. `run` writes under $OUT: nvidia-smi.txt, versions.txt, speed_gpu.md (speed.py),
# ondevice_gpu.md (ondevice.py per config), slices_gpu.md (slices.py) and log.txt; each step has its own time
# limit, so a slow step costs its own result only (the limits add up to 9 min, under the 10 of a call). Nothing here has run on a GPU
# yet (no device was lent to the sessions so far). Checked on the 2-core CPU instead, 2026-12-01: `run` in a venv
# holding only the image's packages (with cp311 wheels of the same pins) installed the wheels, speed.py ran to
# its report, and ondevice.py got through its imports and into compiling (then its CPU time limit).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(mujoco mujoco-mjx playground brax jaxopt ml_collections trimesh mediapy gymnasium Farama-Notifications
        tyro docstring_parser typeguard tensorboardX glfw dm-env)

case "${1:-}" in
wheels)
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  pins=()
  for name in "${WHEELS[@]}"; do
    pin=$(grep -i "^${name}==" constraints.txt | head -1)
    [ -n "$pin" ] || { echo "device_kit: no pin for $name in constraints.txt" >&2; exit 2; }
    pins+=("$pin")
  done
  platforms=()
  for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl "${pins[@]}" || exit 1
  du -sh .whl
  ;;
run)
  OUT=${OUT:-/tmp/device_out}
  mkdir -p "$OUT"
  exec > >(tee "$OUT/log.txt") 2>&1
  ls .whl/*.whl > /dev/null || { echo "device_kit: no .whl/ here; run 'wheels' first and carry .whl" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MUJOCO_GL=egl
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  python3 -c "import jax, mujoco, flax; print(jax.__version__, jax.devices(), mujoco.__version__, flax.__version__)" \
    | tee "$OUT/versions.txt"
  failed=0
  step() {
    local limit=$1 rc; shift
    echo "== $* (limit ${limit}s)"; SECONDS=0
    timeout "$limit" "$@"; rc=$?
    echo "== rc $rc in ${SECONDS}s"; [ "$rc" = 0 ] || failed=1
  }
  # update / act / env-step times per config on the GPU (env steps stay on the host CPU here)
  step 120 python3 benchmarks/speed.py --repeats 20 --rounds 2 --out "$OUT/speed_gpu.md"
  # the fully on-device loop (MJX envs in the jitted scan): SAC and fast with 16 envs, paper shorter
  step 210 python3 benchmarks/ondevice.py --impl jax --configs sac "simpo fast" --num-envs 16 --iterations 64 \
    --repeats 2 --out "$OUT/ondevice_gpu.md"
  step 150 python3 benchmarks/ondevice.py --impl jax --configs "simpo paper" --num-envs 16 --iterations 4 \
    --repeats 2 --out "$OUT/ondevice_gpu_paper.md"
  # Stage 2 in slices (matching_slice_rows, chosen on a CPU) against the whole batch, on the GPU
  step 60 python3 benchmarks/slices.py --rounds 2 --out "$OUT/slices_gpu.md"
  exit "$failed"
  ;;
*)
  echo "usage: bash benchmarks/device_kit.sh wheels|run" >&2
  exit 2
  ;;
esac
