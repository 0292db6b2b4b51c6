"""Reading ``-f FILE | DIR | -`` arguments into (text, source name) pairs.

All files are read and decoded before anything else happens, so a bad file
late in the list stops the command before the first write.

Only regular files (and ``-`` for stdin) are read, and each input may hold at
most ``MAX_INPUT_BYTES`` (256 MiB; a GlobalNetworkSet of 1,000,000 nets is
about 20 MB), so ``-f /dev/zero`` or a FIFO fails with a clear error instead
of reading forever.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from seawall.api import DocumentError, FieldError, SourceDocument, ValidationFailed, split_documents

_EXTENSIONS = (".yaml", ".yml", ".json")
MAX_INPUT_BYTES = 256 << 20
_NOT_REGULAR = "not a regular file (give a file, a directory, or '-' for stdin)"
_TOO_LARGE = f"input is larger than the {MAX_INPUT_BYTES >> 20} MiB limit"


def read_sources(paths: tuple[str, ...], *, recursive: bool = False) -> list[tuple[str, str]]:
    """Expand -f arguments to (text, source) pairs; raises ValidationFailed on I/O errors."""
    out: list[tuple[str, str]] = []
    failures: list[DocumentError] = []
    for arg in paths:
        if arg == "-":
            _read_stdin(out, failures)
            continue
        path = Path(arg)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in _EXTENSIONS)
            if not files:
                failures.append(_io_error(arg, "directory holds no .yaml, .yml or .json file"))
            for file in files:
                _read_file(file, out, failures)
        else:
            _read_file(path, out, failures)
    if failures:
        raise ValidationFailed(failures)
    return out


def _read_stdin(out: list[tuple[str, str]], failures: list[DocumentError]) -> None:
    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is None:
            text = sys.stdin.read(MAX_INPUT_BYTES + 1)
            if len(text) > MAX_INPUT_BYTES:
                failures.append(_io_error("<stdin>", _TOO_LARGE))
                return
        else:
            data = stream.read(MAX_INPUT_BYTES + 1)
            if len(data) > MAX_INPUT_BYTES:
                failures.append(_io_error("<stdin>", _TOO_LARGE))
                return
            text = _universal_newlines(data.decode("utf-8"))
    except UnicodeDecodeError:
        failures.append(_io_error("<stdin>", "input is not UTF-8 text"))
        return
    out.append((text, "<stdin>"))


def _universal_newlines(text: str) -> str:
    """What text-mode reading did before: CRLF and CR become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _read_file(path: Path, out: list[tuple[str, str]], failures: list[DocumentError]) -> None:
    try:
        # stat before opening (opening a FIFO would block), fstat after (races)
        if not stat.S_ISREG(path.stat().st_mode):
            failures.append(_io_error(str(path), _NOT_REGULAR))
            return
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                failures.append(_io_error(str(path), _NOT_REGULAR))
                return
            data = handle.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            failures.append(_io_error(str(path), _TOO_LARGE))
            return
        out.append((_universal_newlines(data.decode("utf-8")), str(path)))
    except FileNotFoundError:
        failures.append(_io_error(str(path), "no such file or directory"))
    except UnicodeDecodeError:
        failures.append(_io_error(str(path), "file is not UTF-8 text"))
    except OSError as exc:
        failures.append(_io_error(str(path), exc.strerror or str(exc)))


def _io_error(source: str, reason: str) -> DocumentError:
    return DocumentError(source, "-", None, None, [FieldError("", reason)])


def read_documents(paths: tuple[str, ...], *, recursive: bool = False) -> tuple[list[SourceDocument], list[DocumentError]]:
    """Every document of every input, plus the inputs that could not be decoded
    (reported together with the validation errors of the rest: all errors at once)."""
    docs: list[SourceDocument] = []
    failures: list[DocumentError] = []
    for text, source in read_sources(paths, recursive=recursive):
        try:
            docs.extend(split_documents(text, source))
        except DocumentError as exc:
            failures.append(exc)
    return docs, failures
