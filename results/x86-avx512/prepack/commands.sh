#!/bin/bash
# 2026-12-03, 2-core AMD EPYC (AVX-512). Layout-free weights (tried, removed: no gain), code at 98e2d07.
# Dense LC-ResNet-20, 600 trials each, target x86-avx512 (identity of x86 on this host):
#   prepacked: lcnet-tvm tune --model lcnet_resnet20_cifar --target x86-avx512 --gates dense --trials 600 --db P  (code 98e2d07; weights and biases layout-free; tests ran beside it)
#   plain:     lcnet-tvm tune --model lcnet_resnet20_cifar --target x86 --gates dense --trials 600 --db Q      (code 9fa76af)
lcnet-tvm bench --target x86-avx512 --db P --systems tvm-dense,ort-dense,openvino-dense --iterations 40 --json prepacked.json > prepacked.txt
lcnet-tvm bench --target x86-avx512 --db Q --systems tvm-dense,ort-dense,openvino-dense --iterations 40 --json plain.json > plain.txt
# One conv (3x3, 32->32, 16x16, bias + ReLU), 64 trials each, plain then layout-free weight, nothing else running:
#   python one_conv.py 32 16 64  ->  layout_free=False best 28.5 us; layout_free=True best 28.0 us
# (an earlier run of the same script while another tune shared the cores: 96.4 us vs 27.3 us, a measurement artifact)
