"""Loading, pinning and re-opening one interface's blocklist program.

Everything Seawall creates lives under ``<bpffs>/seawall/xdp/<ifname>/``:
``prog`` (the program) and ``maps/<name>``. Pins keep program and maps alive
when the agent exits or is killed; the netlink attachment keeps the program
running on the interface (XDP stays attached without a process). A new agent
re-opens the pins and adopts what is attached, with no gap in protection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.abi import PROGRAM_NAME as PROGRAM_NAME
from seawall.dataplane.xdp.build import object_path
from seawall.dataplane.xdp.maps import MAP_NAMES, SLOT_NAMES, TABLE_MAPS, BlocklistMaps
from seawall.dataplane.xdp.tables import MapKind


@dataclass
class PinnedProgram:
    """A loaded (and pinned) program with its maps."""

    directory: Path
    prog_fd: int
    prog_id: int
    tag: str
    maps: BlocklistMaps

    def close(self) -> None:
        self.maps.close()
        try:
            os.close(self.prog_fd)
        except OSError:
            pass

    def unpin(self) -> None:
        """Remove the pins (the kernel frees program and maps once unused)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def seawall_root(bpffs: Path) -> Path:
    return bpffs / "seawall"


def interface_dir(bpffs: Path, ifname: str) -> Path:
    return seawall_root(bpffs) / "xdp" / ifname


def ensure_bpffs(path: Path) -> None:
    """Mount a bpffs at ``path`` if it is not one (``ip netns exec`` hides /sys/fs/bpf)."""
    path.mkdir(parents=True, exist_ok=True)
    if is_bpffs(path):
        return
    result = subprocess.run(["mount", "-t", "bpf", "bpffs", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not is_bpffs(path):
        raise OSError(f"cannot mount bpffs at {path}: {result.stderr.strip()}")


def is_bpffs(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is the root of a mounted bpffs (from /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and fields[4] == target and right.split()[:1] == ["bpf"]:
                return True
    return False


MIN_CAPACITY = 1 << 14


def capacity_for(entries: int) -> int:
    """Hash map size for ``entries``: twice the need (room to grow without a
    reload), a power of two, at least MIN_CAPACITY. Hash maps allocate their
    bucket array up front, so sizing them to the set keeps kernel memory small."""
    return max(MIN_CAPACITY, 1 << max(0, (2 * entries - 1).bit_length()))


def load_new(
    directory: Path,
    *,
    reuse: BlocklistMaps | None = None,
    capacities: Mapping[MapKind, int] | None = None,
) -> PinnedProgram:
    """Load the program (sharing ``reuse``'s maps if given, else with hash maps
    sized by ``capacities``), pin it and its maps."""
    obj = libbpf.BpfObject.open_file(str(object_path()))
    try:
        for kind, size in (capacities or {}).items():
            for slot in SLOT_NAMES:
                obj.set_map_max_entries(f"{TABLE_MAPS[kind]}_{slot}", size)
        if reuse is not None:
            for name in MAP_NAMES:
                obj.reuse_map_fd(name, reuse.fds[name])
        obj.load()
        prog_fd = os.dup(obj.program_fd(PROGRAM_NAME))
        fds = {name: os.dup(obj.map_fd(name)) for name in MAP_NAMES}
    finally:
        obj.close()
    info = libbpf.prog_info(prog_fd)
    _remember_tag(info.tag)
    (directory / "maps").mkdir(parents=True, exist_ok=True)
    for name, fd in fds.items():  # replace leftovers: the pins must be this program's maps
        _repin(fd, directory / "maps" / name)
    _repin(prog_fd, directory / "prog")
    return PinnedProgram(directory, prog_fd, info.id, info.tag, BlocklistMaps(fds))


def replace_program_pin(program: PinnedProgram, new_fd: int) -> None:
    _repin(new_fd, program.directory / "prog")


def _repin(fd: int, pin: Path) -> None:
    tmp = pin.with_name(pin.name + "_new")  # bpffs refuses names with dots
    if tmp.exists():
        tmp.unlink()
    libbpf.obj_pin(fd, str(tmp))
    os.replace(tmp, pin)  # bpffs supports rename: the pin is never missing


def open_pinned(directory: Path) -> PinnedProgram | None:
    """Re-open a pinned program and its maps, or None if not (completely) pinned.

    The maps are the *program's own* (by the map ids the kernel reports for it),
    not whatever ``maps/`` holds: two loaders racing on one directory used to
    leave the prog pin of one and the map pins of the other, and writing those
    maps changed nothing the attached program reads. Map pins that disagree
    are re-pinned."""
    if not (directory / "prog").exists():
        return None
    try:
        prog_fd = libbpf.obj_get(str(directory / "prog"))
    except (libbpf.LibbpfError, OSError):
        return None
    program = _with_own_maps(directory, prog_fd)
    if program is None:
        os.close(prog_fd)
        return None
    _pin_maps(program)
    return program


def _map_fds(map_ids: Iterable[int]) -> Iterator[tuple[str, int]]:
    """(name, fd) of each map id, in order: the one walk over a program's maps.
    The caller owns (closes) each fd yielded; errors propagate."""
    for map_id in map_ids:
        fd = libbpf.map_fd_by_id(map_id)
        try:
            name = libbpf.map_info(fd).name
        except BaseException:
            os.close(fd)
            raise
        yield name, fd


def program_maps(prog_fd: int) -> dict[str, int] | None:
    """Fds of a loaded program's blocklist maps (by name, from its map ids), or
    None if it does not have every map a Seawall program has."""
    fds: dict[str, int] = {}
    try:
        for name, fd in _map_fds(libbpf.prog_info(prog_fd).map_ids):
            if name in MAP_NAMES and name not in fds:
                fds[name] = fd
            else:
                os.close(fd)
    except (libbpf.LibbpfError, OSError):
        for fd in fds.values():
            os.close(fd)
        return None
    if any(name not in fds for name in MAP_NAMES):
        for fd in fds.values():
            os.close(fd)
        return None
    return fds


def is_seawall_program(prog_id: int) -> bool:
    """Whether the loaded program ``prog_id`` is a Seawall blocklist program (of
    this run or an older one, pinned or not): named ``seawall_xdp`` with an
    ``sw_cfg`` map. Anything else is someone else's."""
    try:
        fd = libbpf.prog_fd_by_id(prog_id)
    except (libbpf.LibbpfError, OSError):
        return False
    try:
        info = libbpf.prog_info(fd)
        if info.name != PROGRAM_NAME:
            return False
        for name, map_fd in _map_fds(info.map_ids):
            os.close(map_fd)
            if name == "sw_cfg":
                return True
        return False
    except (libbpf.LibbpfError, OSError):
        return False
    finally:
        os.close(fd)


def adopt(directory: Path, prog_fd: int) -> PinnedProgram | None:
    """Take over a loaded Seawall program (e.g. attached by another agent and
    pinned elsewhere, or not at all): pin it and its own maps under
    ``directory``, replacing what is pinned there. Takes ownership of
    ``prog_fd``. None (``prog_fd`` closed) if it lacks a Seawall map."""
    program = _with_own_maps(directory, prog_fd)
    if program is None:
        os.close(prog_fd)
        return None
    _pin_maps(program)
    _repin(prog_fd, directory / "prog")
    return program


def _with_own_maps(directory: Path, prog_fd: int) -> PinnedProgram | None:
    fds = program_maps(prog_fd)
    if fds is None:
        return None
    info = libbpf.prog_info(prog_fd)
    return PinnedProgram(directory, prog_fd, info.id, info.tag, BlocklistMaps(fds))


def _pin_maps(program: PinnedProgram) -> None:
    """Pin the program's maps under ``maps/``, re-pinning a pin that holds another map."""
    (program.directory / "maps").mkdir(parents=True, exist_ok=True)
    for name, fd in program.maps.fds.items():
        pin = program.directory / "maps" / name
        if pin.exists():
            if _pinned_id(pin) == libbpf.map_info(fd).id:
                continue
        _repin(fd, pin)


def _pinned_id(pin: Path) -> int | None:
    try:
        fd = libbpf.obj_get(str(pin))
    except (libbpf.LibbpfError, OSError):
        return None
    try:
        return libbpf.map_info(fd).id
    except (libbpf.LibbpfError, OSError):
        return None
    finally:
        os.close(fd)


_EXPECTED_TAG: dict[str, str] = {}


def _tag_key() -> tuple[str, str]:
    """The object and what its program's tag depends on: the object's bytes (by mtime and
    size) and the kernel (CO-RE relocations follow its BTF)."""
    path = str(object_path())
    stat = os.stat(path)
    return path, f"{path}:{stat.st_mtime_ns}:{stat.st_size}:{os.uname().release}"


def _tag_file(path: str) -> Path:
    return Path(path + ".tag")  # next to the object (built there, ignored by git)


def _stored_tag(path: str, key: str) -> str | None:
    try:
        stored = json.loads(_tag_file(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("tag"), str):
        return str(stored["tag"])
    return None


def _store_tag(path: str, key: str, tag: str) -> None:
    """Kept for the next agent: a restart otherwise loads the object once more only to
    learn the tag its pinned program should have (~0.15 s before the first XDP pass)."""
    target = _tag_file(path)
    temporary = target.with_name(f"{target.name}.{os.getpid()}")
    try:
        temporary.write_text(json.dumps({"key": key, "tag": tag}))
        temporary.replace(target)
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only install: asked again next time


def _remember_tag(tag: str) -> None:
    """A program just loaded from this build's object has the tag it would load with:
    the kernel computes it over the instructions before map addresses are filled in,
    so neither the maps' sizes nor which maps are reused change it."""
    path, key = _tag_key()
    if key not in _EXPECTED_TAG:
        _EXPECTED_TAG[key] = tag
        if _stored_tag(path, key) != tag:
            _store_tag(path, key, tag)


def expected_tag() -> str:
    """The tag of the program this build would load (to detect an outdated pin): known
    from this process's loads, else from the last agent's (``_store_tag``), else by a load."""
    path, key = _tag_key()
    if key not in _EXPECTED_TAG:
        stored = _stored_tag(path, key)
        if stored is not None:
            _EXPECTED_TAG[key] = stored
            return stored
        obj = libbpf.BpfObject.open_file(path)
        try:
            for name in MAP_NAMES:  # shrink the throwaway hash maps
                if obj.map_type(name) in (libbpf.BPF_MAP_TYPE_HASH, libbpf.BPF_MAP_TYPE_LRU_PERCPU_HASH):
                    obj.set_map_max_entries(name, 1)
            obj.load()
            tag = libbpf.prog_info(obj.program_fd(PROGRAM_NAME)).tag
        finally:
            obj.close()
        _remember_tag(tag)
    return _EXPECTED_TAG[key]
