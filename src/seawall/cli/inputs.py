"""Reading ``-f FILE | DIR | -`` arguments into (text, source name) pairs.

All files are read and decoded before anything else happens, so a bad file
late in the list stops the command before the first write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seawall.api import DocumentError, FieldError, SourceDocument, ValidationFailed, split_documents

_EXTENSIONS = (".yaml", ".yml", ".json")


def read_sources(paths: tuple[str, ...], *, recursive: bool = False) -> list[tuple[str, str]]:
    """Expand -f arguments to (text, source) pairs; raises ValidationFailed on I/O errors."""
    out: list[tuple[str, str]] = []
    failures: list[DocumentError] = []
    for arg in paths:
        if arg == "-":
            out.append((sys.stdin.read(), "<stdin>"))
            continue
        path = Path(arg)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix in _EXTENSIONS)
            if not files:
                failures.append(_io_error(arg, "directory holds no .yaml, .yml or .json file"))
            for file in files:
                _read_file(file, out, failures)
        else:
            _read_file(path, out, failures)
    if failures:
        raise ValidationFailed(failures)
    return out


def _read_file(path: Path, out: list[tuple[str, str]], failures: list[DocumentError]) -> None:
    try:
        out.append((path.read_text(encoding="utf-8"), str(path)))
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
