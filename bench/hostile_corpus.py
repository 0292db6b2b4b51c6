# ruff: noqa: E501, UP031  (generated corpus tables read best one case a line; JSON templates use %-format to keep braces literal)
"""Hostile-input corpus: per class of hostile input, how often the real CLI refuses cleanly.

Every case is generated deterministically (seeded RNG, no network) and run
through the real ``seawall`` CLI in a subprocess, on a fresh SQLite datastore
copied from a template (the seed's three documents applied), with a 10 s
timeout; wall time and peak RSS come from ``os.wait4`` of that child. The
outcome is classified:

* clean refusal: non-zero exit, no "Traceback", the message names the input
  (file path, resource name or datastore path), and the datastore is unchanged
  (logical dump of its tables, or the file bytes for the datastore-fault class);
* refused, unclean: non-zero exit without traceback, but the message does not name
  the input or the datastore changed (or a busy store took more than 3 s);
* traceback: "Traceback" in the output, a timeout, death by a signal, or a peak RSS
  above 500 MB;
* accepted / accepted with a warning: exit 0 (a warning when stderr says "warning").

The 2,000 random mutations of the seed are classified in-process (``load_text``,
the CLI's own parse + validation, in a pool of worker processes with a 10 s
timeout per case): ``ValidationFailed`` is a clean refusal, any other exception a
traceback. A sample of them also runs through the CLI, to check the two agree.

Writes bench/results/hostile-corpus.json and docs/hardening-corpus.md.

    .venv/bin/python bench/hostile_corpus.py [--out docs/hardening-corpus.md] [--json PATH]
        [--mutations 2000] [--classes a,b] [--slice N]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SEED_FILE = REPO / "examples" / "dos-mitigation.yaml"
DEFAULT_MD = REPO / "docs" / "hardening-corpus.md"
DEFAULT_JSON = REPO / "bench" / "results" / "hostile-corpus.json"
SEED = 20261202
TIMEOUT_S = 10.0
RSS_LIMIT_MB = 500.0
BUSY_LIMIT_S = 3.0
MAX_INPUT_BYTES = 256 << 20  # src/seawall/cli/inputs.py MAX_INPUT_BYTES (README: 256 MiB)
KINDS = ("HostEndpoint", "GlobalNetworkSet", "GlobalNetworkPolicy", "FelixConfiguration")
API = "projectcalico.org/v3"

CLEAN, UNCLEAN, TRACEBACK, ACCEPTED, WARNED = "clean refusal", "refused, unclean", "traceback", "accepted", "accepted with warning"


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "seawall"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "seawall"]


# ---------------------------------------------------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class Run:
    """What one case runs: argv after ``--datastore URL``, the datastore file, what the message must name."""

    argv: list[str]
    db: Path
    names: list[str]
    stdin: Path | None = None
    compare: str = "logical"  # logical | bytes | none
    preexec: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None
    busy: bool = False  # a locked store: the refusal must come within BUSY_LIMIT_S


@dataclasses.dataclass
class Case:
    cls: str
    desc: str
    expect: str  # refuse | accept | warn | any
    build: Callable[[Path, Path], Run]  # (case dir, template dir) -> Run


def seed_text() -> str:
    return SEED_FILE.read_text()


def seed_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(seed_text()) if d]


def _db_from(template: Path, tmp: Path) -> Path:
    db = tmp / "s.db"
    for f in template.glob("s.db*"):
        shutil.copy2(f, tmp / f.name)
    return db


def doc_case(cls: str, desc: str, content: str | bytes | Callable[[], str | bytes], *, expect: str = "refuse", ext: str = "yaml",
             command: str = "apply") -> Case:
    """A case that applies one file; ``content`` may be a callable, so big inputs are made only when run."""

    def build(tmp: Path, template: Path) -> Run:
        path = tmp / f"input.{ext}"
        data = content() if callable(content) else content
        path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return Run([command, "-f", str(path)], _db_from(template, tmp), [str(path)])

    return Case(cls, desc, expect, build)


def ydump(*docs: Any) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False, allow_unicode=True, width=10**9)


def gns(nets: list[Any], name: str = "corpus-set", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GlobalNetworkSet", "metadata": {"name": name, "labels": labels or {"dos-blacklist": "true"}},
            "spec": {"nets": nets}}


def hep(expected_ips: list[Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "HostEndpoint",
            "metadata": {"name": "corpus-host", "labels": {"apply-dos-mitigation": "true"}, **meta},
            "spec": {"interfaceName": "eth1", "node": "jasper", "expectedIPs": expected_ips}}


def gnp(ingress: list[dict[str, Any]], name: str = "corpus-policy", **spec: Any) -> dict[str, Any]:
    body = {"selector": "apply-dos-mitigation == 'true'", "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
            "ingress": ingress, **spec}
    return {"apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": body}


def felix(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "FelixConfiguration", "metadata": {"name": "default"}, "spec": spec}


# --- look-alike CIDRs -------------------------------------------------------------------------------------------------

DIGIT_SETS = {
    "arabic-indic": 0x0660, "ext-arabic-indic": 0x06F0, "devanagari": 0x0966, "fullwidth": 0xFF10, "math-bold": 0x1D7CE,
    "superscript": None,
}
SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"


def _swap_digits(text: str, family: str, rng: random.Random, *, all_digits: bool) -> str:
    def conv(ch: str) -> str:
        base = DIGIT_SETS[family]
        return SUPERSCRIPTS[int(ch)] if base is None else chr(base + int(ch))

    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    pick = set(positions) if all_digits else {rng.choice(positions)}
    return "".join(conv(ch) if i in pick else ch for i, ch in enumerate(text))


def lookalike_cases(rng: random.Random) -> list[Case]:
    cls = "look-alike CIDRs"
    bases = ["10.0.0.0/8", "1.2.3.4/32", "192.168.1.0/24", "2001:db8::/32", "fd00::1/128"]
    bad: list[tuple[str, str]] = []
    for family in DIGIT_SETS:
        for base in bases:
            for all_digits in (False, True):
                bad.append((f"{family} {'all' if all_digits else 'one'} digit(s) of {base}", _swap_digits(base, family, rng, all_digits=all_digits)))
    bad += [("IPv6 zone fe80::1%eth0", "fe80::1%eth0"), ("IPv6 zone in prefix fe80::%eth0/64", "fe80::%eth0/64"),
            ("IPv6 zone fe80::1%25eth0/128", "fe80::1%25eth0/128"), ("zone on IPv4 1.2.3.4%eth0", "1.2.3.4%eth0"),
            ("fullwidth dot 1．2．3．4/32", "1．2．3．4/32"), ("fullwidth slash 1.2.3.4／32", "1.2.3.4／32"),
            ("zero-width space in 10.0.0.0/8", "10.0.\u200b0.0/8"), ("trailing NBSP", "10.0.0.0/8\u00a0"),
            ("leading-zero octet 010.0.0.0/8", "010.0.0.0/8"), ("prefix /033", "10.0.0.0/033"), ("prefix /+8", "10.0.0.0/+8"),
            ("prefix /_8", "10.0.0.0/_8"), ("octet 1_0", "1_0.0.0.0/8"), ("IPv4-mapped ::ffff:1.2.3.4%x", "::ffff:1.2.3.4%x")]
    cases: list[Case] = []
    for i, (desc, value) in enumerate(bad):
        where = i % 5
        if where == 0:
            doc, place = gns(["1.2.3.4/32", value]), "GlobalNetworkSet spec.nets"
        elif where == 1:
            doc, place = gnp([{"action": "Deny", "source": {"nets": [value]}}]), "GNP ingress source.nets"
        elif where == 2:
            doc, place = gnp([{"action": "Deny", "source": {"notNets": [value]}}]), "GNP ingress source.notNets"
        elif where == 3:
            doc, place = gnp([{"action": "Deny", "destination": {"nets": [value]}}]), "GNP ingress destination.nets"
        else:
            doc, place = hep([value.split("/")[0]]), "HostEndpoint spec.expectedIPs"
        cases.append(doc_case(cls, f"{place}: {desc} ({value!r})", ydump(doc)))
    return cases


# --- YAML aliases --------------------------------------------------------------------------------------------------------

HEAD = f"apiVersion: {API}\nkind: GlobalNetworkSet\nmetadata:\n  name: corpus-set\n"


def alias_bomb(levels: int, width: int = 9, where: str = "labels") -> str:
    lines = [f'l0: &a0 [{",".join(["lol"] * width)}]']
    lines += [f"l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    if where == "labels":
        return HEAD + "  labels:\n" + "".join(f"    {line}\n" for line in lines)
    body = "".join(f"  - {line.split(': ', 1)[1]}\n" for line in lines)
    return HEAD + "spec:\n  nets:\n" + body


def alias_cases() -> list[Case]:
    cls = "YAML alias bombs"
    cases = [doc_case(cls, f"billion laughs depth {d} width {w} in {where}", alias_bomb(d, w, where))
             for d in range(3, 13) for w in (2, 9) for where in ("labels", "nets")]
    cases.append(doc_case(cls, "recursive alias &a [*a] in nets", HEAD + "spec:\n  nets: &a [*a]\n"))
    cases.append(doc_case(cls, "recursive mapping alias in labels", HEAD + "  labels: &a {x: *a}\n"))
    cases.append(doc_case(cls, "undefined alias *nope", HEAD + "spec:\n  nets: [*nope]\n"))
    cases.append(doc_case(cls, "alias bomb through merge keys <<", HEAD + "  labels:\n" + "".join(
        f"    m{i}: &m{i} {{" + ", ".join(f"<<: *m{i - 1}" if i else "a: b" for _ in range(1)) + f", k{i}: v}}\n" for i in range(30))))
    return cases


def anchor_cases() -> list[Case]:
    cls = "YAML anchors (legitimate)"
    text = (f"apiVersion: {API}\nkind: List\nitems:\n- apiVersion: {API}\n  kind: GlobalNetworkSet\n  metadata:\n    name: anchored\n"
            "    labels: &l {dos-blacklist: 'true'}\n  spec:\n    nets: [&n 7.7.7.0/24, 8.8.8.0/24]\n"
            f"- apiVersion: {API}\n  kind: GlobalNetworkSet\n  metadata:\n    name: anchored-2\n    labels: *l\n  spec:\n    nets: [*n]\n")
    sel = (f"apiVersion: {API}\nkind: GlobalNetworkPolicy\nmetadata: {{name: anchored}}\nspec:\n"
           "  selector: &s apply-dos-mitigation == 'true'\n  doNotTrack: true\n  applyOnForward: true\n  types: [Ingress]\n"
           "  ingress:\n  - &r {action: Deny, source: {selector: dos-blacklist == 'true'}}\n  - *r\n")
    merge = (f"apiVersion: {API}\nkind: GlobalNetworkSet\nmetadata:\n  name: merged\n  labels:\n    <<: {{dos-blacklist: 'true'}}\n"
             "spec:\n  nets: [9.9.9.0/24]\n")
    across = (f"apiVersion: {API}\nkind: GlobalNetworkSet\nmetadata:\n  name: a1\n  labels: &l {{dos-blacklist: 'true'}}\n"
              f"spec:\n  nets: [7.7.7.0/24]\n---\napiVersion: {API}\nkind: GlobalNetworkSet\nmetadata:\n  name: a2\n  labels: *l\n"
              "spec:\n  nets: [8.8.8.0/24]\n")
    return [doc_case(cls, "anchored labels and net reused across two sets of one List", text, expect="accept"),
            doc_case(cls, "alias to an anchor of the previous document (undefined in YAML)", across, expect="refuse"),
            doc_case(cls, "anchored rule reused twice in a policy", sel, expect="any"),
            doc_case(cls, "YAML 1.1 merge key << in labels (Go yaml.v2 accepts it)", merge, expect="any")]


# --- huge integers -------------------------------------------------------------------------------------------------------


def huge_int_cases() -> list[Case]:
    cls = "huge integers"
    cases = []
    for digits in (1_000, 4_300, 10_000, 100_000, 1_000_000):
        n = "9" * digits
        for field, make in (
            ("GNS spec.nets[0]", lambda v: gns([v])),
            ("GNP spec.order", lambda v: gnp([{"action": "Deny"}], order=v)),
            ("GNP ingress destination.ports[0]", lambda v: gnp([{"action": "Deny", "protocol": "TCP", "destination": {"ports": [v]}}])),
            ("FelixConfiguration spec.vxlanVNI", lambda v: felix(vxlanVNI=v)),
        ):
            doc = make("@@N@@")
            y = ydump(doc).replace("'@@N@@'", n)
            j = json.dumps(doc).replace('"@@N@@"', n)
            cases.append(doc_case(cls, f"{digits} digits in {field} (YAML)", y))
            cases.append(doc_case(cls, f"{digits} digits in {field} (JSON)", j, ext="json"))
        cases.append(doc_case(cls, f"-{digits} digits hex-looking 0x in YAML order", ydump(gnp([], order="@@N@@")).replace("'@@N@@'", "0x" + "f" * digits)))
        cases.append(doc_case(cls, f"{digits}-digit float exponent in JSON order", json.dumps(gnp([], order="@@N@@")).replace('"@@N@@"', "1e" + n[:digits]), ext="json"))
    return cases


# --- deep nesting --------------------------------------------------------------------------------------------------------


def deep_cases() -> list[Case]:
    cls = "deep nesting"
    cases = []
    for depth in (1_000, 10_000, 100_000):
        for shape in ("list", "map"):
            open_, close = ("[", "]") if shape == "list" else ('{"a":', "}")
            inner = open_ * depth + ("1" if shape == "map" else "") + close * depth
            for where in ("metadata.labels.a", "spec.nets", "top-level"):
                if where == "top-level":
                    j = inner
                elif where == "spec.nets":
                    j = '{"apiVersion":"%s","kind":"GlobalNetworkSet","metadata":{"name":"x"},"spec":{"nets":[%s]}}' % (API, inner)
                else:
                    j = '{"apiVersion":"%s","kind":"GlobalNetworkSet","metadata":{"name":"x","labels":{"a":%s}}}' % (API, inner)
                cases.append(doc_case(cls, f"JSON {shape} depth {depth} at {where}", j, ext="json"))
                yflow = j.replace('{"a":', "{a: ")
                cases.append(doc_case(cls, f"YAML flow {shape} depth {depth} at {where}", yflow, ext="yaml"))
        if depth <= 1_000:
            block = HEAD + "spec:\n  nets:\n" + "".join("  " * (i + 2) + "-\n" for i in range(depth))
            cases.append(doc_case(cls, f"YAML block list depth {depth}", block))
            block = HEAD + "  labels:\n" + "".join("  " * (i + 2) + "a:\n" for i in range(depth))
            cases.append(doc_case(cls, f"YAML block map depth {depth}", block))
    return cases


# --- wide structures -----------------------------------------------------------------------------------------------------


def wide_cases() -> list[Case]:
    cls = "wide structures"
    million = 1_000_000

    def labels() -> dict[str, str]:
        return {f"k{i}": "v" for i in range(million)}

    def with_meta(**meta: Any) -> Callable[[], str]:
        return lambda: json.dumps({**gns(["1.2.3.4/32"]), "metadata": {"name": "w", **{k: v() for k, v in meta.items()}}})

    def many_docs() -> str:
        one = f"apiVersion: {API}\nkind: GlobalNetworkSet\nmetadata:\n  name: s%d\nspec:\n  nets: [1.2.3.4/32]\n"
        return "---\n".join(one % i for i in range(100_000))

    return [
        doc_case(cls, "1M labels on a GlobalNetworkSet (JSON)", with_meta(labels=labels), expect="any", ext="json"),
        doc_case(cls, "1M annotations (JSON)", with_meta(annotations=labels), ext="json"),
        doc_case(cls, "1M unknown keys in spec (JSON)", lambda: json.dumps({**gns([]), "spec": {f"x{i}": 1 for i in range(million)}}), ext="json"),
        doc_case(cls, "1M labels (YAML flow)", with_meta(labels=labels), expect="any"),
        doc_case(cls, "1M junk nets (strings 'x')", lambda: json.dumps(gns(["x"] * million)), ext="json"),
        doc_case(cls, "1M nested empty lists in nets", lambda: json.dumps(gns([[]] * million)), ext="json"),
        doc_case(cls, "1M valid /32 nets (JSON, documented to apply)",
                 lambda: json.dumps(gns([f"{11 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.1/32" for i in range(million)])), expect="accept", ext="json"),
        doc_case(cls, "10 MB metadata.name", lambda: json.dumps(gns(["1.2.3.4/32"], name="a" * 10_000_000))),
        doc_case(cls, "10 MB label value", lambda: json.dumps(gns(["1.2.3.4/32"], labels={"k": "v" * 10_000_000}))),
        doc_case(cls, "10 MB selector", lambda: json.dumps(gnp([{"action": "Deny"}], selector="a == '" + "b" * 10_000_000 + "'"))),
        doc_case(cls, "10 MB net string (YAML plain scalar)", lambda: HEAD + "spec:\n  nets:\n  - " + "1" * 10_000_000 + "\n"),
        doc_case(cls, "100,000 documents in one stream", many_docs, expect="any"),
        doc_case(cls, "100,000 rules in one policy", lambda: json.dumps(gnp([{"action": "Deny", "source": {"nets": ["1.2.3.4/32"]}}] * 100_000)),
                 expect="any", ext="json"),
    ]


# --- duplicate keys ------------------------------------------------------------------------------------------------------


def _json_dup(obj: Any, target: tuple[Any, ...], here: tuple[Any, ...] = (), same: bool = True) -> str:
    if isinstance(obj, dict):
        parts = []
        for i, (k, v) in enumerate(obj.items()):
            parts.append(f"{json.dumps(k)}:{_json_dup(v, target, here + (k,), same)}")
            if here == target and i == 0:
                parts.append(f"{json.dumps(k)}:{json.dumps(v) if same else json.dumps('dup-' + str(v)[:10])}")
        return "{" + ",".join(parts) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_json_dup(v, target, here + (i,), same) for i, v in enumerate(obj)) + "]"
    return json.dumps(obj)


def _dict_paths(obj: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here] if isinstance(obj, dict) and obj else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out += _dict_paths(v, here + (k,))
    return out


def duplicate_cases() -> list[Case]:
    cls = "duplicate keys"
    cases = []
    docs = seed_docs()
    for n, doc in enumerate(docs):
        for path in _dict_paths(doc):
            for same in (True, False):
                where = ".".join(map(str, path)) or "<top>"
                cases.append(doc_case(cls, f"JSON doc {n + 1} duplicate first key at {where} ({'same' if same else 'other'} value)",
                                      _json_dup(doc, path, same=same), ext="json"))
    lines = seed_text().splitlines()
    import re

    key_line = re.compile(r"^(\s*)(- )?([\w.-]+):(.*)$")
    for i, line in enumerate(lines):
        m = key_line.match(line)
        if not m:
            continue
        indent = len(m.group(1)) + (2 if m.group(2) else 0)
        for same in (True, False):
            value = m.group(4) if same or not m.group(4).strip() else " dup-value"
            dup = lines[: i + 1] + [" " * indent + f"{m.group(3)}:{value}"] + lines[i + 1:]
            cases.append(doc_case(cls, f"YAML duplicate key {m.group(3)!r} after line {i + 1} ({'same' if same else 'other'} value)",
                                  "\n".join(dup) + "\n"))
    cases.append(doc_case(cls, "YAML duplicate merge-key injection of name", HEAD.replace("  name: corpus-set\n", "  <<: {name: a}\n  name: b\n"),
                          expect="any"))
    return cases


# --- unhashable / non-string keys ----------------------------------------------------------------------------------------


def unhashable_cases() -> list[Case]:
    cls = "unhashable YAML keys"
    keys = ["[a, b]", "{a: 1}", "[[1]]", "{}", "[]", "{a: [b]}"]
    cases = []
    for key in keys:
        cases.append(doc_case(cls, f"flow key {key} in labels", HEAD + f"  labels:\n    {key}: x\n"))
        cases.append(doc_case(cls, f"complex key ? {key} at top level", HEAD + f"? {key}\n: x\n"))
        cases.append(doc_case(cls, f"complex key ? {key} in spec", HEAD + f"spec:\n  ? {key}\n  : [1.2.3.4/32]\n"))
    for key in ["1", "null", "true", "1.5", "2001-01-01", "~", "0x10"]:
        cases.append(doc_case(cls, f"non-string scalar key {key} in labels", HEAD + f"  labels:\n    {key}: x\n"))
        cases.append(doc_case(cls, f"non-string scalar key {key} in spec", HEAD + f"spec:\n  {key}: x\n"))
    cases.append(doc_case(cls, "alias to a sequence used as a key", HEAD + "  labels:\n    a: &k [1]\n    *k : x\n"))
    return cases


# --- non-regular files ---------------------------------------------------------------------------------------------------


def _path_case(cls: str, desc: str, make: Callable[[Path], str], *, expect: str = "refuse", stdin: Callable[[Path], Path] | None = None) -> Case:
    def build(tmp: Path, template: Path) -> Run:
        arg = make(tmp)
        names = [arg] if arg != "-" else ["<stdin>"]
        return Run(["apply", "-f", arg], _db_from(template, tmp), names, stdin=stdin(tmp) if stdin else None)

    return Case(cls, desc, expect, build)


def nonregular_cases() -> list[Case]:
    cls = "non-regular / oversized files"

    def fifo(tmp: Path) -> str:
        os.mkfifo(tmp / "fifo.yaml")
        return str(tmp / "fifo.yaml")

    def empty_dir(tmp: Path) -> str:
        (tmp / "d").mkdir()
        return str(tmp / "d")

    def dir_with_fifo(tmp: Path) -> str:
        (tmp / "d").mkdir()
        os.mkfifo(tmp / "d" / "x.yaml")
        return str(tmp / "d")

    def loop(tmp: Path) -> str:
        os.symlink(tmp / "b.yaml", tmp / "a.yaml")
        os.symlink(tmp / "a.yaml", tmp / "b.yaml")
        return str(tmp / "a.yaml")

    def dir_loop(tmp: Path) -> str:
        (tmp / "d").mkdir()
        os.symlink(tmp / "d", tmp / "d" / "self")
        (tmp / "d" / "x.yaml").write_text("not: a resource\n")
        return str(tmp / "d")

    def dangling(tmp: Path) -> str:
        os.symlink(tmp / "missing.yaml", tmp / "dangling.yaml")
        return str(tmp / "dangling.yaml")

    def to_zero(tmp: Path) -> str:
        os.symlink("/dev/zero", tmp / "zero.yaml")
        return str(tmp / "zero.yaml")

    def sparse(size: int) -> Callable[[Path], str]:
        def make(tmp: Path) -> str:
            with open(tmp / "big.yaml", "wb") as f:
                f.truncate(size)
            return str(tmp / "big.yaml")

        return make

    def sparse_yaml_head(size: int) -> Callable[[Path], str]:
        def make(tmp: Path) -> str:
            with open(tmp / "big.yaml", "wb") as f:
                f.write(HEAD.encode() + b"  labels: {a: b}\n#")
                f.truncate(size)
            return str(tmp / "big.yaml")

        return make

    return [
        _path_case(cls, "-f /dev/zero", lambda t: "/dev/zero"),
        _path_case(cls, "-f /dev/urandom", lambda t: "/dev/urandom"),
        _path_case(cls, "-f /dev/null", lambda t: "/dev/null"),
        _path_case(cls, "-f /proc/self/environ (regular-looking, NUL-separated)", lambda t: "/proc/self/environ"),
        _path_case(cls, "-f a FIFO with no writer", fifo),
        _path_case(cls, "-f an empty directory", empty_dir),
        _path_case(cls, "-f a directory holding a FIFO named x.yaml", dir_with_fifo),
        _path_case(cls, "-f a directory with a symlink loop to itself", dir_loop),
        _path_case(cls, "-f a symlink loop a.yaml -> b.yaml -> a.yaml", loop),
        _path_case(cls, "-f a dangling symlink", dangling),
        _path_case(cls, "-f a symlink to /dev/zero", to_zero),
        _path_case(cls, "-f - with stdin from /dev/zero", lambda t: "-", stdin=lambda t: Path("/dev/zero")),
        _path_case(cls, f"sparse file of {MAX_INPUT_BYTES + 1} bytes (limit + 1)", sparse(MAX_INPUT_BYTES + 1)),
        _path_case(cls, "sparse file of 1 GiB", sparse(1 << 30)),
        _path_case(cls, f"sparse NUL file of exactly the limit ({MAX_INPUT_BYTES} bytes)", sparse(MAX_INPUT_BYTES)),
        _path_case(cls, "valid YAML head then 64 MiB of NUL bytes", sparse_yaml_head(64 << 20)),
        _path_case(cls, "-f - with 300 MiB on stdin (sparse file)", lambda t: "-", stdin=lambda t: Path(sparse(300 << 20)(t))),
    ]


# --- binary garbage ------------------------------------------------------------------------------------------------------


def binary_cases(rng: random.Random) -> list[Case]:
    cls = "binary / invalid UTF-8 / NUL"
    seed = seed_text().encode()
    cases = []
    for size in (1, 16, 1024, 65536, 1 << 20):
        for n in range(3):
            cases.append(doc_case(cls, f"{size} random bytes #{n}", rng.randbytes(size)))
    invalid = {"lone continuation 0x80": b"\x80", "overlong slash C0 AF": b"\xc0\xaf", "UTF-16 surrogate ED A0 80": b"\xed\xa0\x80",
               "truncated 3-byte E2 82": b"\xe2\x82", "0xFF": b"\xff", "code point > U+10FFFF F4 90 80 80": b"\xf4\x90\x80\x80",
               "Latin-1 e-acute E9": b"\xe9"}
    for desc, bad in invalid.items():
        for where in ("name", "start", "end"):
            if where == "name":
                data = seed.replace(b"production-host", b"production" + bad + b"host")
            elif where == "start":
                data = bad + seed
            else:
                data = seed + bad
            cases.append(doc_case(cls, f"invalid UTF-8 ({desc}) at {where} of the seed", data))
    for where in ("in a name", "in a label value", "in a comment", "at the start", "in a CIDR"):
        target = {"in a name": b"production-host", "in a label value": b"'true'", "in a comment": b"# The three",
                  "at the start": b"# The", "in a CIDR": b"1.2.3.4/32"}[where]
        data = seed.replace(target, target[:2] + b"\x00" + target[2:], 1)
        cases.append(doc_case(cls, f"NUL byte {where} of the seed", data))
    cases.append(doc_case(cls, "UTF-16 LE with BOM", b"\xff\xfe" + seed_text().encode("utf-16-le")))
    cases.append(doc_case(cls, "UTF-8 BOM then the seed", b"\xef\xbb\xbf" + seed, expect="warn"))
    cases.append(doc_case(cls, "ANSI escape sequence in a name", seed.replace(b"production-host", b"prod\x1b[2J\x1b[31mhost")))
    cases.append(doc_case(cls, "RTL override in a name", seed.replace(b"production-host", "prod\u202ehost".encode())))
    cases.append(doc_case(cls, "gzip magic then garbage", b"\x1f\x8b\x08\x00" + rng.randbytes(200)))
    cases.append(doc_case(cls, "ELF header", b"\x7fELF\x02\x01\x01" + bytes(100)))
    return cases


# --- mutations -----------------------------------------------------------------------------------------------------------

UNICODE_JUNK = ["\u200b", "\u202e", "\u00a0", "а", "е", "٣", "１", "²", "\u0301", "😀", "\ufeff", "\x85", "\u2028", "ß", "İ", "\x00", "\t"]


def _random_path(rng: random.Random, obj: Any) -> list[Any]:
    path: list[Any] = []
    while isinstance(obj, dict | list) and obj and rng.random() < 0.75:
        key = rng.choice(list(obj.keys())) if isinstance(obj, dict) else rng.randrange(len(obj))
        path.append(key)
        obj = obj[key]
    return path


def _get(obj: Any, path: list[Any]) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _type_change(rng: random.Random, value: Any) -> Any:
    choices = [None, True, 0, -1, 1.5, 10**30, "", "x", [], {}, [value], {"v": value}, str(value), 9.9e307]
    return rng.choice(choices)


def mutate(rng: random.Random, docs: list[dict[str, Any]], text: str) -> tuple[str, str]:
    """One mutant of the seed: (text, description of the operators)."""
    data = copy.deepcopy(docs)
    ops: list[str] = []
    text_ops: list[str] = []
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["delete", "duplicate", "retype", "rename", "flip", "unicode", "truncate", "swap-lines", "dup-doc"])
        if op in ("delete", "retype", "rename", "duplicate"):
            d = rng.randrange(len(data))
            path = _random_path(rng, data[d])
            if not path:
                continue
            parent = _get(data[d], path[:-1])
            key = path[-1]
            where = f"doc{d + 1}:" + ".".join(map(str, path))
            if op == "delete":
                del parent[key]
            elif op == "retype":
                parent[key] = _type_change(rng, parent[key])
            elif op == "rename" and isinstance(parent, dict):
                parent[key + rng.choice(["", "s", "X", "\u200b"]) + "_"] = parent.pop(key)
            elif op == "duplicate" and isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
            elif op == "duplicate":
                text_ops.append(f"dup-key {key}")
                continue
            ops.append(f"{op} {where}")
        else:
            text_ops.append(op)
    out = ydump(*data) if ops else text
    for op in text_ops:
        if op.startswith("dup-key"):
            key = op.split(" ", 1)[1]
            lines = out.splitlines()
            hits = [i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:") or line.strip().startswith(f"- {key}:")]
            if hits:
                i = rng.choice(hits)
                line = lines[i]
                indent = len(line) - len(line.lstrip()) + (2 if line.lstrip().startswith("- ") else 0)
                lines.insert(i + 1, " " * indent + line.lstrip().removeprefix("- "))
                out = "\n".join(lines) + "\n"
        elif op == "flip" and out:
            i = rng.randrange(len(out))
            out = out[:i] + chr(rng.randrange(32, 127)) + out[i + 1:]
        elif op == "unicode" and out:
            i = rng.randrange(len(out))
            out = out[:i] + rng.choice(UNICODE_JUNK) + out[i:]
        elif op == "truncate" and out:
            out = out[: rng.randrange(len(out))]
        elif op == "swap-lines":
            lines = out.splitlines()
            if len(lines) > 2:
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
                out = "\n".join(lines) + "\n"
        elif op == "dup-doc":
            parts = out.split("\n---\n")
            out = out + "\n---\n" + rng.choice(parts)
        ops.append(op)
    return out, "; ".join(ops) or "identity"


def mutation_texts(count: int) -> list[tuple[str, str]]:
    rng = random.Random(SEED + 7)
    docs, text = seed_docs(), seed_text()
    return [mutate(rng, docs, text) for _ in range(count)]


def _classify_in_process(args: tuple[str, str]) -> dict[str, Any]:
    text, source = args
    from seawall.api import ValidationFailed, load_text

    start = time.perf_counter()
    try:
        parsed = load_text(text, source)
    except ValidationFailed as exc:
        message = str(exc)
        outcome = CLEAN if source in message else UNCLEAN
        first = message.splitlines()[0] if message else ""
    except Exception as exc:  # anything else escapes the CLI's error handling: a traceback
        outcome, first = TRACEBACK, f"{type(exc).__name__}: {exc}"[:300] + " | " + traceback.format_exc().splitlines()[-3].strip()
    else:
        warned = any(p.warnings for p in parsed)
        outcome, first = (WARNED if warned else ACCEPTED), ""
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"outcome": outcome, "wall_s": wall, "rss_mb": rss, "first_line": first[:300]}


def run_mutations(count: int, workers: int) -> list[dict[str, Any]]:
    texts = mutation_texts(count)
    results: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pending = [pool.apply_async(_classify_in_process, ((t, f"mutant-{i}.yaml"),)) for i, (t, _) in enumerate(texts)]
        for i, fut in enumerate(pending):
            try:
                r = fut.get(timeout=TIMEOUT_S)
            except multiprocessing.TimeoutError:
                r = {"outcome": TRACEBACK, "wall_s": TIMEOUT_S, "rss_mb": 0.0, "first_line": "timeout (in-process)"}
            if r["rss_mb"] > RSS_LIMIT_MB and r["outcome"] != TRACEBACK:
                r = {**r, "outcome": TRACEBACK, "first_line": f"worker RSS {r['rss_mb']:.0f} MB; " + r["first_line"]}
            r.update({"cls": "random mutations (in-process)", "desc": f"mutant {i}: {texts[i][1]}", "expect": "any", "case": i})
            results.append(r)
        pool.terminate()
    return results


def mutation_cli_cases(count: int) -> list[Case]:
    texts = mutation_texts(count)
    return [doc_case("random mutations (CLI sample)", f"mutant {i}: {d}", t, expect="any") for i, (t, d) in enumerate(texts)]


# --- datastore faults ----------------------------------------------------------------------------------------------------


def _seeded_db(template: Path, tmp: Path) -> Path:
    return _db_from(template, tmp)


def _input(tmp: Path) -> Path:
    path = tmp / "input.yaml"
    path.write_text(ydump(gns(["7.7.7.7/32"], name="fault-set")))
    return path


def datastore_cases() -> list[Case]:
    cls = "datastore faults"
    cases: list[Case] = []

    def fault(desc: str, prepare: Callable[[Path, Path], tuple[Path, Callable[[], None] | None]], *, expect_get: str = "refuse",
              expect_apply: str = "refuse", busy: bool = False, preexec: Callable[[], None] | None = None) -> None:
        for command, expect in (("apply", expect_apply), ("get", expect_get)):
            def build(tmp: Path, template: Path, prepare: Any = prepare, command: str = command) -> Run:
                db, cleanup = prepare(tmp, template)
                argv = ["apply", "-f", str(_input(tmp))] if command == "apply" else ["get", "globalnetworkset", "-o", "json"]
                if preexec is not None:
                    os.chmod(tmp, 0o755)
                    os.chmod(tmp / "input.yaml", 0o644) if (tmp / "input.yaml").exists() else None
                return Run(argv, db, [str(db)], compare="bytes", cleanup=cleanup, busy=busy, preexec=preexec)

            cases.append(Case(cls, f"{command}: {desc}", expect, build))

    def corrupt_page(tmp: Path, template: Path) -> tuple[Path, None]:
        db = _seeded_db(template, tmp)
        data = bytearray(db.read_bytes())
        page = int.from_bytes(data[16:18], "big") or 65536
        for i in range(page, min(len(data), 2 * page)):
            data[i] = (i * 131) & 255
        db.write_bytes(bytes(data))
        return db, None

    def corrupt_header(tmp: Path, template: Path) -> tuple[Path, None]:
        db = _seeded_db(template, tmp)
        data = bytearray(db.read_bytes())
        data[16:24] = b"\xff" * 8
        db.write_bytes(bytes(data))
        return db, None

    def truncated(tmp: Path, template: Path) -> tuple[Path, None]:
        db = _seeded_db(template, tmp)
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2 + 17])
        return db, None

    def zero(tmp: Path, template: Path) -> tuple[Path, None]:
        (tmp / "s.db").write_bytes(b"")
        os.chmod(tmp / "s.db", 0o600)
        return tmp / "s.db", None

    def text_file(tmp: Path, template: Path) -> tuple[Path, None]:
        (tmp / "s.db").write_text("this is not a database\n" * 100)
        os.chmod(tmp / "s.db", 0o600)
        return tmp / "s.db", None

    def foreign_sqlite(tmp: Path, template: Path) -> tuple[Path, None]:
        conn = sqlite3.connect(tmp / "s.db")
        conn.execute("CREATE TABLE resources (x)")
        conn.commit()
        conn.close()
        os.chmod(tmp / "s.db", 0o600)
        return tmp / "s.db", None

    def future_schema(tmp: Path, template: Path) -> tuple[Path, None]:
        db = _seeded_db(template, tmp)
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value = 999 WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        return db, None

    def mode(bits: int) -> Callable[[Path, Path], tuple[Path, None]]:
        def prepare(tmp: Path, template: Path) -> tuple[Path, None]:
            db = _seeded_db(template, tmp)
            os.chmod(db, bits)
            return db, None

        return prepare

    def dir_mode(bits: int) -> Callable[[Path, Path], tuple[Path, Callable[[], None]]]:
        def prepare(tmp: Path, template: Path) -> tuple[Path, Callable[[], None]]:
            (tmp / "state").mkdir()
            db = _seeded_db(template, tmp / "state")
            os.chmod(tmp / "state", bits)
            return db, lambda: os.chmod(tmp / "state", 0o700)

        return prepare

    def chown_other(tmp: Path, template: Path) -> tuple[Path, None]:
        db = _seeded_db(template, tmp)
        os.chown(db, 65534, 65534)
        return db, None

    def symlinked(tmp: Path, template: Path) -> tuple[Path, None]:
        (tmp / "real").mkdir()
        _seeded_db(template, tmp / "real")
        os.symlink(tmp / "real" / "s.db", tmp / "s.db")
        return tmp / "s.db", None

    def symlinked_dir(tmp: Path, template: Path) -> tuple[Path, None]:
        (tmp / "real").mkdir()
        _seeded_db(template, tmp / "real")
        os.symlink(tmp / "real", tmp / "link")
        return tmp / "link" / "s.db", None

    def symlink_loop(tmp: Path, template: Path) -> tuple[Path, None]:
        os.symlink(tmp / "b.db", tmp / "s.db")
        os.symlink(tmp / "s.db", tmp / "b.db")
        return tmp / "s.db", None

    def is_dir(tmp: Path, template: Path) -> tuple[Path, None]:
        (tmp / "s.db").mkdir()
        return tmp / "s.db", None

    def parent_is_file(tmp: Path, template: Path) -> tuple[Path, None]:
        (tmp / "parent").write_text("x")
        return tmp / "parent" / "s.db", None

    def wal_symlink(tmp: Path, template: Path) -> tuple[Path, None]:
        db = _seeded_db(template, tmp)
        (tmp / "elsewhere").write_bytes(b"")
        if not (tmp / "s.db-wal").exists():
            os.symlink(tmp / "elsewhere", tmp / "s.db-wal")
        return db, None

    def locked(pragma: str) -> Callable[[Path, Path], tuple[Path, Callable[[], None]]]:
        def prepare(tmp: Path, template: Path) -> tuple[Path, Callable[[], None]]:
            db = _seeded_db(template, tmp)
            code = ("import sqlite3,sys,time\n"
                    f"c=sqlite3.connect({str(db)!r},isolation_level=None)\n{pragma}"
                    "c.execute('BEGIN EXCLUSIVE')\nc.execute(\"UPDATE meta SET value=value WHERE key='revision'\")\n"
                    "print('locked',flush=True)\ntime.sleep(60)\n")
            holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None
            holder.stdout.readline()

            def stop() -> None:
                holder.kill()
                holder.wait()

            return db, stop

        return prepare

    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)

    def nobody_ro(tmp: Path, template: Path) -> tuple[Path, Callable[[], None]]:
        (tmp / "state").mkdir()
        db = _seeded_db(template, tmp / "state")
        for p in [tmp / "state", *(tmp / "state").iterdir()]:
            os.chown(p, 65534, 65534)
        for p in (tmp / "state").iterdir():
            os.chmod(p, 0o400)
        os.chmod(tmp / "state", 0o500)
        return db, lambda: os.chmod(tmp / "state", 0o700)

    fault("a SQLite file with a corrupted page 2", corrupt_page)
    fault("a SQLite file with a corrupted header", corrupt_header)
    fault("a SQLite file truncated mid-page", truncated)
    fault("a zero-length file", zero, expect_get="any", expect_apply="any")
    fault("a file that is not SQLite", text_file)
    fault("a SQLite file of another application (table 'resources' with other columns)", foreign_sqlite)
    fault("a datastore with a future schema_version", future_schema)
    fault("a read-only file (0400; the CLI runs as root)", mode(0o400), expect_get="accept", expect_apply="any")
    fault("a read-only directory (0500; the CLI runs as root)", dir_mode(0o500), expect_get="accept", expect_apply="any")
    fault("a file owned by uid 65534", chown_other)
    fault("a group-writable file (0660)", mode(0o660))
    fault("a world-writable file (0666)", mode(0o666))
    fault("a group/world-writable directory (0777)", dir_mode(0o777))
    fault("a symlinked DB path", symlinked)
    fault("a DB path through a symlinked directory", symlinked_dir, expect_get="any", expect_apply="any")
    fault("a symlink loop as the DB path", symlink_loop)
    fault("a directory as the DB path", is_dir)
    fault("a DB path whose parent is a file", parent_is_file)
    fault("a -wal that is a symlink", wal_symlink)
    fault("a DB locked by another process (BEGIN EXCLUSIVE, WAL)", locked(""), expect_get="accept", busy=True)
    fault("a DB locked by another process (locking_mode=EXCLUSIVE)", locked("c.execute('PRAGMA locking_mode=EXCLUSIVE')\n"), busy=True)
    return cases


# --- stale resourceVersion -----------------------------------------------------------------------------------------------


def stale_cases() -> list[Case]:
    cls = "stale / odd resourceVersion"
    cases = []
    # the template: the seed at revision 1, then the set updated at revision 2
    for rv, expect, desc in (("1", "refuse", "stale '1' (current is 2)"), ("0", "refuse", "'0'"), ("3", "refuse", "future '3'"),
                             ("-1", "refuse", "'-1'"), ("abc", "refuse", "'abc'"), ("1e3", "refuse", "'1e3'"),
                             ("99999999999999999999999", "refuse", "beyond int64"), (" 2", "refuse", "' 2' (leading space)"),
                             ("٢", "refuse", "Arabic-Indic '٢' (int() reads 2)"), ("²", "refuse", "superscript '²' (isdigit() but not int())"),
                             ("２", "refuse", "fullwidth '２'"), ("2" * 5000, "refuse", "5000 digits")):
        for op in ("apply", "replace", "delete", "patch"):
            def build(tmp: Path, template: Path, rv: str = rv, op: str = op) -> Run:
                db = _db_from(template, tmp)
                doc = gns(["1.2.3.4/32", "5.6.0.0/16", "9.9.9.9/32"], name="dos-mitigation")
                doc["metadata"]["resourceVersion"] = rv
                if op == "patch":
                    patch = json.dumps({"metadata": {"resourceVersion": rv}, "spec": {"nets": ["9.9.9.9/32"]}})
                    return Run(["patch", "globalnetworkset", "dos-mitigation", "-p", patch], db, ["dos-mitigation"])
                path = tmp / "input.yaml"
                path.write_text(ydump(doc))
                return Run([op, "-f", str(path)], db, [str(path), "GlobalNetworkSet(dos-mitigation)"])

            cases.append(Case(cls, f"{op} GlobalNetworkSet with resourceVersion {desc}", expect, build))
    return cases


# --- Calico-valid documents ----------------------------------------------------------------------------------------------

FELIX_FIELDS: dict[str, Any] = {
    "vxlanVNI": 4096, "vxlanPort": 4789, "vxlanEnabled": False, "ipipEnabled": False, "reportingTTL": "30s", "reportingInterval": "0s",
    "bpfLogLevel": "Info", "bpfEnabled": False, "floatingIPs": "Disabled", "usageReportingEnabled": False, "logSeverityScreen": "Info",
    "healthPort": 9099, "prometheusMetricsEnabled": True, "iptablesRefreshInterval": "90s", "routeRefreshInterval": "90s",
    "wireguardEnabled": False, "defaultEndpointToHostAction": "Drop", "chainInsertMode": "Insert", "xdpEnabled": True,
    "genericXDPEnabled": False, "failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22}], "interfacePrefix": "cali",
    "ipv6Support": True, "logSeverityFile": "Warning", "bpfExternalServiceMode": "Tunnel", "featureDetectOverride": "ChecksumOffloadBroken=true",
}
META_FIELDS: dict[str, Any] = {
    "uid": "8f1a2b3c-0000-4000-8000-000000000001", "generation": 3, "finalizers": ["example.com/cleanup"],
    "creationTimestamp": "2024-01-02T03:04:05Z",
    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "jasper", "uid": "8f1a2b3c-0000-4000-8000-000000000002",
                         "controller": True, "blockOwnerDeletion": True}],
    "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": API, "time": "2024-01-02T03:04:05Z",
                       "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:node": {}}}}],
    "annotations": {"example.com/owner": "team-net"},
}


def calico_valid_cases() -> list[Case]:
    cls = "Calico-valid documents"
    cases = [doc_case(cls, f"FelixConfiguration default with {k}: {v!r}", ydump(felix(**{k: v})), expect="accept")
             for k, v in FELIX_FIELDS.items()]
    cases.append(doc_case(cls, f"FelixConfiguration with all {len(FELIX_FIELDS)} fields", ydump(felix(**FELIX_FIELDS)), expect="accept"))
    cases += [doc_case(cls, f"HostEndpoint with metadata.{k}", ydump(hep(["10.0.0.2"], **{k: v})), expect="accept") for k, v in META_FIELDS.items()]
    cases.append(doc_case(cls, "HostEndpoint with full ObjectMeta", ydump(hep(["10.0.0.2"], **META_FIELDS)), expect="accept"))
    deny_src = {"selector": "dos-blacklist == 'true'"}
    gnp_variants: dict[str, dict[str, Any]] = {
        "namespaceSelector": gnp([{"action": "Deny", "source": deny_src}], namespaceSelector="all()"),
        "serviceAccountSelector": gnp([{"action": "Deny", "source": deny_src}], serviceAccountSelector="role == 'x'"),
        "rule source.serviceAccounts": gnp([{"action": "Deny", "source": {"serviceAccounts": {"names": ["a"], "selector": "app == 'x'"}}}]),
        "rule destination.serviceAccounts": gnp([{"action": "Deny", "source": deny_src,
                                                  "destination": {"serviceAccounts": {"names": ["a"]}}}]),
        "rule source.namespaceSelector": gnp([{"action": "Deny", "source": {"namespaceSelector": "global()"}}]),
        "http match on an Allow rule": gnp([{"action": "Allow", "protocol": "TCP", "http": {"methods": ["GET"], "paths": [{"exact": "/x"}]}},
                                            {"action": "Deny", "source": deny_src}]),
        "order 100.5 and tier default": gnp([{"action": "Deny", "source": deny_src}], order=100.5, tier="default"),
        "port range and named port": gnp([{"action": "Deny", "protocol": "TCP", "source": deny_src, "destination": {"ports": ["1000:2000", 80]}}]),
        "icmp type/code": gnp([{"action": "Deny", "protocol": "ICMP", "source": deny_src, "icmp": {"type": 8, "code": 0}}]),
        "notProtocol and ipVersion": gnp([{"action": "Deny", "ipVersion": 4, "notProtocol": "TCP", "source": deny_src}]),
        "performanceHints AssumeNeededOnEveryNode": gnp([{"action": "Deny", "source": deny_src}], performanceHints=["AssumeNeededOnEveryNode"]),
        "metadata annotations and labels": {**gnp([{"action": "Deny", "source": deny_src}]),
                                            "metadata": {"name": "corpus-policy", "labels": {"a": "b"}, "annotations": {"c": "d"}}},
    }
    cases += [doc_case(cls, f"GlobalNetworkPolicy with {k}", ydump(v), expect="accept") for k, v in gnp_variants.items()]
    cases.append(doc_case(cls, "GlobalNetworkSet with IPv6 nets", ydump(gns(["2001:db8::/32", "fd00::1/128"])), expect="accept"))
    cases.append(doc_case(cls, "the seed itself (JSON List)", json.dumps({"apiVersion": API, "kind": "List", "items": seed_docs()}),
                          expect="warn", ext="json"))
    return cases


def dangerous_cases() -> list[Case]:
    cls = "dangerous but valid"
    deny_set = {"selector": "dos-blacklist == 'true'"}
    docs = {
        "0.0.0.0/0 in a denied set": [gns(["0.0.0.0/0"])],
        "::/0 in a denied set": [gns(["::/0"])],
        "0.0.0.0/1 + 128.0.0.0/1 in a denied set": [gns(["0.0.0.0/1", "128.0.0.0/1"])],
        "host bits set 10.0.0.1/8": [gns(["10.0.0.1/8"])],
        "host bits set 2001:db8::1/32": [gns(["2001:db8::1/32"])],
        "a set no policy selects": [gns(["7.7.7.0/24"], labels={"unused": "yes"})],
        "a Deny rule with no match": [gnp([{"action": "Deny"}])],
        "a Deny rule with nets 0.0.0.0/0": [gnp([{"action": "Deny", "source": {"nets": ["0.0.0.0/0"]}}])],
        "empty failsafeInboundHostPorts": [felix(failsafeInboundHostPorts=[])],
        "empty failsafe in and out": [felix(failsafeInboundHostPorts=[], failsafeOutboundHostPorts=[])],
        "the host's own expectedIP in a denied set": [gns(["10.0.0.1/32"])],
        "a policy selecting all() with a Deny-all": [gnp([{"action": "Deny"}], selector="all()")],
    }
    _ = deny_set
    return [doc_case(cls, desc, ydump(*d), expect="warn") for desc, d in docs.items()]


# ---------------------------------------------------------------------------------------------------------------------
# Running


def snapshot(db: Path, mode: str) -> Any:
    if mode == "none":
        return None
    if mode == "bytes":
        out = {}
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = Path(str(db) + suffix)
            try:
                st = os.lstat(p)
            except OSError:
                out[suffix] = None
                continue
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not suffix == "-shm" else "special"
            out[suffix] = (st.st_mode, st.st_uid, digest)
        return out
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kind, name, mod_revision, value FROM resources ORDER BY kind, name").fetchall()
        meta = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    finally:
        conn.close()
    return [rows, meta]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a runaway case fails instead of taking the host down


def run_case(case: Case, template: Path, scratch: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(dir=scratch))
    os.chmod(tmp, 0o700)
    run = case.build(tmp, template)
    try:
        before = snapshot(run.db, run.compare)
        cmd = _cli() + ["--datastore", f"sqlite://{run.db}", *run.argv]
        preexec = run.preexec

        def pre() -> None:
            _limits()
            if preexec:
                preexec()

        with open(tmp / ".out", "w+b") as out, open(tmp / ".err", "w+b") as err, \
                (open(run.stdin, "rb") if run.stdin else open(os.devnull, "rb")) as stdin:
            start = time.perf_counter()
            # (the venv's seawall entry point, installed by make setup)
            # runs: (built)
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, preexec_fn=pre, cwd=tmp,
                                    env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            timed_out = False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - start > TIMEOUT_S:
                    proc.kill()
                    timed_out = True
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read().decode("utf-8", "replace")
        after = snapshot(run.db, run.compare)
    finally:
        if run.cleanup:
            run.cleanup()
    code = proc.returncode
    rss = usage.ru_maxrss / 1024
    first = next((line for line in stderr.splitlines() if line.strip() and not line.startswith("created new datastore")), "")
    reason = ""
    if "Traceback" in stdout + stderr:
        outcome, reason = TRACEBACK, "Traceback in output"
        tb = [line for line in stderr.splitlines() if line.strip()]
        first = tb[-1] if tb else first
    elif timed_out:
        outcome, reason = TRACEBACK, f"timeout after {TIMEOUT_S:g} s"
    elif code < 0:
        outcome, reason = TRACEBACK, f"killed by signal {-code}"
    elif rss > RSS_LIMIT_MB:
        outcome, reason = TRACEBACK, f"peak RSS {rss:.0f} MB > {RSS_LIMIT_MB:g} MB"
    elif code == 0:
        outcome = WARNED if "warning" in stderr.lower() else ACCEPTED
    else:
        problems = []
        if not any(n in stderr for n in run.names):
            problems.append("message does not name " + " or ".join(run.names))
        if before != after:
            problems.append("datastore changed")
        if run.busy and wall > BUSY_LIMIT_S:
            problems.append(f"busy store reported after {wall:.1f} s")
        outcome, reason = (UNCLEAN, "; ".join(problems)) if problems else (CLEAN, "")
    shutil.rmtree(tmp, ignore_errors=True)
    return {"cls": case.cls, "desc": case.desc, "expect": case.expect, "outcome": outcome, "reason": reason, "exit": code,
            "wall_s": round(wall, 3), "rss_mb": round(rss, 1), "first_line": first[:300], "argv": run.argv[:1]}


def make_template(scratch: Path) -> Path:
    """The seed applied (revision 1), then the set updated (revision 2): what every case starts from."""
    template = scratch / "template"
    template.mkdir()
    url = f"sqlite://{template / 's.db'}"
    for doc in (SEED_FILE, None):
        if doc is None:
            path = scratch / "update.yaml"
            path.write_text(ydump(gns(["1.2.3.4/32", "5.6.0.0/16", "9.9.9.0/24"], name="dos-mitigation")))
            doc = path
        # runs: (built)
        subprocess.run(_cli() + ["--datastore", url, "apply", "-f", str(doc)], check=True, capture_output=True)
    conn = sqlite3.connect(template / "s.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return template


def all_cases(cli_mutations: int) -> list[Case]:
    rng = random.Random(SEED)
    return (lookalike_cases(rng) + alias_cases() + anchor_cases() + huge_int_cases() + deep_cases() + wide_cases() + duplicate_cases()
            + unhashable_cases() + nonregular_cases() + binary_cases(rng) + mutation_cli_cases(cli_mutations) + datastore_cases()
            + stale_cases() + calico_valid_cases() + dangerous_cases())


def slice_cases(cases: list[Case], per_class: int) -> list[Case]:
    """A deterministic spread of at most ``per_class`` cases of every class (for the fast test)."""
    by: dict[str, list[Case]] = {}
    for c in cases:
        by.setdefault(c.cls, []).append(c)
    out = []
    for group in by.values():
        step = max(1, len(group) // per_class)
        out += group[::step][:per_class]
    return out


def run_all(cases: list[Case], workers: int = 2) -> list[dict[str, Any]]:
    scratch = Path(tempfile.mkdtemp(prefix="seawall-corpus-"))
    os.chmod(scratch, 0o755)  # the uid-65534 case must reach its directory
    try:
        template = make_template(scratch)
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda c: run_case(c, template, scratch), cases))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


EXPECTATION = {
    "look-alike CIDRs": "refuse", "YAML alias bombs": "refuse", "YAML anchors (legitimate)": "accept (merge keys: either)",
    "huge integers": "refuse", "deep nesting": "refuse", "wide structures": "no traceback; refuse junk, accept valid",
    "duplicate keys": "refuse", "unhashable YAML keys": "refuse", "non-regular / oversized files": "refuse",
    "binary / invalid UTF-8 / NUL": "refuse (UTF-8 BOM: accept)", "random mutations (in-process)": "no traceback",
    "random mutations (CLI sample)": "no traceback; agrees with in-process", "datastore faults": "refuse (some reads: accept)",
    "stale / odd resourceVersion": "refuse", "Calico-valid documents": "accept", "dangerous but valid": "accept with warning",
}


def _meets(r: dict[str, Any]) -> bool:
    e, o = r["expect"], r["outcome"]
    if o in (TRACEBACK, UNCLEAN):
        return False
    return {"refuse": o == CLEAN, "accept": o in (ACCEPTED, WARNED), "warn": o == WARNED, "any": True}[e]


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r["cls"], {"class": r["cls"], "expectation": EXPECTATION.get(r["cls"], "?"), "tried": 0, CLEAN: 0, UNCLEAN: 0,
                                         TRACEBACK: 0, ACCEPTED: 0, WARNED: 0, "as expected": 0, "max_wall_s": 0.0, "max_rss_mb": 0.0})
        row["tried"] += 1
        row[r["outcome"]] += 1
        row["as expected"] += _meets(r)
        row["max_wall_s"] = max(row["max_wall_s"], r["wall_s"])
        row["max_rss_mb"] = max(row["max_rss_mb"], r["rss_mb"])
    return list(rows.values())


def render(rows: list[dict[str, Any]], results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["# Hardening corpus: hostile input, per class", "",
             "Generated by `bench/hostile_corpus.py` (`make bench-hostile`); do not edit by hand. "
             f"Seed {meta['seed']}, {meta['cases']} cases, run in {meta['run_s']:.0f} s on {meta['machine']} (Python {meta['python']}).", "",
             "Each case runs the real `seawall` CLI in a subprocess on a fresh SQLite datastore (a copy of the seed applied, then "
             "the set updated), timeout 10 s. *Clean refusal*: non-zero exit, no traceback, the message names the input (file, resource "
             "or datastore path) and the datastore is unchanged. *Refused, unclean*: refused, but one of those fails. *Traceback*: a "
             "Python traceback, a timeout, a signal, or peak RSS > 500 MB. *Accepted*: exit 0 (with a warning when stderr says so). "
             "*As expected*: the outcome matches the case's own expectation (the column gives the class's). The random mutations are "
             "classified in-process with `seawall.api.load_text` (the CLI's parse and validation; any exception other than "
             "`ValidationFailed` counts as a traceback; RSS is the worker's peak), and a sample of them also through the CLI.", "",
             "| class | expectation | tried | clean refusal | refused, unclean | traceback | accepted (with warning) | as expected "
             "| max wall s | max RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['class']} | {r['expectation']} | {r['tried']} | {r[CLEAN]} | {r[UNCLEAN]} | {r[TRACEBACK]} "
                     f"| {r[ACCEPTED] + r[WARNED]} ({r[WARNED]}) | {r['as expected']} | {r['max_wall_s']:.2f} | {r['max_rss_mb']:.0f} |")
    tot = {k: sum(r[k] for r in rows) for k in ("tried", CLEAN, UNCLEAN, TRACEBACK, ACCEPTED, WARNED, "as expected")}
    lines.append(f"| **all** | | {tot['tried']} | {tot[CLEAN]} | {tot[UNCLEAN]} | {tot[TRACEBACK]} | {tot[ACCEPTED] + tot[WARNED]} "
                 f"({tot[WARNED]}) | {tot['as expected']} | | |")
    if "mutation_agreement" in meta:
        a = meta["mutation_agreement"]
        lines += ["", f"Mutations, CLI sample vs in-process: {a['agree']} of {a['compared']} agree on refused/accepted/traceback."]
    for title, pick in (("Non-clean cases (traceback or unclean refusal)", lambda r: r["outcome"] in (TRACEBACK, UNCLEAN)),
                        ("Outcome differs from the case's expectation (not counting the above)",
                         lambda r: r["outcome"] not in (TRACEBACK, UNCLEAN) and not _meets(r))):
        bad = [r for r in results if pick(r)]
        lines += ["", f"## {title}: {len(bad)}", ""]
        if not bad:
            lines.append("None.")
        for r in bad[:20]:
            why = f" ({r['reason']})" if r.get("reason") else ""
            lines.append(f"- **{r['cls']}**: {r['desc']} — expected {r['expect']}, got {r['outcome']}{why}; "
                         f"first line: `{r['first_line'][:200].replace('`', chr(39))}`")
        if len(bad) > 20:
            lines.append(f"- … and {len(bad) - 20} more (see bench/results/hostile-corpus.json)")
    return "\n".join(lines) + "\n"


def _coarse(outcome: str) -> str:
    return {CLEAN: "refused", UNCLEAN: "refused", ACCEPTED: "accepted", WARNED: "accepted"}.get(outcome, outcome)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_MD)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--mutations", type=int, default=2000)
    ap.add_argument("--cli-mutations", type=int, default=40)
    ap.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    ap.add_argument("--classes", default="", help="comma-separated class-name substrings")
    ap.add_argument("--slice", type=int, default=0, help="at most N cases per class")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    cases = all_cases(args.cli_mutations)
    if args.classes:
        wanted = [w.strip() for w in args.classes.split(",")]
        cases = [c for c in cases if any(w in c.cls for w in wanted)]
    if args.slice:
        cases = slice_cases(cases, args.slice)
    results = run_all(cases, args.workers)
    mutations = run_mutations(args.mutations, args.workers) if args.mutations else []
    meta: dict[str, Any] = {"seed": SEED, "timeout_s": TIMEOUT_S, "rss_limit_mb": RSS_LIMIT_MB, "machine": f"{platform.machine()} x{os.cpu_count()}",
                            "python": platform.python_version()}
    cli_sample = [r for r in results if r["cls"] == "random mutations (CLI sample)"]
    if cli_sample and mutations:
        agree = sum(_coarse(r["outcome"]) == _coarse(mutations[int(r["desc"].split()[1].rstrip(":"))]["outcome"]) for r in cli_sample
                    if int(r["desc"].split()[1].rstrip(":")) < len(mutations))
        meta["mutation_agreement"] = {"compared": len(cli_sample), "agree": agree}
    allres = results + mutations
    meta.update({"cases": len(allres), "run_s": time.perf_counter() - start})
    rows = summarise(allres)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "summary": rows, "cases": allres}, indent=1, ensure_ascii=False) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, allres, meta))
    print(render(rows, allres, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
