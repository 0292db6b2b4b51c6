"""Which iptables flavour to drive (legacy or nft), and the one way we run commands.

Two programs writing the same host through different backends would each see
only half of the rules, so ``Auto`` follows the host: whichever backend already
holds more rules wins (ties, including an empty host, go to nft), as Calico
does. Every subprocess goes through a :data:`Runner` so unit tests can replace
the kernel with a fake and kernel tests can prefix ``ip netns exec NS``.
"""

from __future__ import annotations

import enum
import subprocess
from collections.abc import Callable, Sequence


class CommandError(RuntimeError):
    """A command failed; carries argv, exit code and stderr for the report."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(self.argv[:4])}{' ...' if len(self.argv) > 4 else ''}: "
                         f"exit {returncode}: {self.stderr or '(no stderr)'}")


#: ``runner(argv, stdin)`` runs argv (feeding ``stdin`` if given) and returns stdout,
#: raising :class:`CommandError` on a non-zero exit or a missing binary.
Runner = Callable[[Sequence[str], "str | None"], str]


class SubprocessRunner:
    """The real runner; ``prefix`` (e.g. ``["ip", "netns", "exec", ns]``) goes before every argv."""

    def __init__(self, prefix: Sequence[str] = (), *, timeout: float = 300.0) -> None:
        self.prefix = list(prefix)
        self.timeout = timeout

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> str:
        full = [*self.prefix, *argv]
        try:
            result = subprocess.run(full, input=stdin, capture_output=True, text=True,
                                    check=False, timeout=self.timeout)
        except FileNotFoundError as exc:
            raise CommandError(full, 127, f"not found: {exc.filename}") from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandError(full, -1, f"timed out after {self.timeout}s") from exc
        if result.returncode != 0:
            raise CommandError(full, result.returncode, result.stderr)
        return result.stdout


class Backend(enum.Enum):
    LEGACY = "legacy"
    NFT = "nft"


def binaries(backend: Backend, family: int) -> dict[str, str]:
    """Command names for one backend and IP family: keys ``cmd``, ``save``, ``restore``."""
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    base = "iptables" if family == 4 else "ip6tables"
    flavour = backend.value
    return {"cmd": f"{base}-{flavour}", "save": f"{base}-{flavour}-save",
            "restore": f"{base}-{flavour}-restore"}


def count_rules(save_output: str) -> int:
    """Rules in ``*-save`` output (lines that append to a chain)."""
    return sum(1 for line in save_output.splitlines()
               if line.startswith("-A ") or (line.startswith("[") and "] -A " in line))


def detect(requested: str, runner: Runner) -> tuple[Backend, str]:
    """Resolve ``FelixConfiguration.iptablesBackend`` (Auto | Legacy | NFT) to a backend, with why."""
    norm = (requested or "Auto").strip().lower()
    if norm == "legacy":
        return Backend.LEGACY, "iptablesBackend is Legacy"
    if norm == "nft":
        return Backend.NFT, "iptablesBackend is NFT"
    if norm != "auto":
        raise ValueError(f"iptablesBackend must be Auto, Legacy or NFT, not {requested!r}")
    counts: dict[Backend, int] = {}
    notes: list[str] = []
    for backend in (Backend.LEGACY, Backend.NFT):
        total = 0
        for family in (4, 6):
            name = binaries(backend, family)["save"]
            try:
                # No "-t": listing only existing tables does not load legacy modules.
                total += count_rules(runner([name], None))
            except CommandError as exc:
                notes.append(f"{name} unavailable ({exc.stderr or exc.returncode})")
        counts[backend] = total
    legacy, nft = counts[Backend.LEGACY], counts[Backend.NFT]
    extra = f"; {'; '.join(notes)}" if notes else ""
    if legacy > nft:
        return Backend.LEGACY, f"Auto: host has {legacy} legacy rules vs {nft} nft rules{extra}"
    if nft > legacy:
        return Backend.NFT, f"Auto: host has {nft} nft rules vs {legacy} legacy rules{extra}"
    return Backend.NFT, f"Auto: tie ({nft} nft vs {legacy} legacy rules) goes to nft{extra}"
