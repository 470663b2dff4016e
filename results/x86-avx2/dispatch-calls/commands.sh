#!/bin/bash
# After DropProvenParamChecks and RemoveUnusedTuples (2026-12-03, code f96a6c0, shipped x86-avx2 records).
lcnet-tvm bench --iterations 40 --profile --json r20.json > r20.txt
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.5 --iterations 40 --profile --json r56.json > r56.txt
