"""Where the compiled BPF object lives, and how it is (re)built with clang.

``make`` builds ``bpf/blocklist.bpf.o`` next to its source. When the object is
missing or older than the source (a development checkout), ``object_path``
compiles it on demand, so tests and the agent always run the current program.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

BPF_DIR = Path(__file__).resolve().parent / "bpf"
SOURCE = BPF_DIR / "blocklist.bpf.c"
OBJECT = BPF_DIR / "blocklist.bpf.o"
CLANG_FLAGS = ["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", f"-I/usr/include/{platform.machine()}-linux-gnu", f"-I{BPF_DIR}"]


class BpfBuildError(RuntimeError):
    pass


def object_path() -> Path:
    """The up-to-date compiled program, building it if needed."""
    sources = [SOURCE, *BPF_DIR.glob("*.h")]
    if OBJECT.exists() and all(OBJECT.stat().st_mtime >= s.stat().st_mtime for s in sources if s.exists()):
        return OBJECT
    return compile_object(SOURCE, OBJECT)


def compile_object(source: Path, output: Path, *, defines: dict[str, str] | None = None) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        raise BpfBuildError("clang is not installed (apt-get install clang libbpf-dev); cannot build the XDP program")
    args = [clang, *CLANG_FLAGS, *(f"-D{k}={v}" for k, v in (defines or {}).items()), "-c", str(source), "-o"]
    tmp = output.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run([*args, str(tmp)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BpfBuildError(f"clang failed to build {source.name}:\n{result.stderr}")
    tmp.replace(output)  # atomic: a concurrent reader never sees half an object
    return output
