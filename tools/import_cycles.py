#!/usr/bin/env python3
"""Import cycles between the top-level modules of each workspace crate.

For every crate under crates/, reads its src/ files, takes each `crate::NAME` path (including
`use crate::{a, b::c}` groups; comments are ignored, tests included) as an edge from the file's
top-level module to module NAME, and prints the strongly connected components with more than
one module. Exit status 1 when any crate has a cycle. Cycles between crates are impossible
(cargo rejects them). Usage: python3 tools/import_cycles.py [--graph]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")


def module_graph(src):
    edges = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main"):
                continue
            text = re.sub(r"//[^\n]*", "", open(os.path.join(root, f), encoding="utf-8").read())
            names = set(re.findall(r"\bcrate::(\w+)", text))
            for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
                names.update(re.findall(r"(?:^|,)\s*(\w+)", group))
            edges.setdefault(top, set()).update(n for n in names if n != top)
    return {k: {n for n in v if n in edges} for k, v in edges.items()}


def cycles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    bad = False
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        edges = module_graph(src)
        if "--graph" in sys.argv:
            for k in sorted(edges):
                print(f"{crate}: {k} -> {', '.join(sorted(edges[k])) or '-'}")
        found = cycles(edges)
        bad |= bool(found)
        print(f"{crate}: {'cycles ' + str(found) if found else 'no import cycles'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
