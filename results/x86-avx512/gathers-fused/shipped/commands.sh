#!/bin/bash
# 2026-12-05 15:13-15:30, 2-core AMD EPYC (AVX-512), idle but for these; a non-editable install of 9adda97 plus the
# new shipped records (x86-avx512: LC-ResNet-20/56 gated 100 kernels, 1,991 trials; LC-ResNet-18 gated 136 kernels,
# 815 trials, dense 2,518; every kernel of every form tuned). No --db: the shipped records.
lcnet-tvm bench --iterations 20 --json r20.json > r20.txt
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.25 0.5 0.75 --profile --json r56.json > r56.txt   # exit 2: torch-compile NOT TIMED at 0.5
lcnet-tvm bench --model lcnet_resnet18_imagenet --flops-fraction 0.5 --systems tvm-dense,tvm-mask,tvm-gated,ort-dense,ort-mask,openvino-dense,openvino-mask --iterations 12 --profile --json r18.json > r18.txt
lcnet-tvm demo > demo.txt
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.25 0.5 0.75 --profile --json r56_2.json > r56_2.txt   # 15:41, the same again (a second sample)
