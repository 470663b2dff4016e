#!/bin/bash
# The runs in this folder, in this order, one after another on an otherwise idle 2-core AMD EPYC
# (AVX-512 host; shipped x86-avx2 records), code at commit 3b87143, 2026-12-02 14:23-14:42 UTC; a few
# seconds of a short script of ours overlapped the two R20 runs (compile phase of the first, perhaps timing of the second).
lcnet-tvm bench --iterations 20 --json r20_run1.json > r20_run1.txt
lcnet-tvm bench --iterations 20 --json r20_run2.json > r20_run2.txt
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.5 --json r56_run1.json > r56_run1.txt
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.5 --json r56_run2.json > r56_run2.txt
lcnet-tvm bench --model lcnet_resnet18_imagenet --flops-fraction 0.5 --iterations 12 --json r18.json > r18.txt
