"""Experiment: train on mixed digits with options; print gate dynamics."""
import sys, time, json, torch, numpy as np
from lcnet_tvm.model.data import load_mixed_digits
from lcnet_tvm.model.resnet import LCResNet, zoo_config
from lcnet_tvm.model.train import train, evaluate
from lcnet_tvm.model.train_config import TrainConfig
from lcnet_tvm.model.flops import FlopsCounter
kw=json.loads(sys.argv[1]); out=sys.argv[2]; torch.set_num_threads(int(kw.pop("threads",2)))
copies=kw.pop("hard_copies",2)
d=load_mixed_digits(hard_copies=copies)
torch.manual_seed(0)
m=LCResNet(zoo_config("lcnet_resnet20_cifar"))
cfg=TrainConfig(**kw)
t=time.time()
r=train(m,d,cfg,progress=False)
print("train s",time.time()-t, kw, flush=True)
c=FlopsCounter.from_model(m,(3,32,32))
clean=d.test_difficulty.level==0
e=evaluate(m,d.x_test,d.y_test,c)
g=e["gates"]
print("all", e["accuracy"], round(e["executed_flops_fraction"],3), "layer patterns", g["distinct_layer_patterns"])
for name,mask in [("clean",clean),("hard",~clean)]:
    e=evaluate(m,d.x_test[mask],d.y_test[mask],c)
    print(name, e["accuracy"], round(e["executed_flops_fraction"],3), e["gates"]["distinct_layer_patterns"], [ g["kept_fraction"] for g in e["gates"]["per_gate"] if g["kind"]=="layer"])
print([ (g["kept_fraction"], g["kept_fraction_std_over_samples"]) for g in g["per_gate"] if g["kind"]=="channel"])
torch.save(m.state_dict(), out)
