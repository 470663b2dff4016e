"""Names of the systems ``lcnet-tvm bench`` measures (no heavy imports: the CLI's help lists them)."""

#: The eager PyTorch ways to run the model; tvm-gated's ``speedup_vs_best_eager`` is over the fastest.
EAGER_SYSTEMS = ("eager-dense", "eager-mask", "eager-skip", "torch-compile")
#: TVM system -> the gate form it is compiled with (:mod:`lcnet_tvm.compiler.gate_forms`).
TVM_FORMS = {"tvm-dense": "dense", "tvm-mask": "mask", "tvm-gated": "gated"}
#: Runtimes a user could run an ONNX export of the model in instead of ours (:mod:`lcnet_tvm.evaluation.peers`):
#: system -> (runtime, form); form "dense" is the backbone without gates, "mask" the LC-Net in mask form.
PEER_FORMS = {
    "ort-dense": ("onnxruntime", "dense"),
    "ort-mask": ("onnxruntime", "mask"),
    "openvino-dense": ("openvino", "dense"),
    "openvino-mask": ("openvino", "mask"),
}
SYSTEMS = (*EAGER_SYSTEMS, *TVM_FORMS, *PEER_FORMS)
#: Every way to run the model without our compiler; ``speedup_vs_best_peer`` is over the fastest.
NON_TVM_SYSTEMS = (*EAGER_SYSTEMS, *PEER_FORMS)
#: The best runtimes a user could pick for the dense model: what our gated code must beat by its saved FLOPs.
DENSE_PEERS = tuple(name for name, (_, form) in PEER_FORMS.items() if form == "dense")
#: Systems that compute the dense backbone (the others compute the LC-Net): whose logits are checked against which eager model.
DENSE_SYSTEMS = ("eager-dense", "tvm-dense", *DENSE_PEERS)
