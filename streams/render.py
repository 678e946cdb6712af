"""``conveyor graph``: a pipeline as text, Mermaid or Graphviz DOT."""

from __future__ import annotations

from streams.graph import TERMINALS, GraphSpec, Node

__all__ = ["render"]


def _edges(node: Node) -> list[tuple[str, str, str]]:
    """(target, label, style) per edge: style is "flow", "fanout", "fallback" or "limit"."""
    out: list[tuple[str, str, str]] = []
    for fld, target in node.edges():
        if fld.startswith("routes."):
            out.append((target, fld.removeprefix("routes."), "flow"))
        elif fld == "next" and isinstance(node.next, list):
            out.append((target, "parallel", "fanout"))
        elif fld == "map.to":
            out.append((target, f"map over {node.map.over}" if node.map else "map", "fanout"))
        elif fld == "fallback":
            out.append((target, "fallback", "fallback"))
        elif fld == "on_limit":
            out.append((target, f"after {node.max_visits} visits", "limit"))
        else:
            out.append((target, "", "flow"))
    return out


def _describe(node: Node) -> str:
    bits = [f"step {node.step}"]
    if node.join is not None:
        policy = node.join.policy if isinstance(node.join.policy, str) else f"at_least {node.join.policy.at_least}"
        bits.append(f"join {policy}" + (f", {node.join.timeout_s:g}s" if node.join.timeout_s else ""))
    if node.max_visits:
        bits.append(f"max_visits {node.max_visits}")
    return ", ".join(bits)


def text(spec: GraphSpec) -> str:
    lines = [f"pipeline {spec.name} (entry {spec.entry})"]
    for node in spec.nodes:
        lines.append(f"  {node.name}  [{_describe(node)}]")
        for target, label, _ in _edges(node):
            lines.append(f"    -> {target}" + (f"  ({label})" if label else ""))
    if spec.result:
        lines.append(f"  result: {', '.join(spec.result)}")
    return "\n".join(lines)


def _id(name: str) -> str:
    return {"$end": "END", "$reject": "REJECT", "$block": "BLOCK", "$fail": "FAIL"}.get(name, name.replace("-", "_"))


def mermaid(spec: GraphSpec) -> str:
    lines = ["flowchart TD", "  START((request))", f"  START --> {_id(spec.entry)}"]
    for node in spec.nodes:
        shape = f"{{{{{node.name}}}}}" if node.join is not None else f"[{node.name}]"
        lines.append(f"  {_id(node.name)}{shape}")
    for terminal in TERMINALS:
        if any(terminal in n.targets() for n in spec.nodes):
            lines.append(f"  {_id(terminal)}(({terminal}))")
    arrows = {"flow": "-->", "fanout": "==>", "fallback": "-.->", "limit": "-.->"}
    for node in spec.nodes:
        for target, label, style in _edges(node):
            arrow = arrows[style]
            lines.append(f"  {_id(node.name)} {arrow}{'|' + label + '|' if label else ''} {_id(target)}")
    return "\n".join(lines)


def dot(spec: GraphSpec) -> str:
    lines = [f'digraph "{spec.name}" {{', "  rankdir=TB;", '  start [shape=point];', f'  start -> "{spec.entry}";']
    for node in spec.nodes:
        shape = "diamond" if node.join is not None else "box"
        lines.append(f'  "{node.name}" [shape={shape}, label="{node.name}\\n{_describe(node)}"];')
    styles = {"flow": "solid", "fanout": "bold", "fallback": "dashed", "limit": "dotted"}
    for node in spec.nodes:
        for target, label, style in _edges(node):
            lines.append(f'  "{node.name}" -> "{target}" [style={styles[style]}, label="{label}"];')
    lines.append("}")
    return "\n".join(lines)


def render(spec: GraphSpec, fmt: str = "text") -> str:
    return {"text": text, "mermaid": mermaid, "dot": dot}[fmt](spec)
