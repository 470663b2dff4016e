"""Gate discovery: which ops of an imported LC-Net each gate controls (an analysis; the IR is not changed)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import networkx as nx
import tvm
from tvm import relax

from .executed_work import flat_bindings, num_gates, require_work_flags, returned_fields

logger = logging.getLogger(__name__)

#: Ops that only re-shape a gate score for broadcasting.
_BROADCAST_OPS = {"relax.expand_dims", "relax.reshape"}
#: Per-channel ops between a conv and the multiplication by a channel score.
_PER_CHANNEL_OPS = {
    "relax.nn.relu", "relax.nn.batch_norm", "relax.add", "relax.multiply", "relax.subtract", "relax.divide"
}
_SINK = "<outputs>"
#: ``main``'s attribute giving each gate's kind ("layer" or "channel") in score-output order, set by
#: the importer, which knows the gate modules: a width-1 channel gate's score is shaped (N, 1) like a
#: layer gate's, so the IR alone cannot tell them apart.
GATE_KINDS_ATTR = "lcnet_gate_kinds"


@dataclass
class GateRegion:
    """One gate of the graph and the ops its decision controls.

    ``kind == "layer"``: ``region`` holds every op that only the gated branch
    needs (post-dominated by the multiplication by the score): skipped when the
    gate closes. ``kind == "channel"``: ``producers`` compute the channels the
    score selects, ``chain`` holds the producer and the per-channel ops after it
    up to the gated tensor, ``consumers`` read the gated channels. ``problem``
    says why a gate was not understood (then it must stay in mask form).
    """

    index: int
    kind: str
    score: relax.Var
    multiply: relax.Var | None = None
    region: list[relax.Var] = field(default_factory=list)
    controlled_convs: int = 0
    producers: list[relax.Var] = field(default_factory=list)
    chain: list[relax.Var] = field(default_factory=list)
    consumers: list[relax.Var] = field(default_factory=list)
    dense_flops: int = 0
    problem: str = ""

    def to_json(self) -> dict:
        """What the gate controls, by the IR's variable names (recorded in artifacts, shown by --explain)."""
        return {
            "controls": [str(var.name) for var in self.region + self.chain + self.consumers],
            "controlled_convs": self.controlled_convs,
            "dense_flops": self.dense_flops,
            "understood": not self.problem,
            "problem": self.problem,
        }


def op_name(value) -> str:
    return getattr(getattr(value, "op", None), "name", "")


def _shape(var: relax.Expr) -> tuple[int, ...]:
    shape = getattr(var.ty, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else ()


def conv_flops(var: relax.Var, call: relax.Call) -> int:
    """Per-sample FLOPs of a conv2d binding (2 x multiply-accumulates), from the IR's shapes."""
    weight_shape = _shape(call.args[1])  # OIHW: I is already in_channels / groups
    out_shape = _shape(var)
    return 2 * math.prod(out_shape[1:]) * math.prod(weight_shape[1:])


class DataflowGraph:
    """The bindings of an LC-Net ``main`` as a networkx DiGraph (an edge from each used var to its user).

    The sink stands for the model's results, the logits and the gate scores.
    Work flags (see :mod:`.executed_work`) are not results: what only they need
    belongs to the code that reports it.
    """

    def __init__(self, func: relax.Function):
        self.graph = nx.DiGraph()
        self.values: dict[relax.Var, relax.Expr] = {}
        for param in func.params:
            self.graph.add_node(param)
        returned = func.body.body
        for binding in flat_bindings(func):
            if binding.var.same_as(returned):
                continue  # the returned tuple: its fields are wired to the sink below
            self.values[binding.var] = binding.value
            self.graph.add_node(binding.var)
            for used in relax.analysis.free_vars(binding.value):
                self.graph.add_edge(used, binding.var)
        fields = returned_fields(func)
        self.outputs = fields[: 1 + num_gates(func)]
        for var in relax.analysis.free_vars(relax.Tuple(self.outputs)):
            self.graph.add_edge(var, _SINK)
        self.needed = nx.ancestors(self.graph, _SINK)
        reverse = self.graph.reverse(copy=False)
        self._post_dominator = nx.immediate_dominators(reverse, _SINK)

    def op(self, var) -> str:
        return op_name(self.values.get(var))

    def users(self, var) -> list:
        return [user for user in self.graph.successors(var) if user != _SINK]

    def post_dominated_by(self, node, dominator) -> bool:
        while node != _SINK and node in self._post_dominator:
            if node == dominator:
                return True
            parent = self._post_dominator[node]
            if parent == node:
                return False
            node = parent
        return False


def _gated_multiplies(graph: DataflowGraph, score: relax.Var) -> list[tuple[relax.Var, relax.Var]]:
    """(multiply, gated tensor) pairs where ``score`` (re-shaped only) multiplies a 4-D tensor."""
    found, frontier = [], [score]
    while frontier:
        var = frontier.pop()
        for user in graph.users(var):
            if graph.op(user) in _BROADCAST_OPS:
                frontier.append(user)
            elif graph.op(user) == "relax.multiply":
                other = [arg for arg in graph.values[user].args if not arg.same_as(var)]
                if len(other) == 1 and len(_shape(other[0])) == 4:
                    found.append((user, other[0]))
    return found


def _channel_chain(graph: DataflowGraph, tensor: relax.Var) -> list[relax.Var]:
    """Walk back from ``tensor`` through per-channel ops to the conv2d that made its channels.

    Returns the chain from that conv to ``tensor`` in program order, or ``[]``.
    """
    chain, var, shape = [], tensor, _shape(tensor)  # per-channel ops keep the shape all along
    while var in graph.values:
        chain.append(var)
        op = graph.op(var)
        if op == "relax.nn.conv2d":
            return chain[::-1]
        value = graph.values[var]
        if isinstance(value, relax.TupleGetItem):
            var = value.tuple_value
            continue
        if op not in _PER_CHANNEL_OPS:
            return []
        # Follow the operand shaped like the result; the other one is a per-channel parameter.
        same_shape = [arg for arg in value.args if isinstance(arg, relax.Var) and _shape(arg) == shape]
        if len(same_shape) != 1:
            return []
        var = same_shape[0]
    return []


def _plain_conv_problem(graph: DataflowGraph, conv: relax.Var) -> str:
    """Why the channels of ``conv`` cannot be gathered, or ``""``."""
    attrs = graph.values[conv].attrs
    if int(attrs.groups) != 1:
        return f"{conv.name} is a grouped conv (groups={int(attrs.groups)}); only groups=1 convs are gathered"
    if (attrs.data_layout, attrs.kernel_layout) != ("NCHW", "OIHW"):
        return f"{conv.name} has layouts {attrs.data_layout}/{attrs.kernel_layout}; only NCHW/OIHW are gathered"
    return ""


def _channel_region_problem(graph: DataflowGraph, region: GateRegion, width: int) -> str:
    """Why a channel gate cannot be lowered, or ``""``; also reports the first offending op by name."""
    if not region.chain or _shape(region.chain[0])[1] != width:
        return "no conv2d producing the gated channels through per-channel ops"
    readers = graph.users(region.multiply)
    others = sorted({graph.op(user) or type(graph.values[user]).__name__ for user in readers} - {"relax.nn.conv2d"})
    if others:
        return f"the gated channels are also read by {', '.join(others)}, not only by convs"
    for var, following in zip(region.chain, region.chain[1:] + [region.multiply]):
        extra = [user for user in graph.users(var) if not user.same_as(following)]
        if extra:
            return f"{var.name} (between the producer and the gate) is also read by {extra[0].name}"
    for conv in region.producers + region.consumers:
        problem = _plain_conv_problem(graph, conv)
        if problem:
            return problem
    return ""


def find_gate_regions(func: relax.Function, kinds: tuple[str, ...] = ("layer", "channel")) -> list[GateRegion]:
    """The gates of ``kinds`` of an imported LC-Net ``main`` (gate scores are the outputs after the logits)."""
    graph = DataflowGraph(func)
    regions = []
    scores = graph.outputs[1:]
    for index, (score, kind) in enumerate(zip(scores, _gate_kinds(func, scores))):
        width = _shape(score)[-1] if _shape(score) else 0
        region = GateRegion(index, kind, score)
        if region.kind not in kinds:
            continue
        multiplies = _gated_multiplies(graph, score)
        if len(multiplies) != 1:
            region.problem = f"its score multiplies {len(multiplies)} tensors (expected exactly one)"
        elif region.kind == "layer":
            region.multiply, gated = multiplies[0]
            # The branch: what the gated tensor is computed from and nothing but the gate needs.
            branch = nx.ancestors(graph.graph, gated) | {gated}
            members = {var for var in graph.values if var in branch and graph.post_dominated_by(var, region.multiply)}
            # Work flags computed from the branch alone report on it: they go with it.
            for var, value in graph.values.items():
                inputs = relax.analysis.free_vars(value)
                if var not in graph.needed and inputs and all(used in members for used in inputs):
                    members.add(var)
            region.region = [var for var in graph.values if var in members]  # in program order
            convs = [var for var in region.region if graph.op(var) == "relax.nn.conv2d"]
            region.controlled_convs = len(convs)
            region.dense_flops = sum(conv_flops(var, graph.values[var]) for var in convs)
        else:
            region.multiply, gated = multiplies[0]
            region.chain = _channel_chain(graph, gated)
            region.producers = region.chain[:1]
            region.consumers = [user for user in graph.users(region.multiply) if graph.op(user) == "relax.nn.conv2d"]
            region.problem = _channel_region_problem(graph, region, width)
            region.controlled_convs = len(region.producers) + len(region.consumers)
            region.dense_flops = sum(conv_flops(v, graph.values[v]) for v in region.producers + region.consumers)
        if region.problem:
            logger.warning("gate %d (%s) left in mask form: %s", index, region.kind, region.problem)
        regions.append(region)
    return regions


def _gate_kinds(func: relax.Function, scores: list[relax.Var]) -> list[str]:
    """Each gate's kind: as the importer recorded it; in a module written by hand without the
    attribute, read from the score's width (1: a layer gate)."""
    if func.attrs is None or GATE_KINDS_ATTR not in func.attrs:
        return ["layer" if _shape(score)[-1:] == (1,) else "channel" for score in scores]
    kinds = [str(kind) for kind in func.attrs[GATE_KINDS_ATTR]]
    if len(kinds) != len(scores):
        raise ValueError(f"main's {GATE_KINDS_ATTR} names {len(kinds)} gates but main returns {len(scores)} gate scores")
    return kinds


def lowerable_regions(mod: tvm.IRModule, kind: str, pass_name: str) -> tuple[relax.Function, list[GateRegion]]:
    """For a lowering pass: ``main`` without dataflow blocks (a ``relax.If`` cannot sit in one) and
    its gates of ``kind`` that the analysis understood (the others stay in mask form)."""
    require_work_flags(mod["main"], pass_name)
    # The whole module goes in (main may call functions an earlier lowering added); only main comes out.
    func = relax.transform.ToNonDataflow()(mod)["main"]
    return func, [region for region in find_gate_regions(func, (kind,)) if not region.problem]
