#!/usr/bin/env python3
"""Checks that the kernel's modules import only downward across the layers in docs/layers.txt.

    scripts/layer-check.py [--layers FILE] [--src DIR] [--graph] [--quiet] [--self-test]

Reads every `crate::…` path in src/ (use lines, grouped uses, inline paths and exported macros),
outside `#[cfg(test)]` modules and comments, resolves it to the file that defines it, and
classifies each file→file edge by the layers file:

    <layer number> <path glob>      e.g.  "1 src/arch/ppc64/*.rs"   (first match wins)
    seam <from glob> -> <to glob>   an upward edge that is part of the design (named, counted)

An edge from layer a to layer b > a is *upward*. Upward edges that are not declared seams fail
the check. The report also gives the strongly connected components (import circles) of files,
so a reader sees what still depends on what in both directions. Exit 0 when there is no
undeclared upward edge, 1 otherwise, 2 on a usage error.
"""
import argparse
import fnmatch
import os
import re
import sys


def strip_comments(text):
    # Line comments (incl. doc comments) and block comments; strings are rare enough in paths.
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def strip_test_modules(text):
    """Removes `#[cfg(test)]` and `#[cfg(feature = "ktests")]` modules: tests may reach anywhere."""
    out, i = [], 0
    pat = re.compile(r"#\[cfg\((test|feature\s*=\s*\"ktests\")\)\]\s*(pub\s+)?mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def expand_group(s, pos, prefix, out):
    """Parses a use-tree starting at s[pos] (after `prefix::`); appends full paths to out."""
    # s[pos] is '{': items separated by commas, each item a path possibly ending in a group.
    assert s[pos] == "{"
    pos += 1
    while pos < len(s):
        while pos < len(s) and s[pos] in " \t\n,":
            pos += 1
        if pos < len(s) and s[pos] == "}":
            return pos + 1
        m = re.compile(r"(\w+(?:\s*::\s*\w+)*)(\s*::\s*)?").match(s, pos)
        if not m:
            # `self`, `*`, or something unexpected: skip to the next separator.
            m2 = re.compile(r"[^,}{]*").match(s, pos)
            pos = m2.end()
            continue
        path = re.sub(r"\s+", "", m.group(1))
        pos = m.end()
        if m.group(2) and pos < len(s) and s[pos] == "{":
            pos = expand_group(s, pos, prefix + [path], out)
        else:
            if m.group(2):  # `a::*`
                pass
            out.append("::".join(prefix + [path]))
        # skip `as alias`
        m3 = re.compile(r"\s+as\s+\w+").match(s, pos)
        if m3:
            pos = m3.end()
    return pos


def crate_paths(text, kw="crate"):
    paths = []
    for m in re.finditer(r"(?<![\w:])" + kw + r"\s*::\s*", text):
        pos = m.end()
        if pos < len(text) and text[pos] == "{":
            expand_group(text, pos, [], paths)
            continue
        m2 = re.compile(r"(\w+(?:\s*::\s*\w+)*)(\s*::\s*\{)?").match(text, pos)
        if not m2:
            continue
        path = re.sub(r"\s+", "", m2.group(1))
        if m2.group(2):
            expand_group(text, m2.end() - 1, [path], paths)
        else:
            paths.append(path)
    return paths


def module_files(src):
    """module path ('a::b') -> file, for every .rs under src."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel == ["main"] or rel == ["lib"]:
                mods[""] = full
                continue
            if rel[-1] == "mod":
                rel = rel[:-1]
            mods["::".join(rel)] = full
    return mods


def exported_macros(mods):
    macros = {}
    for f in mods.values():
        text = open(f, encoding="utf-8").read()
        for m in re.finditer(r"#\[macro_export\][^\n]*\n(?:\s*#\[[^\n]*\n)*\s*macro_rules!\s*(\w+)", text):
            macros[m.group(1)] = f
    return macros


def resolve(path, mods, macros):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        key = "::".join(parts[:n])
        if key in mods:
            return mods[key]
    if parts[0] in macros:
        return macros[parts[0]]
    return mods.get("")  # an item of the crate root


def load_layers(path):
    layers, seams = [], []
    for ln, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split()
        if f[0] == "seam" and len(f) == 4 and f[2] == "->":
            seams.append((f[1], f[3]))
        elif f[0].isdigit() and len(f) == 2:
            layers.append((int(f[0]), f[1]))
        else:
            sys.exit(f"layer-check: {path}:{ln}: cannot parse '{line}'")
    return layers, seams


def layer_of(f, layers):
    for n, g in layers:
        if fnmatch.fnmatch(f, g):
            return n
    return None


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--layers", default=os.path.join(root, "docs/layers.txt"))
    ap.add_argument("--src", default=os.path.join(root, "src"))
    ap.add_argument("--graph", action="store_true", help="print every edge")
    ap.add_argument("--quiet", action="store_true", help="only the summary lines")
    ap.add_argument("--self-test", action="store_true", help="check this script on a small tree")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    os.chdir(os.path.dirname(os.path.abspath(a.src)))
    src = os.path.relpath(a.src)
    layers, seams = load_layers(a.layers)
    mods = module_files(src)
    macros = exported_macros(mods)
    edges, nodes = {}, set(mods.values())
    modpath = {v: k for k, v in mods.items()}
    for f in sorted(nodes):
        text = strip_test_modules(strip_comments(open(f, encoding="utf-8").read()))
        me = modpath[f].split("::") if modpath[f] else []
        # A mod.rs (or main.rs) is its module; a leaf file's `super` is its parent.
        is_dir = f.endswith("mod.rs") or modpath[f] == ""
        here = me if is_dir else me[:-1]
        paths = crate_paths(text)
        own = set(re.findall(r"\b(?:fn|struct|enum|type|const|static|trait|mod|macro_rules!)\s+(\w+)", text))
        for p in crate_paths(text, "super"):
            # `super::` inside an inline `mod x { }` block means this file's own module: take
            # that reading when the name is one of its submodules or one of its own items.
            if p.split("::")[0] in own and not is_dir:
                continue
            if is_dir and "::".join(me + [p.split("::")[0]]) in mods:
                paths.append("::".join(me + [p]))
            else:
                paths.append("::".join((here[:-1] if is_dir else here) + [p]))
        paths += ["::".join(me + [p]) for p in crate_paths(text, "self")]
        # `use child::…` / `pub use child::*` inside a module file: a path relative to it.
        for m in re.finditer(r"\buse\s+(\w+)\s*::", text):
            if m.group(1) not in ("crate", "super", "self", "core", "alloc", "std") and \
                    "::".join(me + [m.group(1)]) in mods:
                paths += ["::".join(me + [p]) for p in crate_paths(text[m.start(1):m.end()+200], m.group(1))[:1]]
        for p in paths:
            t = resolve(p, mods, macros)
            if t and t != f:
                edges.setdefault(f, set()).add(t)
    unlayered = sorted(f for f in nodes if layer_of(f, layers) is None)
    up, seam_edges, total = [], [], 0
    for f in sorted(edges):
        for t in sorted(edges[f]):
            total += 1
            lf, lt = layer_of(f, layers), layer_of(t, layers)
            if a.graph:
                print(f"edge {f} ({lf}) -> {t} ({lt})")
            if lf is None or lt is None or lt <= lf:
                continue
            if any(fnmatch.fnmatch(f, s) and fnmatch.fnmatch(t, d) for s, d in seams):
                seam_edges.append((f, t))
            else:
                up.append((f, lf, t, lt))
    circles = sccs(nodes, edges)
    no_seams = {f: {t for t in ts if (f, t) not in set(seam_edges)} for f, ts in edges.items()}
    biggest_without_seams = max((len(c) for c in sccs(nodes, no_seams)), default=0)
    if not a.quiet:
        for f, t in seam_edges:
            print(f"seam      {f} -> {t}")
        for f, lf, t, lt in up:
            print(f"UPWARD    {f} (layer {lf}) -> {t} (layer {lt})")
        for f in unlayered:
            print(f"UNLAYERED {f} (no line of {a.layers} matches it)")
        for c in circles:
            print(f"circle of {len(c)} files: {' '.join(c)}")
    biggest = max((len(c) for c in circles), default=0)
    print(f"layer-check: {len(nodes)} files, {total} import edges, {len(up)} upward, "
          f"{len(seam_edges)} through declared seams, {len(unlayered)} unlayered; "
          f"{len(circles)} circles, largest {biggest} files ({biggest_without_seams} without the seams)")
    return 1 if up or unlayered else 0


def self_test():
    """A tree with one downward import, one seam, one upward import hidden in each way the
    scanner must see (grouped use, inline path, super:: in an inline module, exported macro),
    and imports it must not count (comments, host tests, in-kernel tests)."""
    import subprocess
    import tempfile
    files = {
        "src/main.rs": "mod low; mod high; mod mid;\n",
        "src/low/mod.rs": "pub mod a;\nmod inner { use super::a::X; }\n",
        "src/low/a.rs": "pub struct X;\n#[macro_export]\nmacro_rules! lowmac { () => {} }\n",
        "src/mid.rs": "use crate::low::a::X;\nfn f() { crate::lowmac!(); }\n",
        "src/high.rs": "use crate::{low::a::X, mid};\n",
    }
    cases = [
        ("clean", {}, 0, "0 upward"),
        ("grouped use", {"src/low/a.rs": "use crate::{mid, low};\npub struct X;\n"}, 1, "UPWARD    src/low/a.rs (layer 0) -> src/mid.rs (layer 1)"),
        ("inline path", {"src/mid.rs": "fn f() { crate::high::g(); }\n"}, 1, "UPWARD    src/mid.rs (layer 1) -> src/high.rs (layer 2)"),
        ("macro", {"src/low/a.rs": "#[macro_export]\nmacro_rules! lowmac { () => {} }\n", "src/high.rs": "#[macro_export]\nmacro_rules! himac { () => {} }\n", "src/mid.rs": "fn f() { crate::himac!(); }\n"}, 1, "-> src/high.rs (layer 2)"),
        ("comment, host test, ktests", {"src/low/a.rs": "// crate::high::g\n#[cfg(test)]\nmod tests { use crate::high; }\n#[cfg(feature = \"ktests\")]\nmod kt { use crate::mid; }\npub struct X;\n#[macro_export]\nmacro_rules! lowmac { () => {} }\n"}, 0, "0 upward"),
        ("seam", {"src/low/a.rs": "use crate::high;\npub struct X;\n#[macro_export]\nmacro_rules! lowmac { () => {} }\n"}, 0, "1 through declared seams"),
        ("unlayered", {"src/other.rs": "\n"}, 1, "UNLAYERED src/other.rs"),
    ]
    layers = "0 src/low/*\n1 src/mid.rs\n2 src/high.rs\n2 src/main.rs\n"
    failed = 0
    for name, change, want_rc, want_text in cases:
        with tempfile.TemporaryDirectory() as d:
            for path, text in {**files, **change}.items():
                os.makedirs(os.path.dirname(os.path.join(d, path)), exist_ok=True)
                open(os.path.join(d, path), "w").write(text)
            extra = "seam src/low/a.rs -> src/high.rs\n" if name == "seam" else ""
            open(os.path.join(d, "layers.txt"), "w").write(layers + extra)
            r = subprocess.run([sys.executable, os.path.abspath(__file__), "--layers",
                                os.path.join(d, "layers.txt"), "--src", os.path.join(d, "src")],
                               capture_output=True, text=True)
            ok = r.returncode == want_rc and want_text in r.stdout
            failed += not ok
            print(f"self-test {name}: {'ok' if ok else 'FAILED'} (exit {r.returncode})")
            if not ok:
                print(r.stdout + r.stderr)
    print(f"layer-check self-test: {len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
