"""Install truth: every program, library and build file the project uses is installed by the set-up.

``packaging/debian-packages.tsv`` is the one list (``kind<TAB>name<TAB>package<TAB>why``); the
Makefile's ``APT_PACKAGES`` is read from it. This module (test tooling, not product code) finds what
the code really runs, so ``tests/unit/test_install_truth.py`` turns red when something runs a
program the table does not install:

* Python (:func:`scan_python`): every ``subprocess``/``os.exec*``/``os.spawn*``/``os.system``/
  ``os.popen``/``shutil.which``/``asyncio.create_subprocess_*`` call, and every call of a *wrapper*:
  a function whose own parameter ends up at the program position of such a call (``_run(args)``,
  ``run_in(ns, cmd)``, ``SubprocessRunner.__call__(argv)``, a class whose ``__init__`` parameter
  becomes ``self.prefix`` of the argv, ...), found automatically to a fixed point. The argv is
  resolved by a small abstract interpreter: list/tuple literals, ``*starred`` parts, ``+``,
  ``x if c else y``, ``a or b``, names and ``self.attr`` assigned in the same function, class or
  module, ``for`` targets, f-strings, ``Enum`` ``.value``, calls of project functions that return a
  list/str/dict (``binaries(...)["restore"]``, ``etcd_binary()``), ``shutil.which("x")``,
  ``os.environ.get(k, default)``. ``ip netns exec NS prog``, ``nsenter``/``unshare``/``env``/
  ``timeout``... ``prog`` and ``sh -c SCRIPT`` are looked through. What cannot be resolved needs a
  ``# runs: prog1 prog2`` (or ``# runs: (built)`` for a binary the test just compiled) comment on
  the call's lines or the line above.
* Shell (:func:`shell_commands`): examples/*.sh, .ci/run, the Makefile's recipes (``make -n -B``)
  and its ``$(shell ...)``: each simple command's first word, with bashlex (a tokenizer where
  bashlex cannot parse).
* ctypes: ``CDLL``/``PyDLL``/``cdll.LoadLibrary`` names must be ``library`` rows.
"""

from __future__ import annotations

import ast
import io
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "packaging" / "debian-packages.tsv"
PY_DIRS = ("src", "tests", "bench", "examples")
KINDS = ("program", "library", "file")
FIX_TABLE = "add it to packaging/debian-packages.tsv (kind program, its Debian package: dpkg -S \"$(readlink -f \"$(command -v PROG)\")\")"
FIX_PRAGMA = ("resolve it statically (a literal list, a name assigned one, ...) or declare what it runs with a "
              "'# runs: prog1 prog2' comment on the call's line or the line above ('# runs: (built)' for a binary the test built)")

# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    kind: str
    name: str
    package: str
    why: str
    line: int


def parse_table(text: str) -> tuple[list[Row], list[str]]:
    """Rows and format errors of the tsv text."""
    rows: list[Row] = []
    errors: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cols = raw.split("\t")
        if len(cols) != 4 or not all(c.strip() for c in cols):
            errors.append(f"line {n}: want 4 tab-separated non-empty columns (kind, name, package, why), got {cols!r}")
            continue
        kind, name, package, why = (c.strip() for c in cols)
        if kind not in KINDS:
            errors.append(f"line {n}: kind {kind!r} is not one of {KINDS}")
            continue
        rows.append(Row(kind, name, package, why, n))
    return rows, errors


def load_table(path: Path = TABLE) -> list[Row]:
    rows, errors = parse_table(path.read_text())
    if errors:
        raise ValueError(f"{path}: " + "; ".join(errors))
    return rows


def programs_of(rows: Iterable[Row]) -> set[str]:
    return {r.name for r in rows if r.kind == "program"}


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class Use:
    path: str
    line: int
    name: str  # program basename or library name
    how: str


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str


@dataclass
class Report:
    programs: list[Use] = field(default_factory=list)
    libraries: list[Use] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    wrappers: dict[str, str] = field(default_factory=dict)  # "module:qualname" -> "param (kind)"


def missing_programs(uses: Iterable[Use], known: set[str]) -> list[str]:
    return sorted({f"{u.path}:{u.line}: runs {u.name!r} ({u.how}), which packaging/debian-packages.tsv does not install: "
                   f"add it to packaging/debian-packages.tsv" for u in uses if u.name not in known})


# ---------------------------------------------------------------- shell

HOLE = "\x00"  # stands for a part of a string that cannot be resolved statically
SHELL_BUILTINS = frozenset("""
    : . [ [[ ]] alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs disown
    echo enable eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile popd
    printf pushd pwd read readarray readonly return set shift shopt source suspend test times trap true type typeset
    ulimit umask unalias unset wait
""".split())
SHELL_KEYWORDS = frozenset("if then else elif fi for while until do done case esac in function select time { } ! coproc".split())
# Programs that run the command after their options: ``prog [opts] cmd ...``.
EXEC_WRAPPERS = {"exec": 0, "command": 0, "nohup": 0, "env": 0, "nice": 0, "nsenter": 0, "unshare": 0, "setpriv": 0,
                 "sudo": 0, "stdbuf": 0, "chroot": 1, "timeout": 1, "taskset": 1, "chrt": 1, "xargs": 0, "setsid": 0}
SHELLS = frozenset({"sh", "bash", "dash"})


@dataclass(frozen=True)
class ShellCommand:
    line: int
    word: str  # the command word as written
    note: str = ""


def _exec_target(words: list[str], i: int) -> int | None:
    """Index of the command run by the exec wrapper at ``words[i]`` (None: none)."""
    name = os.path.basename(words[i])
    j = i + 1
    while j < len(words) and (words[j].startswith("-") or (name == "env" and "=" in words[j] and not words[j].startswith("="))):
        j += 1
    j += EXEC_WRAPPERS[name]
    return j if j < len(words) else None


def _words_commands(words: list[str], line: int, functions: set[str]) -> Iterator[ShellCommand]:
    """Commands named by one simple command's words (assignments already dropped)."""
    i: int | None = 0
    while i is not None and i < len(words):
        word = words[i]
        if word in SHELL_KEYWORDS:
            i += 1
            continue
        if word not in ("exec", "command"):
            yield ShellCommand(line, word)
        base = os.path.basename(word)
        if base in SHELLS and i + 2 < len(words) and words[i + 1] == "-c":
            for cmd in shell_commands(words[i + 2]):
                yield ShellCommand(line + cmd.line - 1, cmd.word, f"in {base} -c")
            return
        if base in EXEC_WRAPPERS:
            i = _exec_target(words, i)
            continue
        return


def _bashlex_commands(text: str) -> list[ShellCommand]:
    import bashlex  # a test dependency (pyproject.toml [test])

    trees = bashlex.parse(text)
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())

    def line_of(pos: int) -> int:
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    functions: set[str] = set()
    commands: list[tuple[int, list[str]]] = []

    class Visitor(bashlex.ast.nodevisitor):  # type: ignore[misc]
        def visitfunction(self, node: Any, name: Any, body: Any, parts: Any) -> None:
            functions.add(name.word)

        def visitcommand(self, node: Any, parts: Any) -> None:
            words = []
            for part in parts:
                if part.kind == "assignment" and not words:
                    continue
                if part.kind == "word":
                    words.append(part.word)
                elif part.kind == "redirect":
                    continue
            if words:
                commands.append((line_of(node.pos[0]), words))

    for tree in trees:
        Visitor().visit(tree)
    out: list[ShellCommand] = []
    for line, words in commands:
        out.extend(_words_commands(words, line, functions))
    return out


_SUBST = re.compile(r"\$\(|`")


def _substitutions(text: str) -> Iterator[tuple[int, str]]:
    """(offset, inner text) of each ``$(...)``/backtick substitution (outermost first; nested ones recurse)."""
    i = 0
    while (m := _SUBST.search(text, i)) is not None:
        if m.group() == "`":
            end = text.find("`", m.end())
            if end < 0:
                return
            yield m.start(), text[m.end():end]
            i = end + 1
            continue
        depth, j = 1, m.end()
        quote = ""
        while j < len(text) and depth:
            c = text[j]
            if quote:
                if c == quote:
                    quote = ""
            elif c in "'\"" and not (c == '"' and depth == 0):
                quote = c if c == "'" else ""
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            j += 1
        yield m.start(), text[m.end():j - 1]
        i = j


def _strip_comments(text: str) -> str:
    """Blank out ``# ...`` comments (a ``#`` that starts a word, outside quotes), keeping the newlines."""
    out, quote, i = list(text), "", 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            while i < len(text) and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        i += 1
    return "".join(out)


def _tokenizer_commands(text: str) -> list[ShellCommand]:
    """A careful fallback where bashlex gives up (``case``, arithmetic ...)."""
    functions = set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", text, re.M))
    functions |= set(re.findall(r"^\s*function\s+([A-Za-z_][\w-]*)", text, re.M))
    out: list[ShellCommand] = []
    for off, inner in _substitutions(text):
        base = text.count("\n", 0, off)
        out.extend(ShellCommand(c.line + base, c.word, c.note) for c in _tokenizer_commands(inner))
    # blank substitutions out (same length keeps line numbers), join continuation lines
    flat = list(text)
    for off, inner in _substitutions(text):
        for k in range(off, min(len(flat), off + len(inner) + 3)):
            if flat[k] != "\n":
                flat[k] = " "
        flat[off] = "X"  # a word, so "x=$(...)" stays an assignment
    body = _strip_comments("".join(flat)).replace("\\\n", " \x02 ")  # a continuation: no separator, but a line
    lex = shlex.shlex(body, posix=True, punctuation_chars=";&|()<>\x02")
    lex.whitespace = " \t\r"
    lex.commenters = ""
    lex.wordchars = "".join(c for c in map(chr, range(33, 256)) if c not in "'\"\\;&|()<>\x02" and c.isprintable())
    line, words, in_case, pattern_next = 1, [], 0, False
    seen_lines = 1
    for tok in lex:
        if tok == "\x02":
            seen_lines += 1
            continue
        if tok == "()" and len(words) == 1:  # name () { ...: a function, not a command
            words = []
            continue
        if tok in ("\n", "&", "&&") or (tok and set(tok) <= set(";&|()")):
            seen_lines += tok.count("\n")
            if words:
                out.extend(_words_commands(words, line, functions))
            words = []
            if in_case and ";;" in tok or tok in (";&", ";;&"):
                pattern_next = True  # the next case item's pattern
            continue
        if tok and set(tok) <= set("<>&"):
            next(lex, None)  # the redirect's target
            continue
        if not words:
            line = seen_lines
            if tok == "case":
                in_case += 1
                for t in lex:  # case WORD in
                    if t == "in":
                        break
                pattern_next = True
                continue
            if tok == "esac":
                in_case -= 1
                pattern_next = False
                continue
            if tok in ("for", "select"):  # for NAME in WORDS; do: no command before `do`
                for t in lex:
                    seen_lines += t.count("\n") + (t == "\x02")
                    if t == "do":
                        break
                continue
            if tok in SHELL_KEYWORDS:
                continue
            if pattern_next:
                # a pattern "a|b)" (or "(a|b)") ends at ")": skip to it
                for t in lex:
                    if t == ")":
                        break
                pattern_next = False
                continue
            if re.match(r"^[A-Za-z_]\w*=", tok):
                seen_lines += tok.count("\n")
                continue
        seen_lines += tok.count("\n")
        words.append(tok)
    if words:
        out.extend(_words_commands(words, line, functions))
    return out


def shell_commands(text: str) -> list[ShellCommand]:
    """Each simple command's command word (assignments, keywords and redirections skipped)."""
    try:
        return _bashlex_commands(text)
    except Exception:  # noqa: BLE001 - bashlex lacks e.g. `case`; the tokenizer copes
        return _tokenizer_commands(text)


def shell_uses(text: str, path: str, line0: int = 1, how: str = "shell") -> tuple[list[Use], list[Problem]]:
    """Program uses and problems of a shell script (builtins, functions, ``$`` words and repo paths skipped)."""
    uses: list[Use] = []
    problems: list[Problem] = []
    functions = set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", text, re.M))
    for cmd in shell_commands(text):
        line = line0 + cmd.line - 1
        word = cmd.word
        if HOLE in word:
            problems.append(Problem(path, line, f"cannot tell which program this shell command runs ({word.replace(HOLE, '…')!r}): "
                                    + FIX_PRAGMA))
            continue
        if "$" in word or word in SHELL_BUILTINS or word in SHELL_KEYWORDS or word in functions or not word:
            continue
        name = program_name(word)
        if name is not None:
            uses.append(Use(path, line, name, f"{how}{' ' + cmd.note if cmd.note else ''}: {word}"))
    return uses, problems


def program_name(word: str) -> str | None:
    """The table name for a command word; None for our own files (repo paths, the venv)."""
    if "/" not in word:
        return word
    p = Path(word)
    full = p if p.is_absolute() else REPO / p
    try:
        inside = full.resolve().is_relative_to(REPO) or Path(os.path.abspath(full)).is_relative_to(REPO)
    except OSError:
        inside = False
    if inside or not p.is_absolute():
        return None
    return p.name


def _fresh_make_env() -> dict[str, str]:
    """The environment without the variables of a calling make (``make test`` runs these tests):
    MAKELEVEL makes a nested make print "make[1]: Entering directory", MAKEFLAGS passes -j/-n on."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}


def makefile_shell(makefile: Path, targets: list[str] | None = None) -> tuple[str, list[str]]:
    """The shell the Makefile's recipes run (``make -n -B``) and its ``$(shell ...)`` commands."""
    text = makefile.read_text()
    if targets is None:
        targets = []
        for m in re.finditer(r"^([^\s#:=$][^:=#]*?)\s*::?(?!=)", text, re.M):
            for t in m.group(1).split():
                if not t.startswith(".") and "%" not in t and "$" not in t and t not in targets:
                    targets.append(t)
    out = subprocess.run(["make", "-n", "-B", "--no-print-directory", "-f", str(makefile), *targets], cwd=makefile.parent,
                         capture_output=True, text=True, timeout=60, check=False, env=_fresh_make_env())
    if out.returncode != 0:
        raise RuntimeError(f"make -n -B {' '.join(targets)}: exit {out.returncode}: {out.stderr.strip()}")
    recipes = "\n".join(line for line in out.stdout.splitlines() if not line.startswith("make: "))
    calls = []
    for m in re.finditer(r"\$\(shell\s", text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        calls.append(text[m.end():j - 1].replace("$$", "$"))
    return recipes, calls


# ---------------------------------------------------------------- python: modules and scopes

SUBPROCESS_ARGV = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call", "subprocess.check_output"}
SHELL_STRING = {"subprocess.getoutput": 0, "subprocess.getstatusoutput": 0, "os.system": 0, "os.popen": 0,
                "asyncio.create_subprocess_shell": 0}
PROGRAM_ARG = {"shutil.which": 0, "asyncio.create_subprocess_exec": 0, "os.posix_spawn": 0, "os.posix_spawnp": 0,
               **{f"os.exec{s}": 0 for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")},
               **{f"os.spawn{s}": 1 for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}}
CTYPES_LOAD = {"ctypes.CDLL", "ctypes.PyDLL", "ctypes.cdll.LoadLibrary", "ctypes.pydll.LoadLibrary", "ctypes.LibraryLoader"}
PRAGMA = re.compile(r"#\s*runs:\s*([^#\n]*)")
LOADS_PRAGMA = re.compile(r"#\s*loads:\s*([^#\n]*)")
MAX_ALTS = 64

FuncNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


@dataclass
class Module:
    path: str
    name: str
    tree: ast.Module
    lines: list[str]
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted target
    comments: dict[int, str] = field(default_factory=dict)  # line -> its comment (tokenize: never a string's text)
    calls: list[ast.Call] = field(default_factory=list)
    funcs: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda] = field(default_factory=list)
    typed: list[ast.AST] = field(default_factory=list)  # Assign / AnnAssign / arg / keyword nodes (for _instances)
    parents: dict[int, ast.AST] = field(default_factory=dict)
    qualnames: dict[int, str] = field(default_factory=dict)


def module_names(path: str) -> list[str]:
    p = Path(path).with_suffix("")
    parts = list(p.parts)
    if parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    names = [".".join(parts)]
    if parts and parts[0] in ("bench", "examples"):
        names.append(parts[-1])  # scripts put their own folder on sys.path: `from lab import Lab`
    return names


def _index(mod: Module) -> None:
    stack: list[str] = []
    imports: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            mod.parents[id(child)] = node
            if isinstance(child, ast.Call):
                mod.calls.append(child)
            elif isinstance(child, ast.Assign | ast.AnnAssign | ast.arg | ast.keyword):
                mod.typed.append(child)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                imports.append(child)
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                mod.funcs.append(child)
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append(child.name)
                mod.qualnames[id(child)] = ".".join(stack)
                walk(child)
                stack.pop()
            elif isinstance(child, ast.Lambda):
                stack.append(f"<lambda@{child.lineno}>")
                mod.qualnames[id(child)] = ".".join(stack)
                walk(child)
                stack.pop()
            else:
                walk(child)

    walk(mod.tree)
    package = mod.name.rsplit(".", 1)[0] if "." in mod.name else ""
    if mod.path.endswith("__init__.py"):
        package = mod.name
    for node in imports:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    mod.imports[a.asname] = a.name
                else:
                    mod.imports[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".") if package else []
                pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                base = ".".join([*pkg, *([base] if base else [])])
            for a in node.names:
                mod.imports[a.asname or a.name] = f"{base}.{a.name}" if base else a.name


@dataclass(frozen=True)
class Elem:
    """One argv element: known strings (templates with HOLE), Python itself, or a spread."""

    kind: str  # "s" strings | "py" sys.executable | "spread" (0+ unknown elements) | "param" | "pspread"
    values: frozenset[str] = frozenset()
    owner: str = ""  # for params: the function key
    param: str = ""


UNKNOWN = Elem("s", frozenset({HOLE}))
SPREAD = Elem("spread")


class Scope:
    """Where a name is looked up: a function (or module) of a module, with optional argument bindings."""

    def __init__(self, an: Analyzer, mod: Module, func: FuncNode | None, parent: Scope | None,
                 bindings: dict[str, tuple[ast.expr | list[ast.expr] | None, Scope]] | None = None) -> None:
        self.an, self.mod, self.func, self.parent, self.bindings = an, mod, func, parent, bindings

    @property
    def key(self) -> str:
        return f"{self.mod.name}:{self.mod.qualnames.get(id(self.func), '<module>')}"

    def cls(self) -> ast.ClassDef | None:
        node = self.func
        if node is None:
            return None
        parent = self.mod.parents.get(id(node))
        return parent if isinstance(parent, ast.ClassDef) else None


def _params(func: FuncNode) -> list[ast.arg]:
    a = func.args
    return [*a.posonlyargs, *a.args, *([a.vararg] if a.vararg else []), *a.kwonlyargs, *([a.kwarg] if a.kwarg else [])]


def _body_nodes(func: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function (or module) body, not descending into nested defs, classes or lambdas."""
    todo = list(ast.iter_child_nodes(func)) if not isinstance(func, ast.Lambda) else [func.body]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))


def _target_names(target: ast.expr) -> Iterator[tuple[str, ast.expr | None, int | None]]:
    """(name, the target node, index in a tuple target) for an assignment target."""
    if isinstance(target, ast.Name):
        yield target.id, target, None
    elif isinstance(target, ast.Tuple | ast.List):
        for i, t in enumerate(target.elts):
            if isinstance(t, ast.Name):
                yield t.id, t, i


def _product(parts: list[list[list[Elem]]]) -> list[list[Elem]]:
    out: list[list[Elem]] = [[]]
    for alts in parts:
        out = [a + b for a in out for b in alts][:MAX_ALTS]
    return out


class Analyzer:
    """Resolves argv expressions to programs across a set of modules."""

    def __init__(self, modules: list[Module]) -> None:
        self.modules = modules
        self.by_name: dict[str, Module] = {}
        for m in modules:
            for n in module_names(m.path):
                self.by_name.setdefault(n, m)
        self.assigns: dict[int, dict[str, list[tuple[str, ast.AST, int | None]]]] = {}
        self.wrappers: dict[str, dict[str, str]] = {}  # function key -> {param: "argv" | "name" | "shell"}
        self.funcs: dict[str, tuple[Module, FuncNode]] = {}
        for m in modules:
            for node in m.funcs:
                self.funcs[f"{m.name}:{m.qualnames[id(node)]}"] = (m, node)
        self.instance_names: dict[str, set[str]] = {}  # identifier -> keys of __call__ wrappers it may hold
        self._active: set[tuple[int, int]] = set()

    # ---- lookups

    def scope_of(self, mod: Module, node: ast.AST, bindings: Any = None) -> Scope:
        chain: list[FuncNode] = []
        cur: ast.AST | None = mod.parents.get(id(node))
        while cur is not None:
            if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                chain.append(cur)
            cur = mod.parents.get(id(cur))
        scope = Scope(self, mod, None, None)
        for f in reversed(chain):
            scope = Scope(self, mod, f, scope)
        if bindings is not None:
            scope.bindings = bindings
        return scope

    def func_scope(self, mod: Module, func: FuncNode, bindings: Any = None) -> Scope:
        outer = self.scope_of(mod, func)
        return Scope(self, mod, func, outer, bindings)

    def local_assigns(self, node: ast.AST) -> dict[str, list[tuple[str, ast.AST, int | None]]]:
        """name -> [(how, value node, tuple index)] for a function or module body."""
        if id(node) in self.assigns:
            return self.assigns[id(node)]
        out: dict[str, list[tuple[str, ast.AST, int | None]]] = {}
        for n in _body_nodes(node):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    for name, _, idx in _target_names(t):
                        out.setdefault(name, []).append(("assign", n.value, idx))
            elif isinstance(n, ast.AnnAssign) and n.value is not None and isinstance(n.target, ast.Name):
                out.setdefault(n.target.id, []).append(("assign", n.value, None))
            elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name) and isinstance(n.op, ast.Add):
                out.setdefault(n.target.id, []).append(("aug", n.value, None))
            elif isinstance(n, ast.For | ast.AsyncFor | ast.comprehension):
                for name, _, idx in _target_names(n.target):
                    out.setdefault(name, []).append(("for", n.iter, idx))
            elif isinstance(n, ast.NamedExpr):
                out.setdefault(n.target.id, []).append(("assign", n.value, None))
            elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.setdefault(n.name, []).append(("def", n, None))
            elif isinstance(n, ast.With | ast.AsyncWith):
                for item in n.items:
                    if item.optional_vars is not None:
                        for name, _, _ in _target_names(item.optional_vars):
                            out.setdefault(name, []).append(("opaque", item, None))
            elif isinstance(n, ast.ExceptHandler) and n.name:
                out.setdefault(n.name, []).append(("opaque", n, None))
            elif isinstance(n, ast.Import | ast.ImportFrom):
                for a in n.names:
                    out.setdefault((a.asname or a.name).split(".")[0], []).append(("import", n, None))
        self.assigns[id(node)] = out
        return out

    def dotted(self, expr: ast.expr, scope: Scope) -> str | None:
        """``subprocess.run`` for ``subprocess.run`` / ``sp.run`` / ``run`` (as imported)."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        base = scope.mod.imports.get(expr.id)
        if base is None:
            return None
        return ".".join([base, *reversed(parts)])

    def lookup_def(self, name: str, scope: Scope) -> tuple[Module, ast.AST] | None:
        """A function or class ``name`` refers to (lexically, module-level or imported from a scanned module)."""
        s: Scope | None = scope
        while s is not None:
            body = s.func if s.func is not None else s.mod.tree
            for how, node, _ in self.local_assigns(body).get(name, []):
                if how == "def":
                    return s.mod, node
            if s.func is not None and any(p.arg == name for p in _params(s.func)):
                return None
            s = s.parent
        target = scope.mod.imports.get(name)
        if target and "." in target:
            modname, attr = target.rsplit(".", 1)
            mod = self.by_name.get(modname)
            if mod is not None:
                for node in mod.tree.body:
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == attr:
                        return mod, node
        return None

    def callee(self, call: ast.Call, scope: Scope) -> tuple[str, bool] | None:
        """(function key, skip first param) of a call to a project function, method or class."""
        f = call.func
        found: tuple[Module, ast.AST] | None = None
        if isinstance(f, ast.Name):
            found = self.lookup_def(f.id, scope)
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            cls = scope.cls()
            selfname = _params(scope.func)[0].arg if scope.func is not None and _params(scope.func) else None
            if cls is not None and f.value.id == selfname:
                for node in cls.body:
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == f.attr:
                        return f"{scope.mod.name}:{scope.mod.qualnames[id(node)]}", True
            modname = scope.mod.imports.get(f.value.id)
            mod = self.by_name.get(modname) if modname else None
            if mod is not None:
                for node in mod.tree.body:
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == f.attr:
                        found = (mod, node)
        if found is None:
            return None
        mod, node = found
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return f"{mod.name}:{mod.qualnames[id(item)]}", True
            return None
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        parent = mod.parents.get(id(node))
        return f"{mod.name}:{mod.qualnames[id(node)]}", isinstance(parent, ast.ClassDef)

    @staticmethod
    def bind(func: FuncNode, call: ast.Call, skip_self: bool) -> dict[str, ast.expr | list[ast.expr] | None] | None:
        """Parameter -> argument expression (a list for *args); None if a *starred/**kw call hides the mapping."""
        a = func.args
        positional = [*a.posonlyargs, *a.args][1 if skip_self else 0:]
        out: dict[str, ast.expr | list[ast.expr] | None] = {}
        args = list(call.args)
        if any(isinstance(x, ast.Starred) for x in args[: len(positional)]):
            return None
        for p, x in zip(positional, args, strict=False):
            out[p.arg] = x
        if a.vararg is not None:
            out[a.vararg.arg] = args[len(positional):]
        for kw in call.keywords:
            if kw.arg is None:
                continue
            out[kw.arg] = kw.value
        defaults = dict(zip([p.arg for p in [*a.posonlyargs, *a.args]][::-1], a.defaults[::-1], strict=False))
        defaults.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None})
        for name, d in defaults.items():
            out.setdefault(name, d)
        return out

    # ---- resolution: strings

    def strs(self, expr: ast.AST | None, scope: Scope, depth: int = 0) -> Elem:
        """One argv element."""
        if expr is None or depth > 25:
            return UNKNOWN
        guard = (id(expr), id(scope.bindings))
        if guard in self._active:
            return Elem("s", frozenset())
        self._active.add(guard)
        try:
            return self._strs(expr, scope, depth + 1)
        finally:
            self._active.discard(guard)

    def _union(self, elems: list[Elem]) -> Elem:
        if any(e.kind == "py" for e in elems) and all(e.kind in ("py", "s") for e in elems):
            strs = [e for e in elems if e.kind == "s"]
            if not strs or not any(v for e in strs for v in e.values):
                return Elem("py")
        params = [e for e in elems if e.kind == "param"]
        if params:
            return params[0]
        values: set[str] = set()
        for e in elems:
            if e.kind == "s":
                values |= e.values
            elif e.kind == "py":
                values.add("\x01py")
            else:
                values.add(HOLE)
        return Elem("s", frozenset(values))

    def _strs(self, expr: ast.AST, scope: Scope, depth: int) -> Elem:
        if isinstance(expr, ast.Constant):
            if isinstance(expr.value, str):
                return Elem("s", frozenset({expr.value}))
            if isinstance(expr.value, bytes):
                return Elem("s", frozenset({expr.value.decode(errors="replace")}))
            return Elem("s", frozenset({str(expr.value)})) if expr.value is not None else Elem("s", frozenset())
        if isinstance(expr, ast.JoinedStr):
            pieces: list[frozenset[str]] = []
            for v in expr.values:
                if isinstance(v, ast.Constant):
                    pieces.append(frozenset({str(v.value)}))
                else:
                    assert isinstance(v, ast.FormattedValue)
                    e = self.strs(v.value, scope, depth)
                    pieces.append(e.values if e.kind == "s" and e.values else frozenset({HOLE}))
            combos = {"".join(c) for c in itertools.islice(itertools.product(*pieces), MAX_ALTS)}
            return Elem("s", frozenset(combos))
        if isinstance(expr, ast.IfExp):
            return self._union([self.strs(expr.body, scope, depth), self.strs(expr.orelse, scope, depth)])
        if isinstance(expr, ast.BoolOp):
            return self._union([self.strs(v, scope, depth) for v in expr.values])
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self.strs(expr.left, scope, depth), self.strs(expr.right, scope, depth)
            if left.kind == right.kind == "s":
                return Elem("s", frozenset(a + b for a in left.values for b in right.values))
            return UNKNOWN
        if isinstance(expr, ast.Name):
            return self._name_elem(expr.id, scope, depth)
        if isinstance(expr, ast.Attribute):
            d = self.dotted(expr, scope)
            if d == "sys.executable":
                return Elem("py")
            if expr.attr == "value":
                values = self.enum_values(expr.value, scope, depth)
                if values is not None:
                    return Elem("s", frozenset(values))
            self_attr = self._self_attr(expr, scope)
            if self_attr is not None:
                return self._union([self.strs(v, s, depth) for v, s in self_attr]) if self_attr else UNKNOWN
            return UNKNOWN
        if isinstance(expr, ast.Subscript):
            values = self.dict_lookup(expr.value, expr.slice, scope, depth)
            if values is not None:
                return self._union(values) if values else UNKNOWN
            return UNKNOWN
        if isinstance(expr, ast.Call):
            d = self.dotted(expr.func, scope)
            if d in ("shutil.which", "os.fspath", "os.path.basename") or (isinstance(expr.func, ast.Name) and expr.func.id == "str"):
                return self.strs(expr.args[0], scope, depth) if expr.args else UNKNOWN
            if d in ("os.environ.get", "os.getenv"):
                return self.strs(expr.args[1], scope, depth) if len(expr.args) > 1 else UNKNOWN
            returns = self.call_returns(expr, scope)
            if returns is not None:
                elems = [self.strs(r, s, depth) for r, s in returns]
                return self._union(elems) if elems else UNKNOWN
            return UNKNOWN
        return UNKNOWN

    def _name_elem(self, name: str, scope: Scope, depth: int) -> Elem:
        s: Scope | None = scope
        while s is not None:
            if s.bindings is not None and name in s.bindings:
                bound, caller = s.bindings[name]
                if bound is None:
                    return UNKNOWN
                if isinstance(bound, list):
                    return UNKNOWN
                return self.strs(bound, caller, depth)
            body = s.func if s.func is not None else s.mod.tree
            found = self.local_assigns(body).get(name)
            if found:
                elems = []
                for how, value, idx in found:
                    if how == "assign":
                        v = value
                        if idx is not None:
                            v = value.elts[idx] if isinstance(value, ast.Tuple | ast.List) and idx < len(value.elts) else None
                        elems.append(self.strs(v, s, depth))
                    elif how == "for":
                        elems.extend(self.iter_elems(value, s, depth, idx))
                    elif how == "aug":
                        continue
                    else:
                        elems.append(UNKNOWN)
                return self._union(elems) if elems else UNKNOWN
            if s.func is not None and any(p.arg == name for p in _params(s.func)):
                return Elem("param", owner=s.key, param=name)
            s = s.parent
        if name in scope.mod.imports:
            target = scope.mod.imports[name]
            if "." in target:
                modname, attr = target.rsplit(".", 1)
                mod = self.by_name.get(modname)
                if mod is not None:
                    return self._name_elem(attr, Scope(self, mod, None, None), depth)
        return UNKNOWN

    def _self_attr(self, expr: ast.Attribute, scope: Scope) -> list[tuple[ast.expr, Scope]] | None:
        """Values assigned to ``self.<attr>`` in the methods of the enclosing class (None: not a self attribute)."""
        if not isinstance(expr.value, ast.Name) or scope.func is None:
            return None
        s: Scope | None = scope
        while s is not None and s.cls() is None:
            s = s.parent
        if s is None or s.func is None:
            return None
        params = _params(s.func)
        if not params or expr.value.id != params[0].arg:
            return None
        cls = s.cls()
        assert cls is not None
        return [(value, self.func_scope(scope.mod, item, s.bindings if item is s.func else None))
                for item, value in self._class_attrs(cls).get(expr.attr, [])]

    def _class_attrs(self, cls: ast.ClassDef) -> dict[str, list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.expr]]]:
        """attr -> [(method, value)] for every ``self.attr = value`` in the class's methods (cached)."""
        if id(cls) in self.assigns:
            return self.assigns[id(cls)]  # type: ignore[return-value]
        out: dict[str, list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.expr]]] = {}
        for item in cls.body:
            if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) or not _params(item):
                continue
            me = _params(item)[0].arg
            for n in _body_nodes(item):
                targets: list[ast.expr] = []
                value: ast.expr | None = None
                if isinstance(n, ast.Assign):
                    targets, value = n.targets, n.value
                elif isinstance(n, ast.AnnAssign):
                    targets, value = [n.target], n.value
                for t in targets:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == me and value is not None:
                        out.setdefault(t.attr, []).append((item, value))
        self.assigns[id(cls)] = out  # type: ignore[assignment]
        return out

    def enum_values(self, expr: ast.expr, scope: Scope, depth: int) -> set[str] | None:
        """String values an ``Enum`` member expression can have (``backend`` annotated ``Backend``, ``Backend.NFT``...)."""
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            cls = self.enum_class(expr.value.id, scope)
            if cls is not None:
                members = self.enum_members(cls)
                return {members[expr.attr]} if expr.attr in members else None
        if isinstance(expr, ast.Name):
            s: Scope | None = scope
            while s is not None:
                if s.func is not None:
                    for p in _params(s.func):
                        if p.arg == expr.id and p.annotation is not None:
                            for n in ast.walk(p.annotation):
                                if isinstance(n, ast.Name) and (cls := self.enum_class(n.id, s)) is not None:
                                    return set(self.enum_members(cls).values())
                if s.bindings is not None and expr.id in s.bindings:
                    bound, caller = s.bindings[expr.id]
                    return self.enum_values(bound, caller, depth + 1) if isinstance(bound, ast.expr) else None
                body = s.func if s.func is not None else s.mod.tree
                found = self.local_assigns(body).get(expr.id)
                if found:
                    out: set[str] = set()
                    for how, value, idx in found:
                        if how == "for" and isinstance(value, ast.Tuple | ast.List | ast.Set) and idx is None:
                            for elt in value.elts:
                                vals = self.enum_values(elt, s, depth + 1)
                                if vals is None:
                                    return None
                                out |= vals
                        elif how == "assign" and isinstance(value, ast.expr) and idx is None:
                            vals = self.enum_values(value, s, depth + 1)
                            if vals is None:
                                return None
                            out |= vals
                        else:
                            return None
                    return out
                s = s.parent
        if isinstance(expr, ast.Attribute):
            vals = self._self_attr(expr, scope)
            if vals:
                out = set()
                for v, s2 in vals:
                    got = self.enum_values(v, s2, depth + 1)
                    if got is None:
                        return None
                    out |= got
                return out
        return None

    def enum_class(self, name: str, scope: Scope) -> ast.ClassDef | None:
        found = self.lookup_def(name, scope)
        if found is None or not isinstance(found[1], ast.ClassDef):
            return None
        cls = found[1]
        for b in cls.bases:
            bname = b.attr if isinstance(b, ast.Attribute) else b.id if isinstance(b, ast.Name) else ""
            if bname.endswith("Enum"):
                return cls
        return None

    @staticmethod
    def enum_members(cls: ast.ClassDef) -> dict[str, str]:
        out = {}
        for item in cls.body:
            if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant) and isinstance(item.value.value, str):
                for t in item.targets:
                    if isinstance(t, ast.Name):
                        out[t.id] = item.value.value
        return out

    def call_returns(self, call: ast.Call, scope: Scope) -> list[tuple[ast.expr, Scope]] | None:
        """The return expressions of a called project function, in its scope bound to this call's arguments."""
        found = self.callee(call, scope)
        if found is None:
            return None
        key, skip = found
        mod, func = self.funcs[key]
        if isinstance(func, ast.Lambda):
            return None
        binding = self.bind(func, call, skip)
        bindings = {k: (v if not isinstance(v, list) else v, scope) for k, v in (binding or {}).items()}
        fscope = self.func_scope(mod, func, bindings)
        if skip and func.name == "__init__":
            return None
        return [(n.value, fscope) for n in _body_nodes(func) if isinstance(n, ast.Return) and n.value is not None]

    def dict_lookup(self, container: ast.expr, key: ast.expr, scope: Scope, depth: int) -> list[Elem] | None:
        """Values of ``container[key]`` when the container is a dict literal (directly, by name or returned)."""
        k = self.strs(key, scope, depth)
        dicts = self.dicts(container, scope, depth)
        if dicts is None:
            return None
        out: list[Elem] = []
        for d, ds in dicts:
            for dk, dv in zip(d.keys, d.values, strict=True):
                if dk is None:
                    continue
                kv = self.strs(dk, ds, depth)
                if k.kind != "s" or HOLE in "".join(k.values) or kv.values & k.values:
                    out.append(self.strs(dv, ds, depth))
        return out

    def dicts(self, expr: ast.expr, scope: Scope, depth: int) -> list[tuple[ast.Dict, Scope]] | None:
        if depth > 25:
            return None
        if isinstance(expr, ast.Dict):
            return [(expr, scope)]
        if isinstance(expr, ast.Call):
            rets = self.call_returns(expr, scope)
            if rets is None:
                return None
            out: list[tuple[ast.Dict, Scope]] = []
            for r, s in rets:
                got = self.dicts(r, s, depth + 1)
                if got is None:
                    return None
                out += got
            return out
        if isinstance(expr, ast.Name):
            s2: Scope | None = scope
            while s2 is not None:
                body = s2.func if s2.func is not None else s2.mod.tree
                found = self.local_assigns(body).get(expr.id)
                if found:
                    out = []
                    for how, value, idx in found:
                        if how != "assign" or idx is not None or not isinstance(value, ast.expr):
                            return None
                        got = self.dicts(value, s2, depth + 1)
                        if got is None:
                            return None
                        out += got
                    return out
                s2 = s2.parent
        return None

    def iter_elems(self, it: ast.AST, scope: Scope, depth: int, idx: int | None) -> list[Elem]:
        """Elements of an iterable (for a ``for`` target)."""
        if isinstance(it, ast.Tuple | ast.List | ast.Set):
            out = []
            for elt in it.elts:
                if idx is not None:
                    out.append(self.strs(elt.elts[idx], scope, depth) if isinstance(elt, ast.Tuple | ast.List)
                               and idx < len(elt.elts) else UNKNOWN)
                else:
                    out.append(self.strs(elt, scope, depth))
            return out
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr in ("values", "keys") and idx is None:
            dicts = self.dicts(it.func.value, scope, depth)
            if dicts is not None:
                return [self.strs(v if it.func.attr == "values" else k, s, depth)
                        for d, s in dicts for k, v in zip(d.keys, d.values, strict=True) if k is not None]
        if isinstance(it, ast.Name) and idx is None:
            alts = self.argv(it, scope, depth)
            if alts is not None:
                return [e for alt in alts for e in alt]
        return [UNKNOWN]

    # ---- resolution: argv lists

    def argv(self, expr: ast.AST | None, scope: Scope, depth: int = 0) -> list[list[Elem]] | None:
        """Alternatives for an argv expression, each a list of elements; None if it is not list-like."""
        if expr is None or depth > 25:
            return None
        guard = (id(expr), id(scope.bindings), 1)
        if guard in self._active:
            return []
        self._active.add(guard)
        try:
            return self._argv(expr, scope, depth + 1)
        finally:
            self._active.discard(guard)

    def _spread(self, expr: ast.expr, scope: Scope, depth: int) -> list[list[Elem]]:
        got = self.argv(expr, scope, depth)
        if got is None or not got:
            e = self.strs(expr, scope, depth) if isinstance(expr, ast.Name) else None
            if e is not None and e.kind == "param":
                return [[Elem("pspread", owner=e.owner, param=e.param)]]
            return [[SPREAD]] if got is None else got
        return got

    def _argv(self, expr: ast.AST, scope: Scope, depth: int) -> list[list[Elem]] | None:
        if isinstance(expr, ast.List | ast.Tuple):
            parts = []
            for elt in expr.elts:
                if isinstance(elt, ast.Starred):
                    parts.append(self._spread(elt.value, scope, depth))
                else:
                    parts.append([[self.strs(elt, scope, depth)]])
            return _product(parts)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return _product([self._spread(expr.left, scope, depth), self._spread(expr.right, scope, depth)])
        if isinstance(expr, ast.IfExp):
            return (self._spread(expr.body, scope, depth) + self._spread(expr.orelse, scope, depth))[:MAX_ALTS]
        if isinstance(expr, ast.BoolOp):
            out: list[list[Elem]] = []
            for v in expr.values:
                out += self._spread(v, scope, depth)
            return out[:MAX_ALTS]
        if isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Name) and expr.func.id in ("list", "tuple") and len(expr.args) == 1:
                return self._spread(expr.args[0], scope, depth)
            if isinstance(expr.func, ast.Attribute) and expr.func.attr == "split" and not expr.args:
                e = self.strs(expr.func.value, scope, depth)
                if e.kind == "s" and e.values:
                    return [[Elem("s", frozenset({w})) for w in v.split()] for v in e.values][:MAX_ALTS]
            rets = self.call_returns(expr, scope)
            if rets is not None:
                alts: list[list[Elem]] = []
                for r, s in rets:
                    got = self.argv(r, s, depth)
                    if got is None:
                        return None
                    alts += got
                return alts[:MAX_ALTS]
            return None
        if isinstance(expr, ast.Name):
            s2: Scope | None = scope
            while s2 is not None:
                if s2.bindings is not None and expr.id in s2.bindings:
                    bound, caller = s2.bindings[expr.id]
                    if isinstance(bound, list):
                        return self.argv(ast.List(elts=bound, ctx=ast.Load()), caller, depth)
                    return self.argv(bound, caller, depth) if bound is not None else None
                body = s2.func if s2.func is not None else s2.mod.tree
                found = self.local_assigns(body).get(expr.id)
                if found:
                    plain: list[list[Elem]] = []
                    augs: list[list[list[Elem]]] = []
                    for how, value, idx in found:
                        if how == "assign" and idx is None:
                            got = self.argv(value, s2, depth)
                            if got is None:
                                return None
                            plain += got
                        elif how == "aug":
                            augs.append(self._spread(value, s2, depth))
                        else:
                            return None
                    out = []
                    for alt in plain:
                        if alt:
                            out.append(alt)
                        else:  # x = [] then x += [...]: the additions are the command
                            out += [a for aug in augs for a in aug] or [alt]
                    return out[:MAX_ALTS]
                if s2.func is not None and any(p.arg == expr.id for p in _params(s2.func)):
                    return [[Elem("pspread", owner=s2.key, param=expr.id)]]
                s2 = s2.parent
            return None
        if isinstance(expr, ast.Attribute):
            vals = self._self_attr(expr, scope)
            if vals:
                alts = []
                for v, s3 in vals:
                    got = self._spread(v, s3, depth)
                    alts += got
                return alts[:MAX_ALTS]
            return None
        return None


# ---------------------------------------------------------------- python: programs of an argv


@dataclass
class Resolved:
    programs: list[tuple[str, str]] = field(default_factory=list)  # (program, how)
    wrappers: list[tuple[str, str, str]] = field(default_factory=list)  # (owner key, param, kind)
    unresolved: list[str] = field(default_factory=list)
    shell: list[str] = field(default_factory=list)  # shell script templates run


def programs_in(alt: list[Elem], res: Resolved, how: str) -> None:
    """Walk one argv alternative: its program, and what ``ip netns exec`` & co. run in turn."""
    i = 0
    while i < len(alt):
        e = alt[i]
        if e.kind == "py":
            return
        if e.kind == "pspread":
            res.wrappers.append((e.owner, e.param, "argv"))
            if i + 1 < len(alt) and alt[i + 1].kind in ("pspread", "spread"):
                i += 1
                continue
            return
        if e.kind == "param":
            res.wrappers.append((e.owner, e.param, "name"))
            return
        if e.kind == "spread":
            if i + 1 < len(alt) and alt[i + 1].kind in ("pspread", "spread"):
                i += 1
                continue
            res.unresolved.append("an argv whose start cannot be resolved")
            return
        values = sorted(e.values)
        if not values:
            return
        stop = True
        for v in values:
            if v == "\x01py":
                continue
            if HOLE in v:
                res.unresolved.append(f"program {v.replace(HOLE, '…')!r}")
                continue
            res.programs.append((v, how))
        if len(values) != 1:
            return
        v = values[0]
        base = os.path.basename(v)
        words = [sorted(x.values)[0] if x.kind == "s" and len(x.values) == 1 else HOLE for x in alt]
        if base == "ip" and words[i + 1:i + 3] == ["netns", "exec"]:
            i += 4
            how = f"{how} via ip netns exec"
            stop = False
        elif base in SHELLS and i + 2 < len(alt) and words[i + 1] == "-c":
            script = alt[i + 2]
            if script.kind == "s":
                res.shell.extend(sorted(script.values))
            elif script.kind == "param":
                res.wrappers.append((script.owner, script.param, "shell"))
            else:
                res.unresolved.append(f"the script of {base} -c")
            return
        elif base in EXEC_WRAPPERS:
            j = i + 1
            while j < len(alt) and (words[j].startswith("-") or (base == "env" and "=" in words[j])):
                j += 1
            i = j + EXEC_WRAPPERS[base]
            how = f"{how} via {base}"
            stop = False
        if stop:
            return


def _pragma(mod: Module, node: ast.AST, rx: re.Pattern[str] = PRAGMA) -> list[str] | None:
    """Names a ``# runs:`` (or ``# loads:``) comment on the call's lines, or on a comment line just above, declares."""
    first = getattr(node, "lineno", 1)
    last = getattr(node, "end_lineno", first) or first
    names: list[str] | None = None
    for n in range(max(1, first - 1), last + 1):
        if n == first - 1 and not mod.lines[n - 1].lstrip().startswith("#"):
            continue  # the line above counts only as a comment line of its own
        m = rx.search(mod.comments.get(n, ""))
        if m:
            names = (names or []) + m.group(1).split()
    return names


def _comments(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _call_kind(an: Analyzer, call: ast.Call, scope: Scope) -> tuple[str, ast.expr | list[ast.expr] | None] | None:
    """("argv"|"shell"|"name"|"lib", the argument) for a process-starting or library-loading call."""
    d = an.dotted(call.func, scope)
    if d in SUBPROCESS_ARGV:
        arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "args"), None)
        exe = next((k.value for k in call.keywords if k.arg == "executable"), None)
        if exe is not None:
            return "name", exe
        shell = next((k.value for k in call.keywords if k.arg == "shell"), None)
        if isinstance(shell, ast.Constant) and shell.value:
            return "shell", arg
        return "argv", arg
    if d in SHELL_STRING:
        return "shell", call.args[0] if call.args else None
    if d in PROGRAM_ARG:
        i = PROGRAM_ARG[d]
        return "name", call.args[i] if len(call.args) > i else None
    if d in CTYPES_LOAD or (d or "").startswith("ctypes.cdll.") or d == "ctypes.util.find_library":
        return ("findlib" if d == "ctypes.util.find_library" else "lib"), call.args[0] if call.args else None
    return None


def _resolve_arg(an: Analyzer, kind: str, arg: ast.expr | list[ast.expr] | None, scope: Scope, how: str) -> Resolved:
    res = Resolved()
    if isinstance(arg, list):
        arg = ast.List(elts=arg, ctx=ast.Load())
    if arg is None:
        return res
    if kind == "argv":
        alts = an.argv(arg, scope)
        if alts is None:
            e = an.strs(arg, scope)
            if e.kind == "s" and e.values and HOLE not in "".join(e.values):
                alts = [[e]]  # a single program name as a string
            elif e.kind == "param":
                res.wrappers.append((e.owner, e.param, "argv"))
                return res
            else:
                res.unresolved.append("an argv that cannot be resolved statically")
                return res
        for alt in alts:
            programs_in(alt, res, how)
    elif kind == "name":
        e = an.strs(arg, scope)
        programs_in([e], res, how)
    elif kind == "shell":
        e = an.strs(arg, scope)
        if e.kind == "param":
            res.wrappers.append((e.owner, e.param, "shell"))
        elif e.kind == "s" and e.values:
            res.shell.extend(sorted(e.values))
        else:
            res.unresolved.append("a shell command that cannot be resolved statically")
    return res


def parse_modules(sources: dict[str, str]) -> tuple[list[Module], list[Problem]]:
    modules, problems = [], []
    for path, text in sorted(sources.items()):
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError as exc:
            problems.append(Problem(path, exc.lineno or 1, f"cannot parse: {exc.msg}"))
            continue
        pragmas = "runs:" in text or "loads:" in text
        mod = Module(path, module_names(path)[0], tree, text.splitlines(), comments=_comments(text) if pragmas else {})
        _index(mod)
        modules.append(mod)
    return modules, problems


_TYPING = frozenset({"Optional", "Union", "Any", "Callable", "Sequence", "Iterable", "Iterator", "Mapping", "None", "Self"})


def _instances(an: Analyzer) -> None:
    """Identifiers that hold instances of classes whose ``__call__`` is a wrapper (``runner`` ...)."""
    classes: dict[str, str] = {}  # class name -> __call__ key
    for key, kinds in an.wrappers.items():
        mod_name, qual = key.split(":", 1)
        if qual.endswith(".__call__") and kinds:
            classes[qual.rsplit(".", 2)[-2]] = key
    if not classes:
        return
    aliases: dict[str, set[str]] = {c: {c} for c in classes}
    names: dict[str, set[str]] = {}

    def mentions(node: ast.AST | None, what: dict[str, set[str]]) -> set[str]:
        found: set[str] = set()
        if node is None:
            return found
        for n in ast.walk(node):
            ident = n.id if isinstance(n, ast.Name) else n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else None
            for cls, al in what.items():
                if ident in al:
                    found.add(cls)
        return found

    def created(node: ast.AST | None) -> set[str]:
        """Classes ``node`` makes an instance of: ``C(...)``, ``x or C(...)``, ``C(...) if c else y``."""
        if isinstance(node, ast.Call):
            fname = _ident(node)
            return {fname} if fname in classes else set()
        if isinstance(node, ast.BoolOp):
            return set().union(*(created(v) for v in node.values))
        if isinstance(node, ast.IfExp):
            return created(node.body) | created(node.orelse)
        return set()

    for _ in range(2):  # aliases found in the first round widen the second
        for mod in an.modules:
            for n in mod.typed:
                if isinstance(n, ast.AnnAssign):
                    made = created(n.value)
                    for cls in made:  # `x: Runner = ... SubprocessRunner()` makes Runner an alias
                        for a in ast.walk(n.annotation):
                            if isinstance(a, ast.Name) and a.id[:1].isupper() and a.id not in _TYPING:
                                aliases[cls].add(a.id)
                    target = (n.target.attr if isinstance(n.target, ast.Attribute)
                              else n.target.id if isinstance(n.target, ast.Name) else None)
                    if target:
                        for cls in made | mentions(n.annotation, aliases):
                            names.setdefault(target, set()).add(classes[cls])
                elif isinstance(n, ast.Assign):
                    for cls in created(n.value):
                        for t in n.targets:
                            ident = t.attr if isinstance(t, ast.Attribute) else t.id if isinstance(t, ast.Name) else None
                            if ident:
                                names.setdefault(ident, set()).add(classes[cls])
                elif isinstance(n, ast.arg) and n.annotation is not None:
                    for cls in mentions(n.annotation, aliases):
                        names.setdefault(n.arg, set()).add(classes[cls])
                elif isinstance(n, ast.keyword) and n.arg:
                    for cls in created(n.value):
                        names.setdefault(n.arg, set()).add(classes[cls])
    an.instance_names = names


def _call_targets(an: Analyzer, call: ast.Call, scope: Scope) -> list[tuple[str, bool]]:
    """Wrapper functions this call may call: a project function/method/class, or a callable instance."""
    out = []
    found = an.callee(call, scope)
    if found is not None and found[0] in an.wrappers:
        out.append(found)
    f = call.func
    ident = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    if found is None and ident in an.instance_names:
        out += [(k, True) for k in an.instance_names[ident] if k in an.wrappers]
    return out


API_NAMES = frozenset(n.rsplit(".", 1)[1] for n in (*SUBPROCESS_ARGV, *SHELL_STRING, *PROGRAM_ARG, *CTYPES_LOAD,
                                                     "ctypes.util.find_library"))


def _ident(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _interesting(an: Analyzer) -> set[str]:
    """Callee identifiers worth a look: the process APIs (and their import aliases), wrappers, runner instances."""
    names = set(API_NAMES) | set(an.instance_names)
    apis = {*SUBPROCESS_ARGV, *SHELL_STRING, *PROGRAM_ARG, *CTYPES_LOAD, "ctypes.util.find_library"}
    for mod in an.modules:
        names |= {alias for alias, target in mod.imports.items() if target in apis}
    for key in an.wrappers:
        parts = key.split(":", 1)[1].split(".")
        names.add(parts[-2] if parts[-1] == "__init__" and len(parts) > 1 else parts[-1])
    return names


def scan_python(sources: dict[str, str], *, rounds: int = 8) -> Report:
    """Everything the Python sources run or load, found statically (see the module docstring)."""
    modules, problems = parse_modules(sources)
    an = Analyzer(modules)
    calls = [(mod, node) for mod in modules for node in mod.calls]
    scopes: dict[int, Scope] = {}

    def scope(mod: Module, call: ast.Call) -> Scope:
        if id(call) not in scopes:
            scopes[id(call)] = an.scope_of(mod, call)
        return scopes[id(call)]

    report = Report(problems=list(problems))
    # wrappers to a fixed point: a call site whose argv program is a parameter makes its owner a wrapper
    for _ in range(rounds):
        before = {k: dict(v) for k, v in an.wrappers.items()}
        _instances(an)
        wanted = _interesting(an)
        for mod, call in calls:
            if _ident(call) not in wanted:
                continue
            for kind, arg, _how in _process_args(an, mod, call, scope(mod, call)):
                res = _resolve_arg(an, kind, arg, scope(mod, call), "")
                for owner, param, wkind in res.wrappers:
                    an.wrappers.setdefault(owner, {})[param] = wkind
        if an.wrappers == before:
            break
    _instances(an)
    wanted = _interesting(an)
    for mod, call in calls:
        if _ident(call) not in wanted:
            continue
        scope_ = scope(mod, call)
        declared = _pragma(mod, call)
        for kind, arg, how in _process_args(an, mod, call, scope_):
            if kind in ("lib", "findlib"):
                _library(an, mod, call, kind, arg, scope_, report)
                continue
            res = _resolve_arg(an, kind, arg, scope_, how)
            for prog, via in res.programs:
                name = program_name(prog)
                if name is not None:
                    report.programs.append(Use(mod.path, call.lineno, name, via))
            for script in res.shell:
                uses, probs = shell_uses(script, mod.path, call.lineno, f"{how} (shell)")
                report.programs += [Use(u.path, call.lineno, u.name, u.how) for u in uses]
                if declared is None:
                    report.problems += [Problem(p.path, call.lineno, p.message) for p in probs]
            if res.unresolved and declared is None:
                report.problems.append(Problem(mod.path, call.lineno, f"{how}: cannot tell which program it runs "
                                               f"({'; '.join(sorted(set(res.unresolved)))}): {FIX_PRAGMA}"))
        if declared:
            for name in declared:
                if name != "(built)":
                    report.programs.append(Use(mod.path, call.lineno, name, "declared by # runs:"))
    report.wrappers = {k: ", ".join(f"{p} ({kind})" for p, kind in sorted(v.items())) for k, v in sorted(an.wrappers.items())}
    return report


def _process_args(an: Analyzer, mod: Module, call: ast.Call, scope: Scope) -> list[tuple[str, Any, str]]:
    """(kind, argument, how) for each way this call starts a process or loads a library."""
    out: list[tuple[str, Any, str]] = []
    direct = _call_kind(an, call, scope)
    if direct is not None:
        out.append((direct[0], direct[1], an.dotted(call.func, scope) or "?"))
    for key, skip in _call_targets(an, call, scope):
        wmod, func = an.funcs[key]
        if isinstance(func, ast.Lambda):
            continue
        binding = an.bind(func, call, skip)
        for param, wkind in an.wrappers[key].items():
            how = f"via {key.split(':', 1)[1]}({param})"
            if binding is None:
                out.append(("argv", None, how))
                continue
            if param in binding:
                out.append((wkind, binding[param], how))
    return out


def _library(an: Analyzer, mod: Module, call: ast.Call, kind: str, arg: Any, scope: Scope, report: Report) -> None:
    declared = _pragma(mod, call, LOADS_PRAGMA)
    if declared:
        report.libraries += [Use(mod.path, call.lineno, n, "declared by # loads:") for n in declared]
        return
    if isinstance(arg, ast.Constant) and arg.value is None:
        return  # CDLL(None): the process itself (libc)
    e = an.strs(arg, scope) if arg is not None else UNKNOWN
    if e.kind != "s" or not e.values or any(HOLE in v for v in e.values):
        report.problems.append(Problem(mod.path, call.lineno, "cannot tell which library this ctypes call loads: resolve it "
                                       "statically or add a '# loads: libname.so.N' comment"))
        return
    for v in sorted(e.values):
        name = v if kind == "lib" else f"lib{v}.so"
        report.libraries.append(Use(mod.path, call.lineno, name, "find_library" if kind == "findlib" else "ctypes"))


# ---------------------------------------------------------------- the tree


def tracked_files() -> list[str]:
    """Tracked (and new, not ignored) files of the repo, relative paths."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        out = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return sorted({p for p in out if p and (REPO / p).is_file()})


def python_sources() -> dict[str, str]:
    return {p: (REPO / p).read_text() for p in tracked_files() if p.endswith(".py") and p.split("/", 1)[0] in PY_DIRS}


def shell_scripts() -> dict[str, str]:
    files = tracked_files()
    picked = [p for p in files if p.endswith(".sh") or p == ".ci/run" or (p.startswith(".ci/") and "." not in Path(p).name)]
    return {p: (REPO / p).read_text() for p in picked}


def scan_shell_tree() -> tuple[list[Use], list[Problem]]:
    uses: list[Use] = []
    problems: list[Problem] = []
    for path, text in shell_scripts().items():
        u, p = shell_uses(text, path)
        uses += u
        problems += p
    recipes, calls = makefile_shell(REPO / "Makefile")
    u, p = shell_uses(recipes, "Makefile", how="recipe (make -n -B)")
    uses += [Use(x.path, 0, x.name, x.how) for x in u]
    problems += p
    for c in calls:
        u, p = shell_uses(c, "Makefile", how="$(shell)")
        uses += [Use(x.path, 0, x.name, x.how) for x in u]
        problems += p
    return uses, problems


def c_headers() -> list[tuple[str, int, str]]:
    """(path, line, header) for each ``#include <...>`` of the tracked C sources."""
    out = []
    for p in tracked_files():
        if p.endswith((".c", ".h")):
            for n, line in enumerate((REPO / p).read_text().splitlines(), 1):
                m = re.match(r"\s*#\s*include\s*<([^>]+)>", line)
                if m:
                    out.append((p, n, m.group(1)))
    return out


# ---------------------------------------------------------------- the system (truth of the table)


def _usr_merge(path: str) -> list[str]:
    out = [path]
    if path.startswith("/usr/"):
        out.append(path[4:])
    elif path.startswith(("/bin/", "/sbin/", "/lib/", "/lib64/")):
        out.append("/usr" + path)
    return out


def path_chain(path: str) -> list[str]:
    """``path``, each symlink it goes through (``update-alternatives``...) and its real path, usr-merge variants too."""
    chain, seen = [], set()
    cur = path
    for _ in range(20):
        if cur in seen:
            break
        seen.add(cur)
        chain.append(cur)
        if not os.path.islink(cur):
            break
        cur = os.path.normpath(os.path.join(os.path.dirname(cur), os.readlink(cur)))
    chain.append(os.path.realpath(path))
    out: list[str] = []
    for p in chain:
        for q in _usr_merge(p):
            if q not in out:
                out.append(q)
    return out


def dpkg_owners(paths: Iterable[str]) -> dict[str, set[str]]:
    """path -> owning packages (arch qualifiers dropped), one ``dpkg -S`` for all."""
    paths = sorted(set(paths))
    owners: dict[str, set[str]] = {p: set() for p in paths}
    if not paths or shutil.which("dpkg") is None:
        return owners
    out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True, timeout=120, check=False).stdout
    for line in out.splitlines():
        pkgs, sep, path = line.rpartition(": ")
        if not sep or path not in owners or pkgs.startswith("diversion by"):
            continue
        owners[path] |= {p.strip().split(":")[0] for p in pkgs.split(",")}
    return owners


SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
DEBIAN_BIN = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")


def locate_program(name: str) -> str | None:
    """Where ``name`` is on PATH (or in the sbin dirs a non-root PATH lacks). A plain search rather than
    shutil.which, so the scanner does not take this look-up of the table's own names for a program it runs."""
    for d in SEARCH_PATH.split(os.pathsep):
        candidate = os.path.join(d, name)
        if d and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def ldconfig_paths() -> dict[str, list[str]]:
    """soname -> paths from ``ldconfig -p``."""
    exe = shutil.which("ldconfig", path=SEARCH_PATH)
    if exe is None:
        return {}
    out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=60, check=False).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        found.setdefault(name.split(" (")[0], []).append(path.strip())
    return found


@dataclass(frozen=True)
class Check:
    ok: bool
    missing: bool
    message: str


def check_rows(rows: list[Row]) -> dict[Row, Check]:
    """For each row: is it there, and does dpkg say its package provides it."""
    candidates: dict[Row, list[str]] = {}
    located: dict[Row, str | None] = {}
    libs = ldconfig_paths() if any(r.kind == "library" for r in rows) else {}
    for r in rows:
        if r.kind == "program":
            where = locate_program(r.name)
            located[r] = where
            debian = [f"{d}/{r.name}" for d in DEBIAN_BIN if os.path.lexists(f"{d}/{r.name}")]
            candidates[r] = ([*path_chain(where)] if where else []) + [q for d in debian for q in path_chain(d)]
        elif r.kind == "library":
            paths = libs.get(r.name, [])
            located[r] = paths[0] if paths else None
            candidates[r] = [q for p in paths for q in path_chain(p)]
        else:
            located[r] = r.name if os.path.exists(r.name) else None
            candidates[r] = path_chain(r.name) if located[r] else []
    owners = dpkg_owners(p for ps in candidates.values() for p in ps)
    out: dict[Row, Check] = {}
    for r in rows:
        where = located[r]
        if where is None:
            what = {"program": "not on PATH (nor in /usr/sbin, /sbin)", "library": "not in `ldconfig -p`", "file": "does not exist"}[r.kind]
            out[r] = Check(False, True, f"{r.kind} {r.name!r} {what}: the set-up (apt-get install {r.package}) did not install it")
            continue
        got = {pkg for p in candidates[r] for pkg in owners.get(p, set())}
        if r.package in got:
            out[r] = Check(True, False, f"{r.name} ({where}) is from {r.package}")
        elif got:
            out[r] = Check(False, False, f"{r.kind} {r.name!r} ({where}) belongs to {sorted(got)}, not {r.package!r}: fix the row's "
                           f"package (dpkg -S {where})")
        else:
            out[r] = Check(False, False, f"{r.kind} {r.name!r} ({where}) belongs to no Debian package (dpkg -S): "
                           f"is it installed by hand? install it from {r.package!r} instead")
    return out


def makefile_apt_packages(makefile: Path = REPO / "Makefile") -> list[str]:
    out = subprocess.run(["make", "-s", "-f", str(makefile), "--eval", "print-apt-packages: ; @echo $(APT_PACKAGES)",
                          "print-apt-packages"], cwd=makefile.parent, capture_output=True, text=True, timeout=60, check=False,
                         env=_fresh_make_env())
    if out.returncode != 0:
        raise RuntimeError(f"make print-apt-packages: exit {out.returncode}: {out.stderr.strip()}")
    return out.stdout.split()


def main() -> int:  # pragma: no cover - a command-line view for people: python tests/install_truth.py
    rows = load_table()
    known = programs_of(rows)
    report = scan_python(python_sources())
    shell, shell_problems = scan_shell_tree()
    for key, params in report.wrappers.items():
        print(f"wrapper {key}: {params}")
    for u in sorted({(u.name, u.path) for u in report.programs + shell}):
        print(f"runs {u[0]:<28} {u[1]}")
    for lib in report.libraries:
        print(f"loads {lib.name} {lib.path}:{lib.line}")
    for p in report.problems + shell_problems:
        print(f"PROBLEM {p.path}:{p.line}: {p.message}")
    for m in missing_programs(report.programs + shell, known):
        print(f"MISSING {m}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
