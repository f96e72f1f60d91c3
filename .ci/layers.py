#!/usr/bin/env python3
"""Finds import cycles between the library's folders.

Reads every `use crate::...` (and `crate::...` path in code) of every
src/**/*.rs (src/bin/ excluded: the CLI uses the library from outside),
maps the importing file and the imported path each to the folder it is in,
and prints every strongly connected component of more than one folder.
Files directly in src/ (`error.rs`, `name.rs`, `manager.rs`, ...) are the
crate's vocabulary and facade, not folders: they are left out. Run twice:
at the level of top folders (`storage`, `fs`, `paths`, ...), and of every
folder (`storage/opening`, `storage/lifecycle`, ...); then the files of
each folder among themselves. Test modules count too. Exit status 1 on a
cycle between folders; a cycle between the files of one folder is printed,
and fails too with `--files`.
"""
import pathlib, re, sys
from collections import defaultdict

USE = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*|\{)")


def node(parts, src, depth):
    """The folder (up to `depth` levels) that module path `parts` is in."""
    path = src
    taken = []
    for p in parts:
        if (path / p).is_dir():
            path = path / p
            taken.append(p)
        else:
            break
        if len(taken) == depth:
            break
    return "/".join(taken) if taken else None


def edges(src, depth):
    graph = defaultdict(set)
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        if rel.parts[0] == "bin":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "mod":
            parts = parts[:-1]
        here = node(parts, src, depth)
        # Code only: a doc link is no import.
        text = "\n".join(line.split("//")[0] for line in f.read_text().splitlines())
        for m in re.finditer(r"\bcrate::([a-z_][a-z0-9_:]*)", text):
            target = node([p for p in m.group(1).split("::") if p], src, depth)
            if target and here and target != here:
                graph[here].add(target)
    return graph


def cycles(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def file_edges(src):
    """Imports between the files of one folder (`super::x`, `crate::f::x`)."""
    graph = defaultdict(set)
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        if rel.parts[0] == "bin" or len(rel.parts) < 2 or rel.stem == "mod":
            continue
        folder = rel.parent.as_posix()
        here = f"{folder}/{rel.stem}"
        mod_path = "crate::" + folder.replace("/", "::") + "::"
        text = "\n".join(line.split("//")[0] for line in f.read_text().splitlines())
        for m in re.finditer(r"(?:\bsuper::|" + re.escape(mod_path) + r")([a-z_][a-z0-9_]*)", text):
            sibling = src / folder / f"{m.group(1)}.rs"
            if sibling.is_file() and m.group(1) != rel.stem:
                graph[here].add(f"{folder}/{m.group(1)}")
    return graph


def main():
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = pathlib.Path(paths[0] if paths else "src")
    bad = 0
    for depth, what in [(1, "top folders"), (9, "folders")]:
        graph = edges(src, depth)
        found = cycles(graph)
        for comp in found:
            print(f"cycle between {what}: {' <-> '.join(comp)}")
            for a in comp:
                for b in sorted(graph[a] & set(comp)):
                    print(f"    {a} -> {b}")
        nodes = set(graph) | {b for v in graph.values() for b in v}
        print(f"{what}: {len(nodes)} nodes, {sum(map(len, graph.values()))} edges, {len(found)} cycle(s)", file=sys.stderr)
        bad += len(found)
    graph = file_edges(src)
    found = cycles(graph)
    for comp in found:
        print(f"cycle between files of one folder: {' <-> '.join(comp)}")
    print(f"files: {len(graph)} importing, {len(found)} cycle(s)", file=sys.stderr)
    if "--files" in sys.argv[1:]:
        bad += len(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
