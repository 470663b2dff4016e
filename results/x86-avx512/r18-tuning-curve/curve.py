"""The LC-ResNet-18 tuning curve: tvm-dense and tvm-gated against minutes of `lcnet-tvm tune`, from the tune's own
summaries (tune_log.txt: "measured now in S s" per stage) and the bench run after each stage (benchN.json).

Usage: python3 curve.py  (prints the table, writes curve.png)"""
import json, re
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

here = Path(__file__).parent
# stage label in tune_log.txt -> (form tuned, bench run after it)
STAGES = [("stage1", "dense", "bench1"), ("stage2", "dense", "bench2"), ("stage3", "dense", "bench3"),
          ("stage4", "dense", "bench4"), ("g1", "gated", "benchg1"), ("m1", "mask", None), ("g2", "gated", "benchg2"),
          ("stage5a", "dense", None), ("stage6", "dense", "bench6")]
seconds = {}
for block in here.joinpath("tune_log.txt").read_text().split("== ")[1:]:
    label = block.split(".log")[0]
    seconds[label] = float(re.search(r"measured now in (\d+) s", block).group(1))
minutes = {"dense": 0.0, "gated": 0.0, "mask": 0.0}
rows = []
for label, form, bench in STAGES:
    if label not in seconds:
        continue
    minutes[form] += seconds[label] / 60
    if bench is None or not here.joinpath(f"{bench}.json").exists():
        continue
    point = json.loads(here.joinpath(f"{bench}.json").read_text())["points"][0]
    systems = {name: result["median_ms"] for name, result in point["systems"].items()}
    peer = min(systems[name] for name in systems if name in ("ort-dense", "openvino-dense"))
    rows.append((form, minutes[form], systems[f"tvm-{form}"], peer, systems.get("tvm-dense"), point["tuning_trials"]))
print("form   tune min   tvm ms   fastest dense peer ms   tvm-dense ms (same run)   trials")
for form, minute, tvm, peer, dense, trials in rows:
    print(f"{form:6} {minute:8.1f} {tvm:8.2f} {peer:14.2f} ({peer / tvm:.2f}x) {dense:10.2f}   {trials}")
figure, axes = plt.subplots(figsize=(6, 4))
for form, marker in (("dense", "o"), ("gated", "s")):
    points = [(minute, tvm) for f, minute, tvm, *_ in rows if f == form]
    axes.plot(*zip(*points), marker=marker, label=f"tvm-{form}" + (" (0.548 of dense FLOPs)" if form == "gated" else ""))
peers = [peer for *_, peer, _, _ in rows]
axes.axhspan(min(peers), max(peers), color="grey", alpha=0.3, label="fastest dense peer (ONNX Runtime / OpenVINO), each run")
axes.set_xlabel("minutes of `lcnet-tvm tune` for the form (2-core AMD EPYC)")
axes.set_ylabel("median ms per inference, batch 1")
axes.set_title("LC-ResNet-18 224x224, x86-avx512, tuned from scratch")
axes.set_ylim(bottom=0)
axes.legend(fontsize=8)
figure.tight_layout()
figure.savefig(here / "curve.png", dpi=100)
