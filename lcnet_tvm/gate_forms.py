"""How gates are compiled (kept free of heavy imports: the CLI reads it without importing TVM).

``mask``: every block and channel is computed, then multiplied by the gate scores.
``lowered``: layer gates the analysis understands become conditional subgraphs
(a skipped block is not computed); channel gates stay in mask form for now.
"""

GATE_FORMS = ("mask", "lowered")
