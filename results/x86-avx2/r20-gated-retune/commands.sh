#!/bin/bash
# 2026-12-04, 2-core AMD EPYC (AVX2 only), code a917f4c; retuned.txt with the profile filing gathers and decisions
# under their own categories (shipped.txt files them under "other kernels").
# A resumed, seeded, guided tune of the shipped checkpoint's gated kernels on a copy of the shipped x86-avx2 records,
# then the bench with those records; shipped.txt is the same bench with the shipped records, earlier the same session.
# The machine ran about 3x slower than on 2026-12-03 all session: compare systems within one run.
DIR=/tmp/s9/db   # gunzipped copy of lcnet_tvm/tuning/x86-avx2/lcnet_resnet20_cifar
lcnet-tvm bench --iterations 40 --systems tvm-dense,tvm-mask,tvm-gated,ort-dense --profile --json shipped.json > shipped.txt
lcnet-tvm tune --target x86-avx2 --guided --trials 1500 --db $DIR > tune1.log   # stopped by Ctrl-C: the largest budgets go first, the least-tuned buckets last
lcnet-tvm tune --target x86-avx2 --guided --trials 1000 --db $DIR > tune2.log
lcnet-tvm tune --target x86-avx2 --guided --trials 1100 --db $DIR > tune3.log   # budget also by bytes moved (a trial change, reverted): gathers' search spaces ran out
lcnet-tvm bench --db $DIR --target x86-avx2 --iterations 40 --systems tvm-dense,tvm-mask,tvm-gated,ort-dense,openvino-dense --profile --json retuned.json > retuned.txt
