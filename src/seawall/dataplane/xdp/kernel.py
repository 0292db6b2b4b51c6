"""What the XDP driver asks of the kernel: the one seam between its decisions and libbpf.

``XdpKernel`` holds exactly the operations the driver's two halves use —
program lifecycle (``lifecycle.py``: interfaces, attachments, pins) and map
synchronisation (``sync.py``: slots, failsafe, counters). ``LibbpfKernel``
(``libbpf_kernel.py``) wraps today's libbpf/loader/maps calls;
``seawall.testing.fake_xdp.FakeXdpKernel`` keeps it all in memory, so the
decisions are unit-tested without root. Failures are ``OSError`` with an
``errno`` (the real kernel raises ``libbpf.LibbpfError``, a subclass). Pure:
no ctypes here, so the fake imports nothing that needs the kernel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.tables import Compiled, MapKind, Write

if TYPE_CHECKING:
    from seawall.dataplane.xdp.maps import Counters


class ProgramRef(Protocol):
    """A loaded program the driver holds open (until ``XdpKernel.release``)."""

    @property
    def prog_id(self) -> int: ...


class Program(ProgramRef, Protocol):
    """A Seawall program with its maps, pinned under ``directory``. ``upgrade``
    and ``move_pins`` change it in place (new id and tag; new directory)."""

    @property
    def tag(self) -> str: ...

    @property
    def directory(self) -> Path: ...


class XdpKernel(Protocol):
    # ------------------------------------------------------------ interfaces

    def ifindex(self, name: str) -> int | None:
        """The interface's index, None if there is no such link."""

    def interfaces(self) -> list[tuple[int, str]]:
        """(ifindex, name) of every link (empty if they cannot be listed)."""

    def xdp_features(self, ifindex: int) -> int | None:
        """The ``NETDEV_XDP_ACT_*`` mask, None when the kernel does not say (before 6.3)."""

    def kernel_version(self) -> tuple[int, int, int]: ...

    # ------------------------------------------------------------ attachments

    def attached(self, ifindex: int) -> list[tuple[Mode, int]]:
        """(mode, program id) of each program attached, fastest mode first."""

    def program_name(self, prog_id: int) -> str:
        """The loaded program's name, "?" if it is gone or has none."""

    def is_seawall(self, prog_id: int) -> bool:
        """Whether the loaded program is a Seawall blocklist program (any run, any build)."""

    def open_program(self, prog_id: int) -> ProgramRef | None:
        """Hold a loaded program by id (None if it is gone)."""

    def attach(self, ifindex: int, program: ProgramRef, mode: Mode, *, replacing: ProgramRef | None = None) -> None:
        """Attach in ``mode``: atomically in place of ``replacing`` (XDP_FLAGS_REPLACE),
        or only if nothing is attached in that mode (XDP_FLAGS_UPDATE_IF_NOEXIST)."""

    def detach(self, ifindex: int, mode: Mode, *, program: ProgramRef) -> None:
        """Detach ``mode``'s program only if it still is ``program`` (XDP_FLAGS_REPLACE)."""

    def release(self, program: ProgramRef) -> None:
        """Close what the driver holds (pins and attachments stay)."""

    # ------------------------------------------------------------ programs and pins

    def ensure_bpffs(self, path: Path) -> None: ...

    def expected_tag(self) -> str:
        """The tag of the program this build loads (an older pinned one is upgraded)."""

    def open_pinned(self, directory: Path) -> Program | None:
        """The program pinned under ``directory`` with its own maps, None if not (completely) pinned."""

    def load_new(self, directory: Path, *, capacities: Mapping[MapKind, int]) -> Program:
        """Load this build's program with hash maps of these sizes, pinned under ``directory``."""

    def adopt(self, directory: Path, program: ProgramRef) -> Program | None:
        """Pin a loaded Seawall program and its own maps under ``directory``; None
        if its maps cannot be reused (another build). ``program`` stays the caller's."""

    def upgrade(self, program: Program, ifindex: int, mode: Mode | None) -> None:
        """Load this build's program on ``program``'s maps, put it in place of the old
        one (REPLACE in ``mode`` if attached) and re-pin it: ``program`` becomes it."""

    def move_pins(self, program: Program, directory: Path) -> None:
        """Move ``program``'s pins to ``directory``, replacing the pins there."""

    def remove_pins(self, directory: Path) -> None: ...

    def pin_dirs(self, directory: Path) -> set[str]:
        """Names of the pin directories under ``directory`` (empty if it does not exist)."""

    def remove_dir(self, directory: Path) -> None:
        """Remove ``directory`` if it is empty."""

    # ------------------------------------------------------------ maps

    def replace(self, program: Program, compiled: Compiled, *, inactive_known_empty: bool,
                old_keys: Mapping[MapKind, bytes] | None = None, fresh: bool = False) -> None:
        """Fill the inactive slot, flip to it, empty the old one (``BlocklistMaps.replace``);
        ``fresh``: a just-loaded program, both slots empty (nothing to clear)."""

    def apply(self, program: Program, writes: Iterable[Write]) -> None:
        """Incremental writes to the active slot; E2BIG when a hash map is full."""

    def active_slot(self, program: Program) -> int: ...

    def read_slot(self, program: Program, slot: int) -> dict[MapKind, dict[bytes, bytes]]:
        """Every non-empty entry of a slot."""

    def holds(self, program: Program, slot: int, compiled: Compiled) -> bool:
        """Whether a slot holds exactly ``compiled`` (read back compactly)."""

    def clear_slot(self, program: Program, slot: int) -> None:
        """Empty a slot (cheap when it is empty already)."""

    def capacities(self, program: Program) -> dict[MapKind, int]: ...

    def set_failsafe(self, program: Program, ports: Iterable[tuple[int, int]]) -> bool:
        """Make the failsafe ports exactly these; whether anything changed."""

    def hit_shift(self, program: Program) -> int: ...

    def set_hit_shift(self, program: Program, shift: int) -> None: ...

    def counters(self, program: Program) -> Counters: ...

    def hits(self, program: Program) -> dict[bytes, int]: ...
