"""Names of the systems ``lcnet-tvm bench`` measures (no heavy imports: the CLI's help lists them)."""

SYSTEMS = ("eager-dense", "eager-mask", "eager-skip", "torch-compile", "tvm-dense", "tvm-mask", "tvm-gated")
#: Ways to run the model without our compiler; tvm-gated's speed-up is over the fastest of them.
EAGER_SYSTEMS = ("eager-dense", "eager-mask", "eager-skip", "torch-compile")
#: TVM system -> the gate form it is compiled with (:mod:`lcnet_tvm.gate_forms`).
TVM_FORMS = {"tvm-dense": "dense", "tvm-mask": "mask", "tvm-gated": "lowered"}
