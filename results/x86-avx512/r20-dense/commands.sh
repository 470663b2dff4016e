#!/bin/bash
# 2026-12-03, code 9fa76af, 2-core AMD EPYC (AVX-512): the dense LC-ResNet-20 tuned for the host's level (x86 =
# skylake-avx512), 600 trials over 13 kernels in 934 s; db/ holds the database (gunzip its two files to resume
# with --db). Not shipped: the x86 set needs the gated and mask forms too (issue 16).
lcnet-tvm tune --model lcnet_resnet20_cifar --target x86 --gates dense --trials 600 --db db
lcnet-tvm bench --target x86 --db db --systems tvm-dense,ort-dense,openvino-dense --iterations 40 --json avx512.json > avx512.txt
# the shipped x86-avx2 records (324 trials), right after:
lcnet-tvm bench --systems tvm-dense,ort-dense,openvino-dense --iterations 40 --json avx2.json > avx2.txt
