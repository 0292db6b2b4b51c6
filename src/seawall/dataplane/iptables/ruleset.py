"""The raw table as text, with no I/O: our rules' syntax, ``iptables-save`` parsing, and the
plan (an ``iptables-restore --noflush`` script) that turns what the kernel holds into what
was rendered. ``tables`` runs the plan; ``render`` uses the rule syntax."""

from __future__ import annotations

import functools
import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from seawall.dataplane.iptables.names import MAX_CHAIN_NAME
from seawall.dataplane.iptables.rendered import CHAIN_PREFIX, COMMENT_PREFIX, TableContent

TABLE = "raw"


@dataclass(frozen=True, slots=True)
class SavedRule:
    chain: str
    args: str  # everything after "-A <chain> "
    packets: int = 0
    bytes: int = 0

    @property
    def comment(self) -> str | None:
        return our_comment(self.args)

    @property
    def target(self) -> str | None:
        return rule_target(self.args)


@dataclass
class SavedTable:
    chains: dict[str, list[SavedRule]] = field(default_factory=dict)  # in declaration order
    builtin: set[str] = field(default_factory=set)


@functools.lru_cache(maxsize=8192)
def _tokens(args: str) -> tuple[str, ...]:
    """A rule's words as the shell would split them. Cached: ``iptables-save`` prints
    the same rules on every read (counters apart), and ``shlex`` costs ~0.1 ms per
    rule in pure Python, on the raw tier's thread, next to the XDP thread's work."""
    if '"' not in args and "'" not in args and "\\" not in args:
        return tuple(args.split())
    try:
        return tuple(shlex.split(args))
    except ValueError:
        return tuple(args.split())


def our_comment(args: str) -> str | None:
    """The first ``sw:`` comment of a rule, if any."""
    tokens = _tokens(args)
    for i, token in enumerate(tokens[:-1]):
        if token == "--comment" and tokens[i + 1].startswith(COMMENT_PREFIX):
            return tokens[i + 1]
    return None


def rule_target(args: str) -> str | None:
    tokens = _tokens(args)
    for i, token in enumerate(tokens[:-1]):
        if token in ("-j", "--jump", "-g", "--goto"):
            return tokens[i + 1]
    return None


def is_our_chain(name: str) -> bool:
    return name.startswith(CHAIN_PREFIX)


def parse_save(text: str, table: str = TABLE) -> SavedTable | None:
    """One table of ``iptables-save [-c]`` output; None if that table is absent."""
    saved: SavedTable | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            saved = SavedTable() if line[1:] == table else None
            continue
        if saved is None or not line or line.startswith("#"):
            continue
        if line == "COMMIT":
            return saved
        if line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            saved.chains.setdefault(name, [])
            if not rest.startswith("-"):
                saved.builtin.add(name)
            continue
        packets = nbytes = 0
        if line.startswith("["):
            counts, _, line = line.partition("] ")
            p, _, b = counts[1:].partition(":")
            packets, nbytes = int(p), int(b)
        if line.startswith("-A "):
            chain, _, args = line[3:].partition(" ")
            saved.chains.setdefault(chain, []).append(SavedRule(chain, args.strip(), packets, nbytes))
    return saved


def hook_rule(builtin: str, chain: str) -> str:
    """The args of our jump from a built-in chain (carries its own sw: comment)."""
    digest = hashlib.sha256(f"hook:{builtin}:{chain}".encode()).hexdigest()[:16]
    return f'-m comment --comment "{COMMENT_PREFIX}{digest}" -j {chain}'


def _rule_key(args: str) -> str:
    return our_comment(args) or " ".join(_tokens(args))


def _is_our_hook(rule: SavedRule) -> bool:
    target = rule.target
    return (target is not None and is_our_chain(target)) or rule.comment is not None


@dataclass
class TablePlan:
    script: str | None  # None: the kernel already matches
    differences: list[str]
    stale_chains: list[str]


def validate(table: TableContent) -> None:
    for name in table.chains:
        if not is_our_chain(name) or len(name) > MAX_CHAIN_NAME:
            raise ValueError(f"chain {name!r} is not ours ({CHAIN_PREFIX}..., <= {MAX_CHAIN_NAME} chars)")
    for builtin, chain in table.hooks:
        if chain not in table.chains:
            raise ValueError(f"hook {builtin} -> {chain}: chain not rendered")


def plan_table(table: TableContent, saved: SavedTable | None,
               known: Mapping[str, Sequence[str]] | None = None) -> TablePlan:
    """Diff ``table`` against the kernel's raw table and build the restore text (pure).

    ``known`` is the kernel's own spelling of our rules as read back after we last
    programmed this very content; with it an edited rule that kept its comment
    is caught too."""
    validate(table)
    saved = saved or SavedTable()
    diffs: list[str] = []
    for chain, rules in table.chains.items():
        actual = saved.chains.get(chain)
        if actual is None:
            diffs.append(f"chain {chain} missing")
            continue
        want = [_rule_key(r) for r in rules]
        have = [_rule_key(r.args) for r in actual]
        if want != have:
            missing = [k for k in want if k not in have]
            extra = [k for k in have if k not in want]
            diffs.append(f"chain {chain}: rules differ (missing {missing[:3]}, extra {extra[:3]}"
                         f"{', order' if not missing and not extra else ''})")
        elif known is not None and chain in known and list(known[chain]) != [r.args for r in actual]:
            diffs.append(f"chain {chain}: a rule was edited")
    stale = [c for c in saved.chains if is_our_chain(c) and c not in table.chains]
    if stale:
        diffs.append(f"stale chains {stale}")

    hooks_by_builtin: dict[str, list[str]] = {}
    for builtin, chain in table.hooks:
        hooks_by_builtin.setdefault(builtin, []).append(hook_rule(builtin, chain))
    deletes: list[str] = []
    inserts: list[str] = []
    builtins = sorted(set(hooks_by_builtin) | {c for c in saved.builtin if not is_our_chain(c)})
    for builtin in builtins:
        present = saved.chains.get(builtin, [])
        ours = [r for r in present if _is_our_hook(r)]
        want = hooks_by_builtin.get(builtin, [])
        head = [_rule_key(r.args) for r in present[:len(want)]]
        if head == [_rule_key(a) for a in want] and len(ours) == len(want):
            continue
        diffs.append(f"hook {builtin}: have {[r.target for r in ours]} (first: "
                     f"{present[0].target if present else None}), want {[rule_target(w) for w in want]} first")
        deletes.extend(f"-D {builtin} {r.args}" for r in ours)
        inserts.extend(f"-I {builtin} 1 {args}" for args in reversed(want))
    if not diffs:
        return TablePlan(None, [], [])
    lines = ["*" + TABLE]
    lines += [f":{c} - [0:0]" for c in [*table.chains, *stale]]
    lines += deletes
    for chain, rules in table.chains.items():
        lines += [f"-A {chain} {r}" for r in rules]
    lines += inserts
    lines += [f"-X {c}" for c in stale]
    lines.append("COMMIT")
    return TablePlan("\n".join(lines) + "\n", diffs, stale)


def cleanup_script(saved: SavedTable | None) -> str | None:
    """Remove our hook jumps and every chain of ours; None if there is nothing of ours."""
    plan = plan_table(TableContent(family=0, chains={}, hooks=()), saved)
    return plan.script
