"""Install truth: whatever the code, tests, benchmarks, demo, Makefile and CI run is installed by the set-up.

The one list is packaging/debian-packages.tsv (the Makefile's APT_PACKAGES reads it). A new
``subprocess.run(["newtool", ...])`` anywhere in src/, tests/, bench/ or examples/ (directly or
through a wrapper such as ``run_in``), a new command in a shell script or recipe, or a new ctypes
library turns these tests red until the table names its Debian package. The scanner is
tests/install_truth.py; the end of this file feeds it small synthetic sources so it cannot quietly
stop finding things. Run ``python tests/install_truth.py`` to see everything it finds.
"""

from __future__ import annotations

import os
import platform
import textwrap

import pytest

from tests import install_truth as it

CI = os.environ.get("CI") == "true"
ROWS = it.load_table()
KNOWN = it.programs_of(ROWS)


@pytest.fixture(scope="module")
def python_report() -> it.Report:
    return it.scan_python(it.python_sources())


@pytest.fixture(scope="module")
def shell_scan() -> tuple[list[it.Use], list[it.Problem]]:
    return it.scan_shell_tree()


@pytest.fixture(scope="module")
def checks() -> dict[it.Row, it.Check]:
    return it.check_rows(ROWS)


def _lines(items: list[str]) -> str:
    return "\n  " + "\n  ".join(items)


# ---------------------------------------------------------------- the table itself


def test_table_is_well_formed() -> None:
    rows, errors = it.parse_table(it.TABLE.read_text())
    assert not errors, _lines(errors)
    seen: dict[tuple[str, str], int] = {}
    dupes = [f"line {r.line}: {r.kind} {r.name} repeats line {seen[(r.kind, r.name)]}" for r in rows
             if seen.setdefault((r.kind, r.name), r.line) != r.line]
    assert not dupes, _lines(dupes)
    assert {"bpftool", "ip", "clang"} <= it.programs_of(rows)


def test_makefile_installs_exactly_the_tables_packages() -> None:
    """APT_PACKAGES comes from the table, so nobody re-adds a hand-kept list."""
    make, table = set(it.makefile_apt_packages()), {r.package for r in ROWS}
    assert make == table, (f"Makefile APT_PACKAGES differs from packaging/debian-packages.tsv: only in the Makefile "
                           f"{sorted(make - table)}, only in the table {sorted(table - make)}; the Makefile must read the table")


# ---------------------------------------------------------------- what the code runs


def test_every_python_process_call_is_resolved(python_report: it.Report) -> None:
    problems = sorted(f"{p.path}:{p.line}: {p.message}" for p in python_report.problems)
    assert not problems, _lines(problems)


def test_every_program_python_runs_is_in_the_table(python_report: it.Report) -> None:
    assert python_report.programs, "the scanner found no program at all: it is broken"
    missing = it.missing_programs(python_report.programs, KNOWN)
    assert not missing, _lines(missing)


def test_the_wrappers_are_found(python_report: it.Report) -> None:
    """The project's own ways of running a command are seen through (else their call sites go unchecked)."""
    wrappers = python_report.wrappers
    for key in ("seawall.testing.netns:_run", "seawall.testing.netns:run_in",
                "seawall.dataplane.iptables.backend:SubprocessRunner.__call__"):
        assert key in wrappers, sorted(wrappers)


def test_every_program_the_shell_runs_is_in_the_table(shell_scan: tuple[list[it.Use], list[it.Problem]]) -> None:
    uses, problems = shell_scan
    assert not problems, _lines([f"{p.path}:{p.line}: {p.message}" for p in problems])
    assert any(u.path == "Makefile" for u in uses) and any(u.path == ".ci/run" for u in uses)
    missing = it.missing_programs(uses, KNOWN)
    assert not missing, _lines(missing)


def test_every_ctypes_library_is_in_the_table(python_report: it.Report) -> None:
    libraries = {r.name for r in ROWS if r.kind == "library"}
    assert any(u.name == "libbpf.so.1" for u in python_report.libraries)
    missing = [f"{u.path}:{u.line}: loads {u.name!r}: add a `library` row to packaging/debian-packages.tsv"
               for u in python_report.libraries
               if u.name not in libraries and not any(lib.startswith(u.name) for lib in libraries)]
    assert not missing, _lines(missing)


def test_every_c_include_comes_from_a_table_package() -> None:
    packages = {r.package for r in ROWS}
    arch = f"{platform.machine()}-linux-gnu"
    found: dict[tuple[str, int, str], str | None] = {}
    for path, line, header in it.c_headers():
        found[(path, line, header)] = next((c for c in (f"/usr/include/{header}", f"/usr/include/{arch}/{header}")
                                            if os.path.exists(c)), None)
    owners = it.dpkg_owners(q for p in found.values() if p for q in it.path_chain(p))
    bad, absent = [], []
    for (path, line, header), where in sorted(found.items()):
        if where is None:
            absent.append(f"{path}:{line}: <{header}> is not installed")
            continue
        got = {pkg for q in it.path_chain(where) for pkg in owners.get(q, set())}
        if not got & packages:
            bad.append(f"{path}:{line}: <{header}> ({where}) is from {sorted(got) or 'no package'}: "
                       f"add a `file` row for it to packaging/debian-packages.tsv")
    assert not bad, _lines(bad)
    if absent:
        if CI:
            pytest.fail("headers missing after the set-up:" + _lines(absent))
        pytest.skip("headers not installed here: " + "; ".join(absent))


# ---------------------------------------------------------------- the table is true of Debian


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.kind}:{r.name}" for r in ROWS])
def test_row_names_the_package_that_provides_it(row: it.Row, checks: dict[it.Row, it.Check]) -> None:
    check = checks[row]
    if check.missing:
        if CI:
            pytest.fail(f"line {row.line}: {check.message}")
        pytest.skip(f"line {row.line}: {check.message}")
    assert check.ok, f"packaging/debian-packages.tsv line {row.line}: {check.message}"


# ---------------------------------------------------------------- the scanner can fail (mutation checks)

NETNS = textwrap.dedent('''
    import subprocess

    def _run(args, *, check=True):
        return subprocess.run(args, capture_output=True, check=False)

    def ip(*args, ns=None):
        return _run(["ip", *(["-n", ns] if ns else []), *args])

    def run_in(ns, cmd, **kw):
        return subprocess.run([*(["ip", "netns", "exec", ns] if ns else []), *cmd], **kw)
''')
RUNNER = textwrap.dedent('''
    import subprocess

    class Runner:
        def __init__(self, prefix=()):
            self.prefix = list(prefix)

        def __call__(self, argv, stdin=None):
            full = [*self.prefix, *argv]
            return subprocess.run(full, input=stdin)
''')


def _scan(**files: str) -> it.Report:
    return it.scan_python({path.replace("__", "/") + ".py": textwrap.dedent(text) for path, text in files.items()})


def _programs(report: it.Report) -> set[str]:
    return {u.name for u in report.programs}


def test_mutation_a_direct_call_of_a_new_program_is_reported() -> None:
    report = _scan(src__seawall__new="import subprocess\nsubprocess.run(['newtool', 'x'], check=True)\n")
    assert not report.problems
    missing = it.missing_programs(report.programs, KNOWN)
    assert len(missing) == 1 and "src/seawall/new.py:2" in missing[0] and "'newtool'" in missing[0]
    assert "add it to packaging/debian-packages.tsv" in missing[0]


@pytest.mark.parametrize("call", [
    "run_in(ns, ['newtool', '-v'])",
    "run_in(None, ['nsenter', '--net=/run/netns/x', 'newtool'])",
    "outer(['newtool'])",
    "subprocess.Popen(['ip', 'netns', 'exec', ns, 'newtool'])",
    "subprocess.run(['sh', '-c', 'mount -t tmpfs x /mnt && exec newtool \"$@\"', 'x'])",
    "subprocess.run(CMD + ['x'])",
    "subprocess.run(f'newtool {ns}', shell=True)",
    "os.system(f\"newtool '{ns}'\")",
    "shutil.which('newtool')",
    "subprocess.run([which_new(), 'x'])",
])
def test_mutation_a_new_program_behind_a_wrapper_or_a_name_is_reported(call: str) -> None:
    user = f'''
        import os, shutil, subprocess
        from seawall.testing.nsx import run_in

        CMD = ["newtool", "--flag"]

        def which_new():
            return shutil.which("newtool")

        def outer(c):
            return run_in(None, c)

        def test_it(ns="x"):
            {call}
    '''
    report = _scan(src__seawall__testing__nsx=NETNS, tests__kernel__test_new=user)
    assert not report.problems, report.problems
    assert "newtool" in _programs(report), report.programs
    assert any("newtool" in m for m in it.missing_programs(report.programs, KNOWN))


def test_mutation_a_callable_runner_and_its_prefix_are_seen_through() -> None:
    user = '''
        from seawall.runner import Runner

        def test_it(ns):
            runner = Runner(["ip", "netns", "exec", ns])
            runner(["newtool", "list"])
    '''
    report = _scan(src__seawall__runner=RUNNER, tests__test_new=user)
    assert "seawall.runner:Runner.__call__" in report.wrappers and "seawall.runner:Runner.__init__" in report.wrappers
    assert {"ip", "newtool"} <= _programs(report) and not report.problems


def test_mutation_a_table_of_names_is_resolved() -> None:
    """Names built from an Enum and a dict, as ``backend.binaries()`` does."""
    src = '''
        import enum, subprocess

        class Flavour(enum.Enum):
            OLD = "old"
            NEW = "new"

        def names(flavour: Flavour, family: int) -> dict[str, str]:
            base = "newtool" if family == 4 else "newtool6"
            return {"cmd": f"{base}-{flavour.value}", "save": f"{base}-{flavour.value}-save"}

        def save(flavour: Flavour) -> None:
            subprocess.run([names(flavour, 4)["save"], "-t", "raw"])
    '''
    report = _scan(src__seawall__flav=src)
    assert _programs(report) == {"newtool-old-save", "newtool-new-save", "newtool6-old-save", "newtool6-new-save"}


def test_mutation_an_unresolvable_call_without_a_pragma_fails_with_the_fix() -> None:
    src = textwrap.dedent('''
        import subprocess

        def go(config):
            argv = config.command()
            subprocess.run(argv)
    ''')
    report = _scan(tests__test_new=src)
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert (problem.path, problem.line) == ("tests/test_new.py", 6)
    assert "# runs:" in problem.message
    # the pragma declares the programs (they must be in the table too), on the line or the line above
    for pragma in ("    subprocess.run(argv)  # runs: newtool", "    # runs: newtool\n    subprocess.run(argv)"):
        report = _scan(tests__test_new=src.replace("    subprocess.run(argv)", pragma))
        assert not report.problems and _programs(report) == {"newtool"}
    report = _scan(tests__test_new=src.replace("subprocess.run(argv)", "subprocess.run(argv)  # runs: (built)"))
    assert not report.problems and not report.programs
    # a pragma-looking string is not a pragma
    report = _scan(tests__test_new=src.replace("subprocess.run(argv)", "subprocess.run(argv, input='# runs: x')"))
    assert len(report.problems) == 1


def test_mutation_an_unresolvable_wrapper_call_site_fails() -> None:
    user = '''
        from seawall.testing.nsx import run_in

        def test_it(cmd_from_somewhere):
            run_in("ns", cmd_from_somewhere.split(","))
    '''
    report = _scan(src__seawall__testing__nsx=NETNS, tests__test_new=user)
    assert [(p.path, p.line) for p in report.problems] == [("tests/test_new.py", 5)]


def test_mutation_a_new_ctypes_library_is_reported() -> None:
    src = '''
        import ctypes, os
        SONAME = os.environ.get("NEWLIB", "libnew.so.3")
        lib = ctypes.CDLL(SONAME, use_errno=True)
        libc = ctypes.CDLL(None)
    '''
    report = _scan(src__seawall__newlib=src)
    assert [u.name for u in report.libraries] == ["libnew.so.3"] and not report.problems


@pytest.mark.parametrize("script", [
    "#!/bin/sh\nset -e\nnewtool --x\n",
    "#!/bin/bash\nf() { echo hi; }\nf && x=$(newtool -q) || true\n",
    "#!/bin/bash\ncase \"$1\" in\n  a|b) newtool ;;\n  *) echo no ;;\nesac\n",
    "#!/bin/bash\nFOO=1 exec env A=b timeout 5 newtool \"$@\"\n",
])
def test_mutation_a_shell_script_calling_a_new_program_is_reported(script: str) -> None:
    uses, problems = it.shell_uses(script, "examples/new.sh")
    assert not problems
    missing = it.missing_programs(uses, KNOWN)
    assert any("'newtool'" in m and "examples/new.sh:" in m for m in missing), (uses, missing)


def test_mutation_shell_builtins_functions_variables_and_repo_paths_are_not_programs() -> None:
    script = ('#!/bin/bash\nset -euo pipefail\ncd "$(dirname "$0")/.."\nstep() { printf "%s" "$*"; }\n'
              'step a\n"$CMD" x\n.venv/bin/python -m x\nif [ -n "$x" ]; then echo; fi\n')
    uses, problems = it.shell_uses(script, "examples/ok.sh")
    assert not problems and {u.name for u in uses} == {"dirname"}


def test_mutation_the_real_tree_turns_red_on_a_new_call_and_a_dropped_row(python_report: it.Report) -> None:
    """The real sources plus one added line (in memory) and the real table less one row."""
    sources = it.python_sources()
    path = "src/seawall/dataplane/xdp/build.py"
    sources[path] += "\n\ndef _new() -> None:\n    subprocess.run([\"newtool\"])\n"
    missing = it.missing_programs(it.scan_python(sources).programs, KNOWN)
    assert [m for m in missing if m.startswith(f"{path}:") and "'newtool'" in m]
    without_bpftool = it.programs_of(r for r in ROWS if r.name != "bpftool")
    missing = it.missing_programs(python_report.programs, without_bpftool)
    assert any("tests/kernel/test_libbpf_binding.py:" in m and "'bpftool'" in m for m in missing), missing


def test_positive_known_programs_and_our_own_python_pass() -> None:
    src = '''
        import subprocess, sys
        from seawall.testing.nsx import ip, run_in

        def test_it(ns):
            ip("link", "set", "lo", "up", ns=ns)
            run_in(ns, ["ip", "-j", "link"])
            run_in(ns, [sys.executable, "-c", "pass"])
            subprocess.run([sys.executable, "-m", "seawall", "status"])
    '''
    report = _scan(src__seawall__testing__nsx=NETNS, tests__test_ok=src)
    assert not report.problems and _programs(report) == {"ip"}
    assert not it.missing_programs(report.programs, KNOWN)
