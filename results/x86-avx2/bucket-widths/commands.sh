#!/bin/bash
# 2026-12-04, 2-core AMD EPYC (AVX2 only), code 1ae2a0c, machine about 2x slower than on 2026-12-03.
# One producer convolution (64 -> O channels, 3x3, 8x8, bias + ReLU), tuned alone for x86-avx2 with the project's
# tune_kernels, 24 trials each, no seeding, one fresh database per width: does a bucket width of 40 (= 8 x 5) tune worse?
python3 tune_one_conv.py 24 40 48 32 > output.txt
