"""Program Seawall's ipsets (``hash:net``) with one ``ipset restore`` per batch.

Why this shape: forking ``ipset`` per member is hopeless at 1,000,000 CIDRs,
and a set that is emptied and refilled in place lets blocked packets through
meanwhile. So a batch is one restore script: small changes are add/del lines
(each is atomic in the kernel), big ones (or a needed ``maxelem`` increase)
fill a temporary set and ``swap`` it in, so a packet always meets either the
whole old or the whole new membership. ``maxelem`` is sized at twice the
members (a power of two, at least 65536), so a 1M set fits where Calico's
fixed 1,048,576 cap fails. Only names with our prefixes are ever touched.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import logging
import socket
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seawall.dataplane.iptables.backend import CommandError, Runner
from seawall.dataplane.iptables.rendered import IPSET_PREFIX, IpSetContent
from seawall.dataplane.skipped import Sink, skip
from seawall.policy.netset import NetSet, v4_keys_and_rest

OUR_PREFIXES = tuple(f"{IPSET_PREFIX}{v}{t}-" for v in ("4", "6") for t in ("", "t"))  # sw4- sw4t- sw6- sw6t-
MAX_NAME = 31
MIN_MAXELEM = 65536
MIN_HASHSIZE = 1024
#: More add/del lines than this and than an eighth of the target (or than half of it)
#: and the set is rebuilt and swapped; fewer (a feed's 30,000 against a million: one
#: restore of add/del lines, ~50 ms in the kernel, each line atomic) go in place.
SWAP_THRESHOLD = 10_000
SWAP_FRACTION = 8


def is_ours(name: str) -> bool:
    return name.startswith(OUR_PREFIXES)


def is_temp(name: str) -> bool:
    return name.startswith((f"{IPSET_PREFIX}4t-", f"{IPSET_PREFIX}6t-"))


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def maxelem_for(count: int) -> int:
    return max(MIN_MAXELEM, _pow2_at_least(2 * count))


def hashsize_for(count: int) -> int:
    """Pre-size the hash so a bulk load does not pay for repeated resizes."""
    return max(MIN_HASHSIZE, _pow2_at_least(count) // 2)


def temp_name(name: str) -> str:
    """``sw4t-<hash of name>``: ours by prefix, unique per target set, <= 31 characters."""
    family = "6" if name.startswith(f"{IPSET_PREFIX}6") else "4"
    return f"{IPSET_PREFIX}{family}t-{hashlib.sha256(name.encode()).hexdigest()[:20]}"


_AF = {4: (socket.AF_INET, 32), 6: (socket.AF_INET6, 128)}
log = logging.getLogger(__name__)


class InvalidMember(ValueError):
    """A member that is not a CIDR at all (not merely of the other family)."""


def _canonical(member: str, version: int) -> list[str]:
    """``addr/len`` with host bits cleared, the address as inet_ntop prints it (ipset does too).

    socket.inet_pton is ~5x faster than ipaddress, which matters at 1,000,000 members."""
    af, bits = _AF[version]
    if not isinstance(member, str) or not member.isascii() or "%" in member:
        raise InvalidMember(f"{member!r} is not a CIDR (ASCII digits, no zone)")
    addr, sep, length = member.strip().partition("/")
    try:
        packed = socket.inet_pton(af, addr)
        plen = int(length) if sep else bits
        if not 0 <= plen <= bits or (sep and not length.isdigit()):
            raise ValueError
    except (OSError, ValueError):
        try:
            net = ipaddress.ip_network(member.strip(), strict=False)
        except ValueError as exc:
            raise InvalidMember(str(exc)) from None
        if net.version != version:
            raise ValueError(f"{member!r} is not an IPv{version} CIDR") from None
        if net.prefixlen == 0:
            return [str(half) for half in net.subnets(prefixlen_diff=1)]
        return [str(net)]
    if plen == 0:  # hash:net cannot hold /0: two /1s cover the same space
        return [f"{socket.inet_ntop(af, bytes(len(packed)))}/1",
                f"{socket.inet_ntop(af, bytes([0x80]) + bytes(len(packed) - 1))}/1"]
    value = int.from_bytes(packed, "big")
    masked = value & (((1 << plen) - 1) << (bits - plen))
    if masked != value:
        packed = masked.to_bytes(len(packed), "big")
    return [f"{socket.inet_ntop(af, packed)}/{plen}"]


def normalize_members(members: Iterable[str], family: str, skipped: Sink | None = None) -> set[str]:
    """Canonical CIDR strings (``10.0.0.1/32``, host bits cleared); a /0 becomes two /1s
    because ``hash:net`` cannot hold prefix length 0. Raises ValueError on the wrong family.
    A member that is not a CIDR at all (a look-alike digit, an IPv6 zone) is
    skipped, logged and recorded in ``skipped``, so one bad value cannot fail the whole set's restore."""
    version = 6 if family == "inet6" else 4
    out: set[str] = set()
    for member in members:
        try:
            out.update(_canonical(member, version))
        except InvalidMember as exc:
            skip(log, "ipset member", skipped, member, f"ipset member: {exc}", str(exc))
    return out


@dataclass(frozen=True, slots=True)
class SetInfo:
    """One set's header from ``ipset list -t``."""

    name: str
    type: str
    family: str
    hashsize: int
    maxelem: int
    entries: int
    references: int


def parse_list_terse(text: str) -> dict[str, SetInfo]:
    """Parse ``ipset list -t`` output; returns only our sets."""
    sets: dict[str, SetInfo] = {}
    block: dict[str, str] = {}

    def flush() -> None:
        name = block.get("Name")
        if name and is_ours(name):
            header = block.get("Header", "").split()
            opts = dict(zip(header[::2], header[1::2], strict=False))
            sets[name] = SetInfo(
                name=name, type=block.get("Type", ""), family=opts.get("family", ""),
                hashsize=int(opts.get("hashsize", 0)), maxelem=int(opts.get("maxelem", 0)),
                entries=int(block.get("Number of entries", 0)), references=int(block.get("References", 0)),
            )
        block.clear()

    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "Name" and block:
            flush()
        block[key.strip()] = value.strip()
    if block:
        flush()
    return sets


def parse_save_members(text: str, name: str, family: str) -> set[str]:
    """Members from ``ipset save <name>`` (``add <name> <cidr>`` lines)."""
    full = "/128" if family == "inet6" else "/32"
    prefix = f"add {name} "
    out: set[str] = set()
    for line in text.splitlines():
        if line.startswith(prefix):
            member = line[len(prefix):].split(" ", 1)[0]  # ipset prints inet_ntop, host bits clear
            out.add(member if "/" in member else member + full)
    return out


@dataclass
class SetChange:
    """What one batch did (or will do) to one set."""

    name: str
    members: int
    added: int = 0
    removed: int = 0
    created: bool = False
    swapped: bool = False


@dataclass(frozen=True, slots=True)
class MemberLines:
    """The ``add`` or ``del`` lines of one set's members, kept as the members: written
    as restore text, or by netlink in batches (``ipset_netlink``) where that is
    available; in order with the plan's other steps either way."""

    op: str  # "add" | "del"
    set: str
    version: int  # 4 | 6
    members: Collection[str]

    def text(self) -> str:
        if not self.members:
            return ""
        prefix = f"{self.op} {self.set} "
        return prefix + ("\n" + prefix).join(self.members) + "\n"


@dataclass
class IpSetPlan:
    """The steps of one batch, in order: restore text (create, swap, destroy lines) and members."""

    steps: list[str | MemberLines]
    changes: dict[str, SetChange] = field(default_factory=dict)
    skipped: dict[str, Sink] = field(default_factory=dict)  # set name -> members skipped as not CIDRs

    @property
    def script(self) -> str:
        """The whole batch as one ``ipset restore`` script."""
        return "".join(step if isinstance(step, str) else step.text() for step in self.steps)

    @property
    def empty(self) -> bool:
        return not any(step if isinstance(step, str) else step.members for step in self.steps)


def plan_sets(desired: Mapping[str, IpSetContent], existing: Mapping[str, SetInfo],
              current: Mapping[str, AbstractSet[str]],
              wanted: Mapping[str, AbstractSet[str]] | None = None) -> IpSetPlan:
    """The steps (restore lines and members, see ``IpSetPlan``) that make ``desired`` true (pure).

    ``existing`` is our sets' headers, ``current`` the members of those in ``desired``;
    ``wanted`` optionally holds the desired members already normalized.
    Leftover temporaries of a target are destroyed first (a crash mid-swap)."""
    lines: list[str] = []
    steps: list[str | MemberLines] = []

    def end_lines() -> None:
        if lines:
            steps.append("\n".join(lines) + "\n")
            lines.clear()

    def members(op: str, target: str, version: int, texts: Collection[str]) -> None:
        end_lines()
        if texts:
            steps.append(MemberLines(op, target, version, texts))

    changes: dict[str, SetChange] = {}
    for name in sorted(desired):
        content = desired[name]
        if not is_ours(name) or is_temp(name) or len(name) > MAX_NAME:
            raise ValueError(f"ipset name {name!r} is not one of ours (prefix sw4-/sw6-, <= {MAX_NAME} chars)")
        version = 6 if content.family == "inet6" else 4
        want = wanted[name] if wanted and name in wanted else normalize_members(content.members, content.family)
        need_max = maxelem_for(len(want))
        info = existing.get(name)
        tmp = temp_name(name)
        if tmp in existing:
            lines.append(f"destroy {tmp}")
        header = f"hash:net family {content.family} hashsize {hashsize_for(len(want))} maxelem {need_max}"
        if info is None:
            lines.append(f"create {name} {header}")
            members("add", name, version, want)
            changes[name] = SetChange(name, len(want), added=len(want), created=True)
            continue
        have = current.get(name, frozenset())
        adds: AbstractSet[str]
        dels: AbstractSet[str]
        at_least = (0, 0)
        if want is have:
            adds, dels = frozenset(), frozenset()
        elif isinstance(want, NetSet) and isinstance(have, NetSet):
            at_least = want.one_sided(have)
            if _swaps(sum(at_least), len(want)):  # no need to list a change the swap replaces
                adds, dels = frozenset(), frozenset()
            else:
                adds, dels = want.changes_from(have)  # by bucket, or the change itself when ``want`` was made from ``have``
        else:
            adds, dels = want - have, have - want
        delta = max(len(adds) + len(dels), sum(at_least))
        compatible = info.type == "hash:net" and info.family == content.family
        if not compatible or info.maxelem < len(want) or (info.maxelem < need_max and delta) \
                or _swaps(delta, len(want)):
            lines.append(f"create {tmp} {header}")
            members("add", tmp, version, want)
            lines.append(f"swap {tmp} {name}")
            lines.append(f"destroy {tmp}")
            changes[name] = SetChange(name, len(want), max(len(adds), at_least[0]), max(len(dels), at_least[1]),
                                      swapped=True)
        elif delta:
            members("del", name, version, sorted(dels))
            members("add", name, version, sorted(adds))
            changes[name] = SetChange(name, len(want), len(adds), len(dels))
        else:
            changes[name] = SetChange(name, len(want))
    end_lines()
    return IpSetPlan(steps, changes)


def _swaps(delta: int, size: int) -> bool:
    """Is a change of ``delta`` members to a set of ``size`` written as a new set swapped in?"""
    return (delta > SWAP_THRESHOLD and delta > size // SWAP_FRACTION) or (delta > 1000 and delta > size // 2)


def members_digest(members: Iterable[str]) -> str:
    """An order-independent digest of a set's members (the count, two 64-bit sums of
    mixed integers over the canonical IPv4 members, two 32-bit checksums summed over
    the others' texts): enough to tell the set a stopping agent left from any other
    desired set, in C loops. A packed IPv4 bucket is summed on its integers, so a
    million such members cost ~20 ms, not a text each (~1 s)."""
    keys, texts = v4_keys_and_rest(members)
    mixed = _mix64(keys.astype(np.uint64))
    first, second = int(mixed.sum(dtype=np.uint64)), int(_mix64(mixed ^ np.uint64(_SEED)).sum(dtype=np.uint64))
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    crc = sum(map(zlib.crc32, encoded)) & 0xFFFFFFFFFFFFFFFF
    adler = sum(map(zlib.adler32, encoded)) & 0xFFFFFFFFFFFFFFFF
    return f"2:{len(keys) + len(texts)}:{first:016x}:{second:016x}:{crc:016x}:{adler:016x}"


_SEED = 0x5EA3A11D16E57ED5


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over uint64 (wrapping), so sums of nearby keys differ."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: np.ndarray = z ^ (z >> np.uint64(31))
        return out


def _headers_after(desired: Mapping[str, IpSetContent], existing: Mapping[str, SetInfo], plan: IpSetPlan,
                   wanted: Mapping[str, AbstractSet[str]]) -> dict[str, SetInfo]:
    """The headers of the desired sets once ``plan`` ran (pure): created or swapped sets
    carry the plan's header, the others their old one with the new entry count."""
    out: dict[str, SetInfo] = {}
    for name, content in desired.items():
        count, info, change = len(wanted[name]), existing.get(name), plan.changes.get(name)
        if info is None or (change is not None and (change.created or change.swapped)):
            out[name] = SetInfo(name, "hash:net", content.family, hashsize_for(count), maxelem_for(count), count,
                                info.references if info is not None else 0)
        else:
            out[name] = dataclasses.replace(info, entries=count)
    return out


def stale_sets(desired: Iterable[str], existing: Iterable[str]) -> list[str]:
    keep = set(desired)
    return sorted(n for n in existing if is_ours(n) and n not in keep)


#: ``writer(op, set name, IP version, canonical members)`` adds ("add") or deletes ("del")
#: members of an existing set, ``-exist`` semantics; raises ``CommandError``.
MemberWriter = Callable[[str, str, int, Collection[str]], None]


class IpSets:
    """Our ipsets on one host (or namespace), with a cache of what we last wrote.

    The cache avoids reading a 1M-member set back on every reconcile; a header
    whose entry count or size no longer matches the cache forces a full read,
    and ``resync=True`` always reads."""

    def __init__(self, runner: Runner, *, state_file: Path | None = None, member_writer: MemberWriter | None = None) -> None:
        self.runner = runner
        # members added and deleted without ``ipset restore`` (netlink: ~3.5x faster at a million)
        self.member_writer = member_writer
        # Where a stopping agent leaves (entries, digest) of every set it programmed, so
        # the next one adopts a set that still holds it without reading a million
        # members back (``sync``); read once and removed (a crash leaves none: full read).
        self._state_file = state_file
        self._adoptable: dict[str, tuple[int, str]] | None = None
        # name -> (members as given, normalized): what the kernel held after our last write
        self._cache: dict[str, tuple[AbstractSet[str], NetSet]] = {}
        self._skipped: dict[str, Sink] = {}  # name -> members of the cached input skipped as not CIDRs
        # name -> the header our last successful write left (what ``ipset list -t`` would print),
        # for a trusted sync; emptied by any failure, so the next sync lists again.
        self._headers: dict[str, SetInfo] = {}

    def list(self) -> dict[str, SetInfo]:
        return parse_list_terse(self.runner(["ipset", "list", "-t"], None))

    def members(self, name: str, family: str) -> set[str]:
        if not is_ours(name):
            raise ValueError(f"{name!r} is not one of our ipsets")
        return parse_save_members(self.runner(["ipset", "save", name], None), name, family)

    def _normalized(self, content: IpSetContent) -> tuple[NetSet, Sink]:
        """Normalize only what changed since the cached input (1M members cost ~1 s in full;
        two versions of a ``NetSet`` differ by bucket, so the difference costs what changed);
        also the members skipped as not CIDRs."""
        if isinstance(content.members, NetSet) and content.family == "inet":
            # The renderer's NetSets hold the calculation's canonical text (host bits
            # masked, no /0: those come as a plain frozenset), which for IPv4 is what
            # ``ipset save`` prints: nothing to normalize, and the diff goes by bucket.
            return content.members, {}
        cached = self._cache.get(content.name)
        if cached is not None:
            raw, norm = cached
            if raw is content.members or raw == content.members:
                return norm, self._skipped.get(content.name, {})
            if len(raw) == len(norm) and not self._skipped.get(content.name):  # one raw string per member: a delta is exact
                bad: Sink = {}
                if isinstance(raw, NetSet) and isinstance(content.members, NetSet):
                    plus, minus = content.members.changes_from(raw)
                else:
                    plus, minus = frozenset(content.members) - raw, frozenset(raw) - content.members
                gone = normalize_members(minus, content.family)
                new = normalize_members(plus, content.family, bad)
                return norm.with_changes(new, gone), bad
        bad = {}
        return NetSet(normalize_members(content.members, content.family, bad)), bad

    def sync(self, desired: Mapping[str, IpSetContent], *, resync: bool = False, trusted: bool = False) -> IpSetPlan:
        """Create/update every desired set in one ``ipset restore``; raises CommandError.
        ``trusted``: the caller checks headers for drift on its own schedule, so when every
        desired set is one our last write left, its header is taken from that write instead
        of ``ipset list -t`` (one process less per member change)."""
        known = trusted and not resync and bool(desired) and all(name in self._headers for name in desired)
        existing = dict(self._headers) if known else self.list()
        self._headers = {}
        normalized = {name: self._normalized(content) for name, content in desired.items()}
        wanted = {name: norm for name, (norm, _) in normalized.items()}
        skipped = {name: bad for name, (_, bad) in normalized.items() if bad}
        current: dict[str, AbstractSet[str]] = {}
        adoptable = self._take_adoptable()
        for name, content in desired.items():
            info = existing.get(name)
            if info is None:
                continue
            cached = self._cache.get(name)
            left = adoptable.pop(name, None)
            if not resync and cached is not None and len(cached[1]) == info.entries:
                current[name] = cached[1]
            elif not resync and cached is None and left is not None and left[0] == info.entries == len(wanted[name]) \
                    and left[1] == members_digest(wanted[name]):
                log.info("ipset %s: adopted as the previous agent left it (%d members, unchanged since)", name, info.entries)
                current[name] = wanted[name]
            else:
                # by bucket against the wanted NetSet: a million-member diff in C, not a Python loop
                current[name] = NetSet(self.members(name, content.family))
        plan = plan_sets(desired, existing, current, wanted)
        plan.skipped = skipped
        if not plan.empty:
            for name in plan.changes:
                self._cache.pop(name, None)
            self._write(plan)
        for name, content in desired.items():
            self._cache[name] = (content.members, wanted[name])
            self._skipped.pop(name, None)
        self._skipped.update(skipped)
        self._headers = _headers_after(desired, existing, plan, wanted)
        return plan

    def _write(self, plan: IpSetPlan) -> None:
        """The plan's steps in order: restore lines by ``ipset restore``, members by the
        member writer when there is one (else as restore lines too: one process)."""
        if self.member_writer is None:
            self.runner(["ipset", "restore", "-exist"], plan.script)
            return
        text: list[str] = []
        for step in plan.steps:
            if isinstance(step, str):
                text.append(step)
                continue
            if text:
                self.runner(["ipset", "restore", "-exist"], "".join(text))
                text = []
            self.member_writer(step.op, step.set, step.version, step.members)
        if text:
            self.runner(["ipset", "restore", "-exist"], "".join(text))

    def _take_adoptable(self) -> dict[str, tuple[int, str]]:
        if self._adoptable is None:
            self._adoptable = {}
            if self._state_file is not None:
                try:
                    data = json.loads(self._state_file.read_text())
                    self._state_file.unlink()
                    self._adoptable = {str(k): (int(v["entries"]), str(v["digest"])) for k, v in data.items() if is_ours(str(k))}
                except FileNotFoundError:
                    pass
                except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                    log.warning("ipset state %s unreadable (%s): every set is read back", self._state_file, exc)
                    with contextlib.suppress(OSError):
                        self._state_file.unlink()
        return self._adoptable

    def save_state(self) -> None:
        """Leave (entries, digest) of every set as last programmed for the next agent
        (called once, when this one stops; the sets stay in the kernel)."""
        if self._state_file is None or not self._cache:
            return
        state = {name: {"entries": len(norm), "digest": members_digest(norm)} for name, (_, norm) in self._cache.items()}
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps(state))
            tmp.replace(self._state_file)
        except OSError as exc:
            log.warning("ipset state not saved to %s (%s): the next agent reads every set back", self._state_file, exc)

    def header_drift(self, desired: Mapping[str, IpSetContent]) -> builtins.list[str]:
        """The cheap check (one ``ipset list -t``: headers, never members): names of
        desired sets that are missing, of another type or family, too small, or whose
        entry count differs from what we last wrote. An edit that keeps the count is
        not seen here (``sync(resync=True)`` reads members)."""
        existing = self.list()
        out = []
        for name, content in desired.items():
            info, cached = existing.get(name), self._cache.get(name)
            if info is None or cached is None or info.type != "hash:net" or info.family != content.family \
                    or info.entries != len(cached[1]) or info.maxelem < info.entries:
                out.append(name)
        return out

    def destroy(self, names: Iterable[str]) -> tuple[builtins.list[str], builtins.list[str]]:
        """Destroy our sets (never anything else); returns (destroyed, errors).
        A set still referenced by a rule cannot be destroyed: that is reported."""
        names = [n for n in names if is_ours(n)]
        if not names:
            return [], []
        try:
            self.runner(["ipset", "restore"], "".join(f"destroy {n}\n" for n in names))
            for n in names:
                self._cache.pop(n, None)
                self._headers.pop(n, None)
            return names, []
        except CommandError:
            pass  # find out which one(s): one by one
        done, errors = [], []
        existing = self.list()
        for n in names:
            if n not in existing:
                done.append(n)
                continue
            try:
                self.runner(["ipset", "destroy", n], None)
                done.append(n)
            except CommandError as exc:
                errors.append(f"ipset {n}: {exc.stderr or exc}")
            self._cache.pop(n, None)
        return done, errors
