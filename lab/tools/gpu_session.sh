#!/usr/bin/env bash
# The GPU runs behind the committed results, one step per call of the device tool (each < 10 min).
#   bash lab/tools/gpu_session.sh STEP    with $OUT set; onnxruntime-gpu staged into /tmp/site first
# Session 7 steps (H200): nights1, nights2 (with the H200 ResNet-50 file), nights3.
# Pipeline step: pipe1 (the detector's mAP and stage split on CUDA, a --trt-streams 1,2,4,8 sweep for
#   ResNet-50 and the detector). PIPE_CHECK=1 runs its pytest commands on the CPU at tiny settings, to
#   check the step without a GPU.
# Session 8 steps (each call asked for an H200 and got an H100): ab1 (the A/B validation: A/A and +2 %,
#   beside the stored-baseline gate), pipe1, s8 (pipe1's streams sweeps after the per-thread warm-up
#   fix, then A/B jobs with 4 pairs of builds); s8b was not run (too little device time left).
# Session 1 steps: core, zoo1, zoo2 (cut short), gate.
# Session 2 steps: core2 (GPU tests, timer fidelity warm/cold and with telemetry, one xdist worker),
#   gate2 (gate validation on the project's timer), zoo3 (the zoo cells session 1 missed), compile.
# Session 5 steps: ort6 (ONNX Runtime's node placement on the segmenters, timer fidelity with telemetry on),
#   zoo6a/zoo6b (torch.compile fp16), zoo6c (torch batch-256 segmenter cells), zoo6d (ONNX Runtime batch 256),
#   zoo6e (zoo6d again with errors recorded, and what zoo6c's limits cut).
# Session 6 steps: zoo7a (UNet fp32 batch 256), zoo7b (DenseNet-201 torch.compile fp16 batch 256),
#   zoo7c (UNet tf32 batch 256), zoo7d (zoo7a with expandable segments), zoo7e (zoo7c after the timed loop
#   stopped holding an output during the next call), probe7 (which layer of zoo7d's UNet is wrong),
#   probe7b/probe7c/probe7d (such a layer alone, per dtype, batch, cuDNN and memory setting).
# Session 4 steps: zoo5a (ONNX Runtime on the segmenters, UNet and DeepLabV3 beyond fp32 at batch 1 and 32),
#   zoo5b (torch.compile on DenseNet-201, DeepLabV3 and the UNet; the batch-256 cells still missing),
#   timer4 (event-path tests, timer fidelity in short interleaved rounds).
# Session 3 steps: gate3 (as gate2, dumped per block), core3 (GPU tests of the event paths, timer
#   fidelity with the libcuda path, an OOM probe, torch.compile at batch 32), zoo4 (the remaining zoo
#   cells, ONNX Runtime first; everything packed into one tarball since only 8 files come back).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
step=${1:?step}
out=${OUT:?OUT}
py=python3
$py -m pip install -q --no-deps --no-build-isolation -e . >"$out/pip-$step.log" 2>&1 || echo "pip install -e failed"
run() { # name seconds command...: SIGINT at the limit lets pytest still write its results
  local name=$1 secs=$2; shift 2
  echo "=== $name ($(date +%T))"
  timeout -s INT "$secs" "$@" >"$out/$name.log" 2>&1
  echo "rc=$? $(tail -n 1 "$out/$name.log")"
}
device_txt() {
  { nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv
    $py -c "import torch, onnxruntime as o; print(torch.__version__, o.__version__, o.get_available_providers())"
  } >>"$out/device.txt" 2>&1
}
pack() { # NAME: everything under $OUT into one tarball; only it and the tables stay (8 files come back)
  tar czf "/tmp/$1.tgz" -C "$out" . 2>/dev/null && find "$out" -type f ! -name '*.md' -delete && mv "/tmp/$1.tgz" "$out/"
}
FAST=(--trt-warmup 0.1 --trt-min-time 0.3 --trt-max-time 1.0 -p no:cacheprovider)
zoo() { # name models timeout
  run "$1" "$3" $py -m pytest benchmarks --trt-device cuda --trt-model "$2" --trt-backend torch,onnxruntime \
    --trt-precision fp32,tf32,fp16,bf16 --trt-variant eager,channels-last,cuda-graph --trt-batch-size 1,32,256 \
    -k "(not (channels-last or cuda-graph) or fp16) and not (onnxruntime and tf32)" "${FAST[@]}" \
    --trt-results "$out/$1.json" --trt-report-md "$out/$1.md"
}
cases() { # name seconds pytest-args...: the zoo's benchmark run (sessions 5 on), results named after it
  local name=$1 secs=$2; shift 2
  run "$name" "$secs" $py -m pytest benchmarks --trt-device cuda -n 1 --trt-min-iterations 3 "${FAST[@]}" "$@" \
    --trt-results "$out/$name.json" --trt-report-md "$out/$name.md"
}
case $step in
core)
  { nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv
    $py -c "import torch, onnxruntime as o; print(torch.__version__, o.__version__, o.get_available_providers())"
  } >"$out/device.txt" 2>&1
  cat "$out/device.txt"
  run tests 240 $py -m pytest tests -q -n 8 -p no:cacheprovider -rs
  run small 240 $py -m pytest benchmarks --trt-device cuda --trt-backend torch,onnxruntime \
    --trt-precision fp32,tf32,fp16,bf16,int8 --trt-variant eager,cuda-graph --trt-batch-size 1,8,64 \
    -p no:cacheprovider --trt-results "$out/small_cuda.json" --trt-report-md "$out/small_cuda.md"
  run fidelity 150 $py lab/timer_fidelity.py --device cuda --out "$out/timer_fidelity_cuda.json"
  run telemetry 100 $py lab/telemetry_overhead.py --device cuda:0 --out "$out/telemetry_overhead.json"
  ;;
zoo1) zoo zoo1 resnet50,mobilenet_v3_large,vgg16 560 ;;
zoo2) zoo zoo2 densenet201,deeplabv3_resnet50,unet 560 ;;
gate)  # the in-process gate validation it ran was replaced by lab/nights (see the nights steps)
  run compile 220 $py -m pytest benchmarks --trt-device cuda --trt-model resnet50,mobilenet_v3_large,unet \
    --trt-backend torch-compile --trt-precision fp16 --trt-batch-size 1,32,256 "${FAST[@]}" \
    --trt-results "$out/compile.json" --trt-report-md "$out/compile.md"
  ;;
core2)
  { nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv
    $py -c "import torch, onnxruntime as o; print(torch.__version__, o.__version__, o.get_available_providers())"
  } >"$out/device.txt" 2>&1
  cat "$out/device.txt"
  run tests 100 $py -m pytest tests/test_timing.py tests/test_telemetry.py -q -p no:cacheprovider -rs
  run fidelity 130 $py lab/timer_fidelity.py --device cuda --out "$out/timer_fidelity_cuda.json"
  run fidelity_telemetry 80 $py lab/timer_fidelity.py --device cuda --telemetry --repeats 5 \
    --skip-overhead --out "$out/timer_fidelity_cuda_telemetry.json"
  run xdist1 100 $py -m pytest benchmarks -n 1 --trt-device cuda --trt-backend torch,onnxruntime \
    --trt-batch-size 1,8 "${FAST[@]}" --trt-results "$out/xdist1_cuda.json"
  tail -n 3 "$out"/tests.log "$out"/xdist1.log >>"$out/device.txt"
  ;;
nights1|nights2|nights3) # the H200 nights (lab/results/h200_nights): one pytest process per night
  # nights1 saved base.json; nights2/3 read it (pass it as BASE), so every process is timed alike
  NIGHTS=(-- --trt-device cuda --trt-backend torch --trt-precision fp32,fp16 --trt-batch-size 1,8,32
          --trt-variant eager,cuda-graph --trt-min-time 0.5 --trt-max-time 2)
  case $step in
  nights1) $py lab/nights/collect.py --out "$out" --tag gpu1 --schedule A:24,B5:12,B10:12 --budget-s 420 \
             --timeout-s 90 "${NIGHTS[@]}" ;;
  nights2) $py lab/nights/collect.py --out "$out" --tag gpu2 --baseline "${BASE:?}" --schedule A:8,B5:6,B10:6 \
             --seed 2 --budget-s 350 --timeout-s 90 "${NIGHTS[@]}"
           run r50 110 $py -m pytest benchmarks --trt-device cuda --trt-model resnet50 --trt-backend torch \
             --trt-precision fp32,fp16 --trt-batch-size 1,32 --trt-variant eager,cuda-graph "${FAST[@]}" \
             --trt-results "$out/h200_r50.json" ;;
  nights3) $py lab/nights/collect.py --out "$out" --tag gpu3 --baseline "${BASE:?}" --schedule A:3,B5:2,B10:2 \
             --seed 3 --budget-s 175 --timeout-s 60 "${NIGHTS[@]}" ;;
  esac
  ;;
pipe1) # the detector's mAP and stage split (prepare / infer / post / total) on CUDA fp32 and fp16, then a
  # --trt-streams sweep for ResNet-50 and the detector. ONNX Runtime joins where its CUDA EP loads and
  # TensorRT where it imports; each group has its own limit, most wanted first.
  device_txt
  pipe_backends=torch
  $py -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" \
    2>/dev/null && pipe_backends+=,onnxruntime
  $py -c "import tensorrt" 2>/dev/null && pipe_backends+=,tensorrt
  pipe_over=()  # later options win: PIPE_CHECK=1 puts the same commands on the CPU, tiny and fast
  if [ "${PIPE_CHECK:-0}" = 1 ]; then
    pipe_backends=${PIPE_BACKENDS:-torch,onnxruntime}
    pipe_over=(--trt-device cpu --trt-precision fp32 --trt-warmup 0 --trt-min-time 0.05 --trt-max-time 0.2
               --trt-min-iterations 2 --trt-case-timeout 120)
  fi
  echo "pipe1 backends: $pipe_backends" | tee -a "$out/device.txt"
  cases pipe1_det 170 --trt-model scenes-det --trt-backend "$pipe_backends" --trt-precision fp32,fp16 \
    --trt-batch-size "${PIPE_DET_BATCH:-1,8,64}" "${pipe_over[@]}"
  cases pipe1_streams_det 130 --trt-model scenes-det --trt-backend "$pipe_backends" --trt-precision fp16 \
    --trt-batch-size 8 --trt-streams 1,2,4,8 "${pipe_over[@]}"
  cases pipe1_streams_r50 190 --trt-model resnet50 --trt-backend "$pipe_backends" --trt-precision fp16 \
    --trt-batch-size "${PIPE_R50_BATCH:-1,32}" --trt-streams 1,2,4,8 "${pipe_over[@]}"
  pack pipe1
  ;;
core3)
  { nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv
    $py -c "import torch, onnxruntime as o; print(torch.__version__, o.__version__, o.get_available_providers())"
  } >"$out/device.txt" 2>&1
  cat "$out/device.txt"
  run tests 100 $py -m pytest tests/test_timing.py tests/test_cuda_events.py tests/test_telemetry.py \
    tests/test_backend_contract.py -q -p no:cacheprovider -rs
  run fidelity 140 $py lab/timer_fidelity.py --device cuda --out "$out/timer_fidelity_cuda.json"
  # An OOM cell on purpose (DeepLabV3 fp32 at batch 1024 does not fit 80 GB), then the next case must run.
  run oom 60 $py -m pytest benchmarks --trt-device cuda --trt-model deeplabv3_resnet50 --trt-backend torch \
    --trt-precision fp32 --trt-batch-size 1024,1 "${FAST[@]}" --trt-min-iterations 3 \
    --trt-results "$out/oom.json" --trt-report-md "$out/oom.md"
  run compile 130 $py -m pytest benchmarks --trt-device cuda --trt-model vgg16,densenet201,unet,deeplabv3_resnet50 \
    --trt-backend torch-compile --trt-precision fp16 --trt-batch-size 32 "${FAST[@]}" --trt-min-iterations 3 \
    --trt-results "$out/compile.json" --trt-report-md "$out/compile.md"
  tar czf "$out/core3.tgz" -C "$out" --exclude core3.tgz . 2>/dev/null
  ;;
core3b) # session 3: what core3's limits cut (timer fidelity), then the zoo's ONNX Runtime and UNet cells
  run fidelity 190 $py lab/timer_fidelity.py --device cuda --out "$out/timer_fidelity_cuda.json"
  big=(--trt-min-iterations 3 --trt-batch-size 1,32,256)
  run zoo4_ort 225 $py -m pytest benchmarks --trt-device cuda --trt-model densenet201,unet,deeplabv3_resnet50 \
    --trt-backend onnxruntime --trt-precision fp32,fp16 "${big[@]}" "${FAST[@]}" \
    --trt-results "$out/zoo4_ort.json" --trt-report-md "$out/zoo4_ort.md"
  run zoo4_unet 135 $py -m pytest benchmarks --trt-device cuda --trt-model unet --trt-backend torch \
    --trt-precision fp32,tf32,fp16,bf16 "${big[@]}" --trt-variant eager,channels-last,cuda-graph \
    -k "not (channels-last or cuda-graph) or fp16" "${FAST[@]}" \
    --trt-results "$out/zoo4_unet.json" --trt-report-md "$out/zoo4_unet.md"
  tar czf "$out/core3b.tgz" -C "$out" --exclude core3b.tgz . 2>/dev/null
  ;;
zoo5a) # session 4: most wanted first; -n 1 turns a native ONNX Runtime abort into one CRASHED case
  small=(--trt-min-iterations 3 --trt-batch-size 1,32 -n 1)
  variants=(--trt-variant eager,channels-last,cuda-graph)
  device_txt
  run zoo5_ort 200 $py -m pytest benchmarks --trt-device cuda --trt-model deeplabv3_resnet50,unet \
    --trt-backend onnxruntime --trt-precision fp32,fp16 "${small[@]}" "${FAST[@]}" \
    --trt-results "$out/zoo5_ort.json" --trt-report-md "$out/zoo5_ort.md"
  run zoo5_unet 170 $py -m pytest benchmarks --trt-device cuda --trt-model unet --trt-backend torch \
    --trt-precision tf32,fp16,bf16 "${small[@]}" "${variants[@]}" -k "not (channels-last or cuda-graph) or fp16" \
    "${FAST[@]}" --trt-results "$out/zoo5_unet.json" --trt-report-md "$out/zoo5_unet.md"
  run zoo5_deeplab 170 $py -m pytest benchmarks --trt-device cuda --trt-model deeplabv3_resnet50 --trt-backend torch \
    --trt-precision tf32,fp16,bf16 "${small[@]}" "${variants[@]}" -k "not (channels-last or cuda-graph) or fp16" \
    "${FAST[@]}" --trt-results "$out/zoo5_deeplab.json" --trt-report-md "$out/zoo5_deeplab.md"
  pack zoo5a
  ;;
zoo5b) # session 4: torch.compile at batch 1 and 32, then batch-256 cells (fp16 first: fp32 may be an OOM cell)
  device_txt
  run zoo5_compile 210 $py -m pytest benchmarks --trt-device cuda --trt-model densenet201,unet,deeplabv3_resnet50 \
    --trt-backend torch-compile --trt-precision fp16 --trt-batch-size 1,32 -n 1 --trt-min-iterations 3 "${FAST[@]}" \
    --trt-results "$out/zoo5_compile.json" --trt-report-md "$out/zoo5_compile.md"
  big=(--trt-device cuda --trt-batch-size 256 -n 1 --trt-min-iterations 3 "${FAST[@]}")
  run zoo5_256h 250 $py -m pytest benchmarks --trt-model unet,deeplabv3_resnet50,densenet201 \
    --trt-backend torch,onnxruntime --trt-precision fp16 --trt-variant eager,channels-last,cuda-graph "${big[@]}" \
    -k "unet or deeplab or (densenet201 and onnxruntime)" \
    --trt-results "$out/zoo5_256h.json" --trt-report-md "$out/zoo5_256h.md"
  run zoo5_256f 90 $py -m pytest benchmarks --trt-model unet,deeplabv3_resnet50 --trt-backend torch,onnxruntime \
    --trt-precision fp32 "${big[@]}" -k "not (deeplab and torch)" \
    --trt-results "$out/zoo5_256f.json" --trt-report-md "$out/zoo5_256f.md"
  pack zoo5b
  ;;
timer4) # session 4: event-path GPU tests, timer fidelity (21 short rounds, SM clock watched), and the UNet
  # cells zoo5a measured but could not return (the device returns 8 files: keep only the tarball)
  device_txt
  run tests 90 $py -m pytest tests/test_timing.py tests/test_cuda_events.py tests/test_timer_fidelity.py \
    -q -p no:cacheprovider -rs
  run fidelity 260 $py lab/timer_fidelity.py --device cuda --out "$out/timer_fidelity_cuda.json"
  run zoo5_unet 150 $py -m pytest benchmarks --trt-device cuda --trt-model unet --trt-backend torch \
    --trt-precision tf32,fp16,bf16 --trt-min-iterations 3 --trt-batch-size 1,32 -n 1 \
    --trt-variant eager,channels-last,cuda-graph -k "not (channels-last or cuda-graph) or fp16" \
    "${FAST[@]}" --trt-results "$out/zoo5_unet.json" --trt-report-md "$out/zoo5_unet.md"
  pack timer4
  ls "$out"
  ;;
timer4b) # session 4: the same fidelity comparison on a spin kernel, whose low power keeps the clocks put
  device_txt
  run fidelity_spin 230 $py lab/timer_fidelity.py --device cuda --workload spin --skip-overhead \
    --out "$out/timer_fidelity_cuda_spin.json"
  ;;
timer4c) # session 4: the loop with auto blocks of calls per event: spin (with host overhead), then matmul
  device_txt
  run tests 40 $py -m pytest tests/test_timing.py tests/test_cuda_events.py -q -p no:cacheprovider -rs
  run fidelity_spin 200 $py lab/timer_fidelity.py --device cuda --workload spin \
    --out "$out/timer_fidelity_cuda_spin_blocks.json"
  run fidelity 170 $py lab/timer_fidelity.py --device cuda --skip-overhead \
    --out "$out/timer_fidelity_cuda_blocks.json"
  ;;
zoo6a|zoo6b) # session 5: torch.compile fp16 where the grid lacks it, one model per invocation so a slow
  # compile cannot eat the others' time; -k drops the fp32 compile base cases (DenseNet-201 fp32 took
  # zoo5b's whole slot). Each case now compiles its own static shape (dynamo reset per case); zoo6b
  # ends by re-measuring the ResNet-50 / MobileNetV3 batch-32/256 cells, which before that fix reused a
  # dynamic-batch compile of an earlier case.
  device_txt
  cmp() { # name models batches seconds [-k extra]
    cases "$1" "$4" --trt-model "$2" --trt-backend torch-compile --trt-precision fp16 --trt-batch-size "$3" \
      -k "fp16 ${5:-}"
  }
  if [ "$step" = zoo6a ]; then
    cmp zoo6a_densenet densenet201 1,32,256 330
    cmp zoo6a_vgg vgg16 1,256 200
  else
    cmp zoo6b_unet unet 1,32,256 190
    cmp zoo6b_deeplab deeplabv3_resnet50 1,32,256 230
    cmp zoo6b_static resnet50,mobilenet_v3_large 32,256 130
  fi
  pack "$step"
  ;;
zoo6c) # session 5: torch batch-256 segmenter cells (and UNet bf16 at 32), most wanted first, each group
  # with its own limit; an interrupted case records its phase
  device_txt
  seg() { # name models precisions batches variants seconds -k
    cases "$1" "$6" --trt-model "$2" --trt-backend torch --trt-precision "$3" --trt-batch-size "$4" \
      --trt-variant "$5" -k "$7"
  }
  seg zoo6c_unet unet fp16,bf16 32,256 eager,channels-last,cuda-graph 200 \
    "not fp32 and ((bs256 and (fp16 or not (channels-last or cuda-graph))) or (bf16-bs32 and not (channels-last or cuda-graph)))"
  seg zoo6c_deeplab deeplabv3_resnet50 fp16,bf16 256 eager,channels-last,cuda-graph 210 \
    "not fp32 and (fp16 or not (channels-last or cuda-graph))"
  seg zoo6c_full unet,deeplabv3_resnet50 fp32,tf32 256 eager 130 "not (deeplab and fp32)"
  pack zoo6c
  ;;
zoo6d) # session 5: ONNX Runtime's batch-256 cells (needs onnxruntime-gpu staged)
  device_txt
  ort() { # name models precisions seconds
    cases "$1" "$4" --trt-model "$2" --trt-backend onnxruntime --trt-precision "$3" --trt-batch-size 256 \
      -k "onnxruntime-${3/,*/}"
  }
  ort zoo6d_unet unet fp32 100
  ort zoo6d_unet16 unet fp16 100
  ort zoo6d_deeplab deeplabv3_resnet50 fp32 135
  ort zoo6d_deeplab16 deeplabv3_resnet50 fp16 120
  ort zoo6d_densenet densenet201 fp16 90
  pack zoo6d
  ;;
zoo6e) # session 5: zoo6d again now that a backend's run-time error is a recorded ERROR cell (ONNX
  # Runtime's cuDNN convolutions refused the segmenters' >= 2**31-element tensors at batch 256), then the
  # torch batch-256 cells zoo6c's limits cut; UNet fp32 last: its cuDNN autotuning ran > 115 s
  device_txt
  cases zoo6e_ort 110 --trt-model unet,deeplabv3_resnet50 --trt-backend onnxruntime --trt-precision fp32,fp16 \
    --trt-batch-size 256
  big=(--trt-backend torch --trt-batch-size 256)
  cases zoo6e_bf16 80 --trt-model unet --trt-precision bf16 "${big[@]}" -k bf16
  cases zoo6e_tf32 170 --trt-model deeplabv3_resnet50,unet --trt-precision tf32 "${big[@]}" -k tf32
  cases zoo6e_fp32 185 --trt-model unet --trt-precision fp32 "${big[@]}"
  pack zoo6e
  ;;
zoo7a|zoo7b|zoo7c|zoo7d|zoo7e) # session 6: the three cells session 5's limits cut, each recorded INTERRUPTED with its
  # phase. zoo7a found UNet fp32 at batch 256 OOM after 265 s of cuDNN autotuning; tf32 holds the same
  # tensors, so zoo7c allows as long. zoo7d: the same fp32 cell with PyTorch's expandable segments, since
  # the OOM left 8 GiB reserved but unallocated (outside the grid: the allocator setting is not a default).
  device_txt
  case $step in
  zoo7a) cases zoo7a 570 --trt-model unet --trt-backend torch --trt-precision fp32 --trt-batch-size 256 ;;
  zoo7b) cases zoo7b 560 --trt-model densenet201 --trt-backend torch-compile --trt-precision fp16 \
           --trt-batch-size 256 -k fp16 ;;
  zoo7c) cases zoo7c 560 --trt-model unet --trt-backend torch --trt-precision tf32 --trt-batch-size 256 -k tf32 ;;
  zoo7e) # zoo7c's OOM came in the measure phase with the previous call's 5.25 GiB output still held by
    # the timed loop; the loop now drops it before the next call
    cases zoo7e 560 --trt-model unet --trt-backend torch --trt-precision tf32 --trt-batch-size 256 -k tf32 ;;
  zoo7d) PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True cases zoo7d 560 --trt-model unet --trt-backend torch \
           --trt-precision fp32 --trt-batch-size 256 ;;
  esac
  pack "$step"
  ;;
probe7) # session 6: zoo7d's fp32 UNet at batch 256 disagreed with the fp32 reference (rel err 0.39): which layer
  device_txt
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True run probe7 570 $py lab/unet_fp32_probe.py \
    --out "$out/unet_fp32_probe.json"
  cat "$out/probe7.log"
  pack probe7
  ;;
probe7b|probe7c|probe7d) # session 6: probe7 found the UNet's top ConvTranspose2d layers wrong; such a layer alone, per
  # setting (probe7b ran a 128->64 layer at batch 127/128/256 with ample memory, all right; probe7c runs the
  # UNet's own two shapes, also with the device nearly full; probe7d repeats probe7c: are its errors reproducible)
  device_txt
  run "$step" 400 $py lab/conv_transpose_probe.py --out "$out/conv_transpose_probe.json"
  cat "$out/$step.log"
  pack "$step"
  ;;
ort6) # session 5: where ONNX Runtime's time goes on the segmenters (node placement, CPU fallbacks), then
  # the timer-fidelity comparison with our NVML sampler on and the telemetry overhead, on the new loop
  device_txt
  cases ort6 170 --trt-model deeplabv3_resnet50,unet --trt-backend onnxruntime --trt-precision fp32,fp16 \
    --trt-batch-size 1 --trt-ort-profile on
  grep -A3 "ONNX Runtime profile" "$out/ort6.log" | head -40
  run fidelity_telemetry 150 $py lab/timer_fidelity.py --device cuda --workload spin --telemetry \
    --repeats 11 --skip-overhead --out "$out/timer_fidelity_cuda_spin_telemetry.json"
  run telemetry 100 $py lab/telemetry_overhead.py --device cuda:0 --out "$out/telemetry_overhead.json"
  tail -n 25 "$out/fidelity_telemetry.log" "$out/telemetry.log"
  pack ort6
  ;;
zoo4) # the cells still missing, most wanted first; big cases need only 3 iterations (a batch takes seconds)
  # -n 1: a native abort in ONNX Runtime (seen at DenseNet-201 fp16 bs256) becomes one CRASHED case
  big=(--trt-min-iterations 3 --trt-batch-size 1,32,256 -n 1)
  variants=(--trt-variant eager,channels-last,cuda-graph)
  run zoo4_ort 240 $py -m pytest benchmarks --trt-device cuda --trt-model densenet201,deeplabv3_resnet50,unet \
    --trt-backend onnxruntime --trt-precision fp32,fp16 "${big[@]}" "${FAST[@]}" \
    --trt-results "$out/zoo4_ort.json" --trt-report-md "$out/zoo4_ort.md"
  run zoo4_unet 150 $py -m pytest benchmarks --trt-device cuda --trt-model unet --trt-backend torch \
    --trt-precision fp32,tf32,fp16,bf16 "${big[@]}" "${variants[@]}" -k "not (channels-last or cuda-graph) or fp16" "${FAST[@]}" \
    --trt-results "$out/zoo4_unet.json" --trt-report-md "$out/zoo4_unet.md"
  run zoo4_deeplab 150 $py -m pytest benchmarks --trt-device cuda --trt-model deeplabv3_resnet50 --trt-backend torch \
    --trt-precision tf32,fp16,bf16 "${big[@]}" "${variants[@]}" -k "not (channels-last or cuda-graph) or fp16" "${FAST[@]}" \
    --trt-results "$out/zoo4_deeplab.json" --trt-report-md "$out/zoo4_deeplab.md"
  tar czf "$out/zoo4.tgz" -C "$out" --exclude zoo4.tgz . 2>/dev/null
  ;;
zoo3) # what session 1 did not reach: ONNX Runtime on DenseNet-201, all of DeepLabV3 and the UNet
  run zoo3 570 $py -m pytest benchmarks --trt-device cuda --trt-model deeplabv3_resnet50,unet,densenet201 \
    --trt-backend torch,onnxruntime --trt-precision fp32,tf32,fp16,bf16 \
    --trt-variant eager,channels-last,cuda-graph --trt-batch-size 1,32,256 \
    -k "(not (channels-last or cuda-graph) or fp16) and not (onnxruntime and tf32) and not (densenet201 and torch) \
        and not deeplabv3_resnet50-torch-fp32-bs1 and not deeplabv3_resnet50-torch-fp32-bs32" \
    "${FAST[@]}" --trt-results "$out/zoo3.json" --trt-report-md "$out/zoo3.md"
  ;;
compile) # torch.compile (inductor, fp16) over the zoo, fastest-compiling models first
  run compile 560 $py -m pytest benchmarks --trt-device cuda \
    --trt-model mobilenet_v3_large,resnet50,unet,vgg16,densenet201,deeplabv3_resnet50 \
    --trt-backend torch-compile --trt-precision fp16 --trt-batch-size 1,32,256 "${FAST[@]}" \
    --trt-results "$out/compile.json" --trt-report-md "$out/compile.md"
  ;;
ab1) # the H200 A/B evidence (README "A/B"), lab/ab as a user's PR job runs it: one pytest process per job,
  # A/A jobs and +2 % jobs (main at 50 blocks, the change at 51), on GPU-bound (batch 32) and CUDA-graph
  # cases; each job also times the same cases alone (test_latency) for the stored-baseline gate on the
  # same processes. --trt-ab-processes 0 buys more jobs; analyze.py --group 3 decides over three jobs'
  # processes, as --trt-ab-processes auto (2 fresh) would. AB_DEVICE/AB_SCHEDULE/AB_BUDGET/AB_TIME let
  # the commands be checked on a CPU at tiny settings.
  device_txt
  read -r ab_min ab_max <<<"${AB_TIME:-0.5 2}"
  AB=(-- --trt-device "${AB_DEVICE:-cuda}" --trt-backend torch --trt-precision fp32,fp16 --trt-batch-size 1,32
      --trt-variant eager,cuda-graph -k "bs32 or cuda-graph" --trt-threshold 1% --trt-ab-processes 0
      --trt-warmup 0.2 --trt-min-time "$ab_min" --trt-max-time "$ab_max")
  run ab_collect "${AB_BUDGET:-500}" $py lab/ab/collect.py --out "$out/ab" --schedule "${AB_SCHEDULE:-A:40,B2:40}" \
    --base-depth 50 --budget-s "$(( ${AB_BUDGET:-500} - 40 ))" --timeout-s 90 "${AB[@]}"
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  run ab_analyze 60 $py lab/ab/analyze.py "$out/ab" --threshold 1% --also 2%,5% --group 1,3 \
    --machine "${gpu:-${AB_DEVICE:-cuda}}, one pytest process per job" --out "$out/ab_analysis.json" \
    --md "$out/ab_analysis.md"
  cat "$out/ab_analysis.md"
  tar cJf "$out/ab1.tar.xz" -C "$out" ab && rm -rf "$out/ab"
  ;;
s8) # session 8 (one call): pipe1's streams sweeps again now that each stream warms up on its own thread
  # (pipe1's ResNet-50 first requests on a new thread took 1.4 s and fell inside the window), then A/B
  # jobs as ab1 with the rounds split over pairs of new builds (--trt-ab-instances auto: 4 on CUDA),
  # without test_latency and the host-bound fp16 eager case, so more jobs fit the call
  device_txt
  s8_over=()
  [ "${PIPE_CHECK:-0}" = 1 ] && s8_over=(--trt-device cpu --trt-precision fp32 --trt-warmup 0 --trt-min-time 0.05
                                         --trt-max-time 0.2 --trt-min-iterations 2 --trt-case-timeout 120)
  cases s8_streams_det 110 --trt-model scenes-det --trt-backend torch --trt-precision fp16 --trt-batch-size 8 \
    --trt-streams 1,2,4,8 "${s8_over[@]}"
  cases s8_streams_r50 170 --trt-model resnet50 --trt-backend torch --trt-precision fp16 --trt-batch-size 1,32 \
    --trt-streams 1,2,4,8 "${s8_over[@]}"
  read -r ab_min ab_max <<<"${AB_TIME:-0.5 2}"
  AB=(-- --trt-device "${AB_DEVICE:-cuda}" --trt-backend torch --trt-precision fp32,fp16 --trt-batch-size 1,32
      --trt-variant eager,cuda-graph -k "test_ab and (cuda-graph or (fp32 and bs32))" --trt-threshold 1%
      --trt-ab-processes 0 ${AB_EXTRA:-} --trt-warmup 0.2 --trt-min-time "$ab_min" --trt-max-time "$ab_max")
  run ab_collect "${AB_BUDGET:-380}" $py lab/ab/collect.py --out "$out/ab" --schedule "${AB_SCHEDULE:-A:40,B2:40}" \
    --base-depth 50 --seed 8 --budget-s "$(( ${AB_BUDGET:-380} - 20 ))" --timeout-s 90 "${AB[@]}"
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  run ab_analyze 40 $py lab/ab/analyze.py "$out/ab" --threshold 1% --also 2% --group 1,3 \
    --machine "${gpu:-${AB_DEVICE:-cuda}}, one pytest process per job, 4 instance pairs" \
    --out "$out/ab_analysis.json" --md "$out/ab_analysis.md"
  cat "$out/ab_analysis.md"
  tar cJf "$out/ab.tar.xz" -C "$out" ab && rm -rf "$out/ab"
  pack s8
  ;;
s8b) # session 8, the last minutes: the two cases whose builds differed most in s8, with 8 pairs of builds
  device_txt
  AB=(-- --trt-device "${AB_DEVICE:-cuda}" --trt-backend torch --trt-precision fp32,fp16 --trt-batch-size 1,32
      --trt-variant cuda-graph -k "test_ab and (fp32-bs1 or fp16-bs32)" --trt-threshold 1% --trt-ab-processes 0
      --trt-ab-instances 8 --trt-warmup 0.2 --trt-min-time 0.5 --trt-max-time 2)
  run ab_collect "${AB_BUDGET:-100}" $py lab/ab/collect.py --out "$out/ab" --schedule "${AB_SCHEDULE:-A:10,B2:10}" \
    --base-depth 50 --seed 9 --budget-s "$(( ${AB_BUDGET:-100} - 10 ))" --timeout-s 60 "${AB[@]}"
  tar cJf "$out/ab8.tar.xz" -C "$out" ab && rm -rf "$out/ab"
  ;;
*) echo "unknown step $step"; exit 2 ;;
esac
