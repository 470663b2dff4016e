#!/bin/bash
# 2026-12-03, 2-core AMD EPYC (AVX-512), nothing else running: the AVX-512 record set of ../r20-all (db/ there,
# gunzipped) resumed with kernel seeding (schedules/seeding.py), code of this commit. Shipped as
# lcnet_tvm/tuning/x86-avx512/lcnet_resnet20_cifar (and lcnet_resnet56_cifar, a symlink).
lcnet-tvm tune --target x86 --guided --trials 1300 --db DB      # 816 measured in 1764 s (449 of 1300 counted from earlier runs)
# conv2d5 (a bucket conv, 2 calls per inference) got 17.6 us from its seed, the first trial; its best record
# from 893 unseeded gated trials was 1,372 us.
lcnet-tvm bench --db DB --systems eager-skip,tvm-dense,tvm-mask,tvm-gated,ort-dense,openvino-dense --iterations 20 --profile --json avx512.json > avx512.txt
lcnet-tvm bench --target x86-avx2 --systems eager-skip,tvm-dense,tvm-mask,tvm-gated,ort-dense,openvino-dense --iterations 20 --profile --json avx2.json > avx2.txt   # the shipped AVX2 records, right after
lcnet-tvm tune --model lcnet_resnet20_cifar --target x86 --gates mask --trials 550 --db DB   # 131 measured in 374 s
lcnet-tvm bench --db DB --systems eager-skip,tvm-dense,tvm-mask,tvm-gated,ort-dense,openvino-dense --iterations 20 --profile --json avx512-final.json > avx512-final.txt
