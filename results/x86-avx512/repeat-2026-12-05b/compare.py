"""Two runs of the same bench command side by side: per system the medians, round quartiles and their difference;
the ratios. Usage: python3 compare.py FOLDER (holding r20_1/2.json and r56_1/2.json)."""
import json, sys
d = sys.argv[1]
for m in ("r20","r56"):
    a=json.load(open(f"{d}/{m}_1.json")); b=json.load(open(f"{d}/{m}_2.json"))
    pa=a['points'][0]['systems']; pb=b['points'][0]['systems']
    print(m, "rejected", a.get('rejected'), b.get('rejected'))
    for k in pa:
        x=pa[k]['median_ms']; y=pb[k]['median_ms']
        print(f"  {k:15s} {x:7.3f} ({pa[k]['round_median_q25_ms']:.3f}-{pa[k]['round_median_q75_ms']:.3f})  {y:7.3f} ({pb[k]['round_median_q25_ms']:.3f}-{pb[k]['round_median_q75_ms']:.3f})  diff {abs(x-y)/min(x,y)*100:5.1f}%  err {pa[k].get('logits_max_scaled_error',0):.1e}/{pa[k].get('logits_tolerance',0):.1e}")
    for key in ('speedup_vs_best_eager','speedup_vs_best_peer','realization_ratio','peer_realization_ratio','tvm_dense_vs_best_dense_peer'):
        print("  ",key, round(a['points'][0][key],3), round(b['points'][0][key],3))
