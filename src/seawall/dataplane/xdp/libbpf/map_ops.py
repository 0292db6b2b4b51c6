"""Map element operations on a map fd: lookup, update, delete, iteration,
batches (with a per-element fallback) and per-CPU values.

Keys and values are ``bytes`` of exactly the map's key/value size; the kernel
reads ``key_size`` bytes from the pointer, so a short key is not detected here.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
from collections.abc import Iterator, Sequence
from ctypes import byref, c_char_p, c_uint32, c_void_p, sizeof

from seawall.dataplane.xdp.libbpf.constants import BPF_ANY, ENOTSUPP
from seawall.dataplane.xdp.libbpf.errors import LibbpfError, _check, error
from seawall.dataplane.xdp.libbpf.info import map_info
from seawall.dataplane.xdp.libbpf.library import lib
from seawall.dataplane.xdp.libbpf.structs import BpfMapBatchOpts, BpfMapCreateOpts


def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int, *,
               map_flags: int = 0, inner_map_fd: int = 0) -> int:
    """A new caller-owned map fd (e.g. an inner map for map-in-map swaps)."""
    opts = BpfMapCreateOpts(sz=sizeof(BpfMapCreateOpts), map_flags=map_flags, inner_map_fd=inner_map_fd)
    return _check("bpf_map_create", lib().bpf_map_create(
        map_type, name.encode()[:15], key_size, value_size, max_entries, byref(opts)), name)


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    buf = ctypes.create_string_buffer(value_size)
    rc = lib().bpf_map_lookup_elem(fd, key, buf)
    if rc == -_errno.ENOENT:
        return None
    _check("bpf_map_lookup_elem", rc)
    return buf.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _check("bpf_map_update_elem", lib().bpf_map_update_elem(fd, key, value, flags))


def map_delete(fd: int, key: bytes) -> bool:
    """Delete one element; False if it was absent."""
    rc = lib().bpf_map_delete_elem(fd, key)
    if rc == -_errno.ENOENT:
        return False
    _check("bpf_map_delete_elem", rc)
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first key if None); None at the end. For a
    hash map, a ``key`` that is no longer present restarts from the first key."""
    out = ctypes.create_string_buffer(key_size)
    rc = lib().bpf_map_get_next_key(fd, key, out)
    if rc == -_errno.ENOENT:
        return None
    _check("bpf_map_get_next_key", rc)
    return out.raw


def map_keys(fd: int, key_size: int) -> Iterator[bytes]:
    """Iterate keys; bounded by max_entries so concurrent deletes (which make a
    hash walk restart) cannot loop forever -- keys may then repeat or be missed."""
    key: bytes | None = None
    for _ in range(map_info(fd).max_entries):
        key = map_next_key(fd, key, key_size)
        if key is None:
            return
        yield key


_NO_BATCH = (_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP)


def _addr(buf: bytes) -> int:
    return ctypes.cast(c_char_p(buf), c_void_p).value or 0


def _stride(buf: bytes, count: int, what: str) -> int:
    if count <= 0 or len(buf) % count:
        raise ValueError(f"{what}: {len(buf)} bytes is not {count} equal elements")
    return len(buf) // count


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int, flags: int = BPF_ANY) -> None:
    """Update ``count`` elements (keys/values packed back to back) in as few
    syscalls as the kernel allows (5.6+). The kernel may stop early and report
    how many it did; we resume from there. Map types without batch support
    (EINVAL/ENOTSUPP before any progress) fall back to one update per element.
    On failure the error's ``done`` says how many elements were written."""
    if count == 0:
        return
    keys, values = bytes(keys), bytes(values)
    ks, vs = _stride(keys, count, "keys"), _stride(values, count, "values")
    opts = BpfMapBatchOpts(sz=sizeof(BpfMapBatchOpts), elem_flags=flags)
    done, stalls = 0, 0
    while done < count and stalls < 3:  # every round makes progress or counts as a stall
        n = c_uint32(count - done)
        rc = lib().bpf_map_update_batch(fd, _addr(keys) + done * ks, _addr(values) + done * vs, byref(n), byref(opts))
        # On an up-front rejection the kernel never writes count back, so an
        # error with count unchanged means "none done".
        step = n.value if rc == 0 or n.value < count - done else 0
        if rc < 0 and -rc in _NO_BATCH and done == 0 and step == 0:
            for i in range(count):
                try:
                    map_update(fd, keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs], flags)
                except LibbpfError as exc:
                    exc.done = i
                    raise
            return
        done += step
        stalls = 0 if step else stalls + 1
        if rc < 0 and -rc not in (_errno.EINTR, _errno.EAGAIN):
            failure = error(-rc, "bpf_map_update_batch", f"{done} of {count} elements updated")
            failure.done = done
            raise failure
    if done < count:
        raise error(_errno.EIO, "bpf_map_update_batch", f"no progress after {done} of {count} elements")


def map_delete_batch(fd: int, keys: bytes, count: int) -> int:
    """Delete ``count`` keys; absent keys are skipped (the kernel stops at the
    first ENOENT, we step over it). Returns how many elements were deleted.
    Falls back to per-element deletes like :func:`map_update_batch`."""
    if count == 0:
        return 0
    keys = bytes(keys)
    ks = _stride(keys, count, "keys")
    opts = BpfMapBatchOpts(sz=sizeof(BpfMapBatchOpts))
    pos, deleted = 0, 0
    for _ in range(count + 3):  # each round deletes >= 1 key, skips 1 absent key, or ends
        if pos >= count:
            return deleted
        n = c_uint32(count - pos)
        rc = lib().bpf_map_delete_batch(fd, _addr(keys) + pos * ks, byref(n), byref(opts))
        step = n.value if rc == 0 or n.value < count - pos else 0
        if rc < 0 and -rc in _NO_BATCH and pos == 0 and step == 0:
            return sum(map_delete(fd, keys[i * ks:(i + 1) * ks]) for i in range(count))
        pos, deleted = pos + step, deleted + step
        if rc == -_errno.ENOENT:
            pos += 1  # the key at ``pos`` was absent
        elif rc < 0 and -rc not in (_errno.EINTR, _errno.EAGAIN):
            raise error(-rc, "bpf_map_delete_batch", f"{deleted} deleted, failed at element {pos} of {count}")
        elif rc == 0 and step == 0:
            break
    if pos < count:
        raise error(_errno.EIO, "bpf_map_delete_batch", f"no progress at element {pos} of {count}")
    return deleted


def map_dump(fd: int, key_size: int, value_size: int, *, chunk: int = 4096) -> dict[bytes, bytes]:
    """Every element of a (non-percpu) map, as a dict (see ``map_dump_raw``)."""
    keys, values, count = map_dump_raw(fd, key_size, value_size, chunk=chunk)
    return {keys[i * key_size:(i + 1) * key_size]: values[i * value_size:(i + 1) * value_size] for i in range(count)}


def map_dump_raw(fd: int, key_size: int, value_size: int, *, chunk: int = 4096) -> tuple[bytes, bytes, int]:
    """Every element of a (non-percpu) map as packed keys, packed values and a
    count, via BPF_MAP_LOOKUP_BATCH (5.6+; a hash map answers bucket by bucket,
    ENOSPC means a bucket outgrew ``chunk``) or, where the map type has no batch
    lookup, key by key. Packed, a million elements cost two buffers, not a million
    Python objects."""
    limit = map_info(fd).max_entries
    token_size = max(key_size, 8)  # hash maps use a u32 bucket index, arrays a key
    tok_in, tok_out = ctypes.create_string_buffer(token_size), ctypes.create_string_buffer(token_size)
    opts = BpfMapBatchOpts(sz=sizeof(BpfMapBatchOpts))
    key_parts: list[bytes] = []
    value_parts: list[bytes] = []
    total, first = 0, True
    for _ in range(limit + 64):  # every round returns >= 1 element, grows chunk, or ends
        keys, vals = ctypes.create_string_buffer(chunk * key_size), ctypes.create_string_buffer(chunk * value_size)
        n = c_uint32(chunk)
        rc = lib().bpf_map_lookup_batch(fd, None if first else tok_in, tok_out, keys, vals, byref(n), byref(opts))
        if rc < 0 and -rc in _NO_BATCH and first:
            found = [(k, v) for k in map_keys(fd, key_size) if (v := map_lookup(fd, k, value_size)) is not None]
            return b"".join(k for k, _ in found), b"".join(v for _, v in found), len(found)
        if rc == -_errno.ENOSPC and chunk < limit + 1:
            chunk *= 4
            continue
        if rc < 0 and rc != -_errno.ENOENT:
            raise error(-rc, "bpf_map_lookup_batch", f"after {total} elements")
        got = n.value  # written back on success and on the ENOENT end marker
        key_parts.append(keys.raw[:got * key_size])
        value_parts.append(vals.raw[:got * value_size])
        total += got
        if rc == -_errno.ENOENT:  # the end (possibly with a last partial batch)
            return b"".join(key_parts), b"".join(value_parts), total
        ctypes.memmove(tok_in, tok_out, token_size)
        first = False
        chunk = min(chunk * 2, 1 << 16)  # fewer rounds for a big map
    raise error(_errno.EIO, "bpf_map_lookup_batch", f"no end after {total} elements")


def map_mmap(fd: int, length: int) -> mmap.mmap:
    """A shared, writable mapping of a BPF_F_MMAPABLE array's values (each
    element rounded up to 8 bytes): stores land in the map, as packets see it."""
    return mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


def num_possible_cpus() -> int:
    return _check("libbpf_num_possible_cpus", lib().libbpf_num_possible_cpus())


def percpu_slot(value_size: int) -> int:
    """Per-CPU stride of a percpu map value: rounded up to 8 bytes."""
    return (value_size + 7) & ~7


def map_lookup_percpu(fd: int, key: bytes, value_size: int) -> list[bytes]:
    """One value per possible CPU; an empty list if the key is absent (a
    percpu hash entry deleted under us reads as "no counts")."""
    slot, ncpu = percpu_slot(value_size), num_possible_cpus()
    raw = map_lookup(fd, key, slot * ncpu)
    return [] if raw is None else [raw[i * slot:i * slot + value_size] for i in range(ncpu)]


def map_update_percpu(fd: int, key: bytes, values: Sequence[bytes] | bytes, value_size: int,
                      flags: int = BPF_ANY) -> None:
    """Set every CPU's value (one ``bytes`` is copied to all CPUs)."""
    slot, ncpu = percpu_slot(value_size), num_possible_cpus()
    per = [values] * ncpu if isinstance(values, bytes) else list(values)
    if len(per) != ncpu or any(len(v) != value_size for v in per):
        raise ValueError(f"need {ncpu} values of {value_size} bytes")
    map_update(fd, key, b"".join(v.ljust(slot, b"\0") for v in per), flags)
