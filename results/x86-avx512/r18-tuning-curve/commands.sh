#!/bin/bash
# 2026-12-05, 2-core AMD EPYC (AVX-512), idle but for these commands; code at e0128b8 (stage 1), 4e5e39d (tune --time-limit) after.
# LC-ResNet-18 224x224, batch 1, target x86 = skylake-avx512 on this host (the code of x86-avx512).
# One database, tuned from scratch, resumed stage by stage; after each stage a copy of it is benchmarked.
# The curve's minutes are the tune's own "measured now in S s" summed over the stages (the guided stages
# first build the model and time its kernels on held-out inputs, about 20 s, outside that count).
set -e
DB=db
# dense backbone
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates dense --trials 300 --db $DB            # stage1: 300 measured in 457 s
bench() { lcnet-tvm bench --model lcnet_resnet18_imagenet --systems "$2" --target x86 --db "$1" --iterations 20 --json "$3.json" > "$3.txt"; }
cp -r $DB snap1; bench snap1 tvm-dense,ort-dense,openvino-dense bench1
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates dense --guided --trials 1000 --db $DB --time-limit 7.4   # stage2: 299 in 464 s
cp -r $DB snap2; bench snap2 tvm-dense,ort-dense,openvino-dense bench2
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates dense --guided --trials 1600 --db $DB --time-limit 15    # stage3: 518 in 908 s
cp -r $DB snap3; bench snap3 tvm-dense,ort-dense,openvino-dense bench3
# gated and mask forms (the same database)
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --trials 600 --db $DB --time-limit 15                      # g1: 590 in 622 s
cp -r $DB snapg1; bench snapg1 tvm-dense,tvm-gated,ort-dense,ort-mask,openvino-dense,openvino-mask benchg1   # with --flops-fraction 0.5 --iterations 12 --profile
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates mask --trials 240 --db $DB --time-limit 7          # m1: 202 in 296 s
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --flops-fraction 0.5 --trials 1500 --db $DB --time-limit 15   # g2: 598 in 930 s
cp -r $DB snapg2; bench snapg2 tvm-dense,tvm-mask,tvm-gated,ort-dense,ort-mask,openvino-dense,openvino-mask benchg2   # as benchg1
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates dense --guided --trials 3000 --db $DB --time-limit 30  # stage4: 1129 in 1811 s
cp -r $DB snap4; bench snap4 tvm-dense,ort-dense,openvino-dense bench4
# shipped as lcnet_tvm/tuning/x86-avx512/lcnet_resnet18_imagenet (gzip -9 of snap4's two database files)
# The AVX2 records shipped before against this database, back to back:
lcnet-tvm bench --model lcnet_resnet18_imagenet --flops-fraction 0.5 --target x86-avx2 --systems tvm-dense,tvm-mask,tvm-gated,ort-dense,openvino-dense --iterations 12 --json avx2_shipped.json > avx2_shipped.txt
lcnet-tvm bench --model lcnet_resnet18_imagenet --flops-fraction 0.5 --target x86 --db snap4 --systems tvm-dense,tvm-mask,tvm-gated,ort-dense,openvino-dense --iterations 12 --json avx512_new.json > avx512_new.txt
# The stem alone against PyTorch: python3 ../dense-tune/largest_conv.py lcnet_resnet18_imagenet snap4 x86 > largest_conv.txt
# 2026-12-05 (evening), code at 678563b: the next dense stage, meant to reach 120 minutes, stopped by Ctrl-C to free the
# cores for other work; not benchmarked (no 120-minute point yet):
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates dense --guided --trials 6000 --db $DB --time-limit 60   # stage5a: 272 in 555 s (stopped)
# then (code at 9adda97, bucket convolutions reading through the channel order) the gated form, shipped:
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --flops-fraction 0.5 --trials 2500 --db $DB --time-limit 12     # g3: 539 in 765 s
# 2026-12-05 17:30-18:21, code at eee9d7f (a non-editable install), the same database (the shipped one, which holds
# stage 5a and g3): the dense stage to 120 minutes, then its bench; then the half-FLOPs bench for issue 13's row.
lcnet-tvm tune --model lcnet_resnet18_imagenet --target x86 --gates dense --guided --trials 6000 --db $DB --time-limit 50   # stage6: 1688 in 3010 s
cp -r $DB snap6; bench snap6 tvm-dense,ort-dense,openvino-dense bench6
lcnet-tvm bench --model lcnet_resnet18_imagenet --flops-fraction 0.5 --systems eager-dense,tvm-dense,tvm-gated,ort-dense,ort-mask,openvino-dense,openvino-mask --target x86 --db snap6 --iterations 12 --json r18_row.json > r18_row.txt
