"""What the kernel says about a loaded program or map (``bpf_obj_get_info_by_fd``),
and fds for programs and maps by id.

The info call fills whatever struct matches the fd's type, so :func:`fd_kind`
checks the fd first; results come back as frozen :class:`ProgInfo` /
:class:`MapInfo`.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from ctypes import byref, c_uint32, sizeof
from dataclasses import dataclass

from seawall.dataplane.xdp.libbpf.errors import _check, error
from seawall.dataplane.xdp.libbpf.library import lib
from seawall.dataplane.xdp.libbpf.structs import BpfMapInfo, BpfProgInfo


@dataclass(frozen=True)
class ProgInfo:
    """A loaded program, from bpf_obj_get_info_by_fd. ``name`` is truncated to
    15 characters by the kernel; run_cnt/run_time_ns count only while
    kernel.bpf_stats_enabled=1."""

    id: int
    tag: str
    name: str
    type: int
    map_ids: tuple[int, ...]
    xlated_prog_len: int
    run_cnt: int
    run_time_ns: int


@dataclass(frozen=True)
class MapInfo:
    """A map, from bpf_obj_get_info_by_fd."""

    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str


def prog_fd_by_id(prog_id: int) -> int:
    return _check("bpf_prog_get_fd_by_id", lib().bpf_prog_get_fd_by_id(prog_id), f"id {prog_id}")


def map_fd_by_id(map_id: int) -> int:
    return _check("bpf_map_get_fd_by_id", lib().bpf_map_get_fd_by_id(map_id), f"id {map_id}")


def fd_kind(fd: int) -> str | None:
    """"prog", "map", "link" or None, from /proc/self/fdinfo (the kernel's own label)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            text = f.read()
    except OSError:
        return None
    for kind, marker in (("prog", "prog_tag:"), ("link", "link_type:"), ("map", "map_type:")):
        if marker in text:
            return kind
    return None


def _info(fd: int, info: ctypes.Structure, kind: str) -> None:
    # bpf_obj_get_info_by_fd fills whatever struct matches the fd's type, so a
    # map fd passed as a program would "succeed" with garbage: check first.
    actual = fd_kind(fd)
    if actual != kind:
        raise error(_errno.EBADF if actual is None else _errno.EINVAL, "bpf_obj_get_info_by_fd",
                    f"fd {fd} is {actual or 'not a BPF object'}, expected {kind}")
    size = c_uint32(sizeof(info))
    _check("bpf_obj_get_info_by_fd", lib().bpf_obj_get_info_by_fd(fd, byref(info), byref(size)), f"fd {fd}")


def prog_info(fd: int) -> ProgInfo:
    info = BpfProgInfo()
    _info(fd, info, "prog")
    ids = (c_uint32 * 0)()
    for _ in range(4):  # the map count can change between calls only via a reload; bounded anyway
        want = info.nr_map_ids
        if want <= len(ids):
            break
        ids = (c_uint32 * want)()
        info = BpfProgInfo(nr_map_ids=want, map_ids=ctypes.addressof(ids))
        _info(fd, info, "prog")
    return ProgInfo(id=info.id, tag=bytes(info.tag).hex(), name=info.name.decode(), type=info.type,
                    map_ids=tuple(ids[: min(info.nr_map_ids, len(ids))]),
                    xlated_prog_len=info.xlated_prog_len, run_cnt=info.run_cnt, run_time_ns=info.run_time_ns)


def map_info(fd: int) -> MapInfo:
    info = BpfMapInfo()
    _info(fd, info, "map")
    return MapInfo(id=info.id, type=info.type, key_size=info.key_size, value_size=info.value_size,
                   max_entries=info.max_entries, map_flags=info.map_flags, name=info.name.decode())
