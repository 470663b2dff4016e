#!/bin/bash
# The runs quoted in the README's "Latest results" (2026-12-02, 2-core AMD EPYC, shipped x86-avx2 records),
# one after another on an otherwise idle machine; stdout in NAME.txt, --json in NAME.json.
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.25 0.5 0.75 --iterations 60 --profile --plot r56_sweep.png --json r56_sweep.json
lcnet-tvm bench --iterations 60 --profile --plot r20.png --json r20.json
lcnet-tvm demo --gates gated --json demo.json
lcnet-tvm bench --model lcnet_resnet18_imagenet --flops-fraction 0.5 --iterations 12 --profile --json r18.json
