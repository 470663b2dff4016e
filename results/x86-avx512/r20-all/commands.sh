#!/bin/bash
# 2026-12-03, 2-core AMD EPYC (AVX-512): LC-ResNet-20, every form, tuned for the host's level (x86 = skylake-avx512,
# the identity of target x86-avx512), plain weight layouts. db/ holds the database (gunzip its two files to resume).
# NOT shipped: tvm-gated ran 2.24 ms against 1.06 with the shipped x86-avx2 records, because one bucket conv
# (conv2d5, 2 calls per inference) has no good record at AVX-512 (544 us a call against 35.5 at AVX2).
lcnet-tvm tune --model lcnet_resnet20_cifar --target x86 --gates dense --trials 600 --db db   # code 9fa76af, 934 s (see ../r20-dense)
lcnet-tvm tune --model lcnet_resnet20_cifar --target x86 --gates mask --trials 400 --db db    # code 0983ac5, 389 measured in 960 s (other jobs shared the cores)
lcnet-tvm tune --target x86 --trials 750 --db db                                              # 735 measured in 1409 s (other jobs shared the cores)
lcnet-tvm tune --target x86 --guided --trials 1100 --db db                                    # stopped by Ctrl-C after 143 measured (297 s)
# the bench below ran before the guided tune, each with the shipped records of its level put in place:
lcnet-tvm bench --iterations 20 --profile --json avx512.json > avx512.txt
lcnet-tvm bench --target x86-avx2 --iterations 20 --profile --json avx2.json > avx2.txt
