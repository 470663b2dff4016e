#!/bin/bash
# Issue 13's two acceptance commands, twice each, alternating, run in a pair's folder, shipped records:
#   pair1/ 16:26-16:36, a non-editable install of eee9d7f;
#   pair2/ 17:00-17:10, a non-editable install of fdf7b7b plus a workspace-layout change (passes/host_program.py: each
#   intermediate 320 bytes past the one below it) that an interleaved A/B then showed to change nothing
#   (../bimodal-2026-12-05/) and that was reverted.
for run in 1 2; do
  date +"%H:%M r20_$run" >> times.txt
  lcnet-tvm bench --iterations 20 --json r20_$run.json > r20_$run.txt 2>r20_$run.err; echo "exit $?" >> r20_$run.txt
  date +"%H:%M r56_$run" >> times.txt
  lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.5 --json r56_$run.json > r56_$run.txt 2>r56_$run.err; echo "exit $?" >> r56_$run.txt
done
date +"%H:%M done" >> times.txt
