"""Op counts of a compiled XLA program (``jax.jit(f).lower(...).compile().as_text()``).

``kernels``: instructions of the non-fused computations that launch work (fusions by
kind, custom calls by target, and bare copies, transposes, pads, converts, ...);
``inside_fusions``: the layout-changing / data-moving ops hidden inside fusions.
"""

from __future__ import annotations

import re
from collections import Counter

_COMP = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*[^=]*?\s([a-z][\w\-]*)\(")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_KIND = re.compile(r"kind=(k\w+)")
_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_MOVERS = ("copy", "transpose", "pad", "concatenate", "convert", "slice", "dynamic-slice")
_SKIP = {
    "parameter",
    "constant",
    "get-tuple-element",
    "tuple",
    "bitcast",
    "while",
    "call",
    "conditional",
    "after-all",
    "partition-id",
    "replica-id",
    "opt-barrier",
}


def hlo_op_counts(text: str) -> dict:
    """Kernel-level and in-fusion op counts of an optimised HLO module's text."""
    comps: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m and "=" not in line.split("{")[0].split("(")[0]:
            current = m.group(1)
            comps[current] = []
        elif current is not None and line.strip() == "}":
            current = None
        elif current is not None:
            comps[current].append(line)
    fused: set[str] = set()
    for lines in comps.values():
        for line in lines:
            if " fusion(" in line or "custom-call(" in line or " reduce(" in line:
                fused.update(_CALLS.findall(line))
    # computations applied by reduce/scatter/sort are tiny lambdas: count them as fused
    for lines in comps.values():
        for line in lines:
            if "to_apply=" in line:
                fused.update(re.findall(r"to_apply=%?([\w.\-]+)", line))
    kernels: Counter = Counter()
    inside: Counter = Counter()
    for name, lines in comps.items():
        for line in lines:
            m = _INSTR.match(line)
            if not m:
                continue
            op = m.group(1)
            if name in fused:
                if op in _MOVERS:
                    inside[op] += 1
                continue
            if op in _SKIP:
                continue
            if op == "fusion":
                k = _KIND.search(line)
                kernels[f"fusion:{k.group(1) if k else '?'}"] += 1
            elif op == "custom-call":
                t = _TARGET.search(line)
                kernels[f"custom-call:{t.group(1) if t else '?'}"] += 1
            else:
                kernels[op] += 1
    total = sum(kernels.values())
    return {"kernels_total": total, "kernels": dict(kernels), "inside_fusions": dict(inside)}
