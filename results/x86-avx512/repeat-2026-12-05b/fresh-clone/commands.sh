#!/bin/bash
# 2026-12-05 18:45-18:49: a fresh clone of main at daf755e, installed non-editable into a new venv, the unpacked
# records cache (~/.cache/lcnet_tvm/tuning) removed first; issue 13's two acceptance commands as written.
lcnet-tvm bench --iterations 20 --json r20.json > r20.txt; echo "exit $?" >> r20.txt
lcnet-tvm bench --model lcnet_resnet56_cifar --flops-fraction 0.5 --json r56.json > r56.txt; echo "exit $?" >> r56.txt
