"""Kernel tests: real namespaces, real BPF, real XDP attach. They need root.

Every test collected from this directory is marked ``kernel``; the repo's root
conftest turns a skipped kernel test into a failure when CI=true, so a CI runner
without root or ``ip netns`` fails loudly instead of passing vacuously.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawall.testing.netns import bpffs, require_netns

KERNEL_TESTS = Path(__file__).resolve().parent

#: The tiny XDP program the binding tests load: the verdict comes from a
#: one-element array (0 = pass, 1 = drop); a percpu array counts runs.
TINY_XDP_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u32); } verdict SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024);
         __type(key, __u32); __type(value, __u64); } blocked SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } hits SEC(".maps");
struct odd { __u32 a, b, c; };   /* 12 bytes: percpu slots round up to 16 */
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 16);
         __type(key, __u32); __type(value, struct odd); } odd SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1);   /* resized by tests */
         __type(key, __u32); __type(value, __u32); } big SEC(".maps");

SEC("xdp")
int xdp_toggle(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&hits, &k);
	if (c)
		*c += 1;
	__u32 *v = bpf_map_lookup_elem(&verdict, &k);
	if (v && *v == 1)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int xdp_pass_too(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: Rejected by the verifier: reads the packet without a bounds check.
BAD_XDP_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int xdp_bad(struct xdp_md *ctx)
{
	return *(unsigned char *)(long)ctx->data;
}
char LICENSE[] SEC("license") = "GPL";
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if KERNEL_TESTS in item.path.resolve().parents:
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True, scope="session")
def require_root() -> None:
    reason = require_netns()
    if reason is not None:
        pytest.skip(f"kernel tests need root and iproute2 network namespaces: {reason}")


def compile_bpf(source: str, directory: Path, stem: str) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed: cannot build the test XDP programs")
    src, obj = directory / f"{stem}.bpf.c", directory / f"{stem}.bpf.o"
    src.write_text(source)
    result = subprocess.run(
        [clang, "-O2", "-g", "-Wall", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(src), "-o", str(obj)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, f"clang failed:\n{result.stderr}"
    return obj


@pytest.fixture(scope="session")
def tiny_xdp_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_bpf(TINY_XDP_C, tmp_path_factory.mktemp("bpf"), "tiny")


@pytest.fixture(scope="session")
def bad_xdp_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_bpf(BAD_XDP_C, tmp_path_factory.mktemp("bpf"), "bad")


@pytest.fixture
def test_bpffs() -> Iterator[Path]:
    """A private bpffs mounted for one test, unmounted afterwards."""
    with bpffs(Path("/run") / f"seawall-test-{secrets.token_hex(4)}") as path:
        yield path
