"""Hostile input: look-alike CIDRs, alias bombs, huge ints, deep nesting, odd files.

Every case must end in the project's own clean error (exit 1 from the CLI), fast,
with bounded output and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seawall.api import ValidationFailed
from seawall.api.cidr import CidrError, check_set_nets, parse_net
from seawall.api.codec import load_text
from seawall.api.errors import MAX_ERRORS_SHOWN, DocumentError, FieldError, render_value
from seawall.api.yamlio import FAST_PATH_BYTES, YamlSyntaxError, load_all, load_all_pyyaml

HEAD = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: x\n"


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return HEAD + "  labels:\n" + "".join(f"    {line}\n" for line in lines)


def deep_yaml(depth: int = 5000) -> str:
    return HEAD + "  labels:\n    a: " + "[" * depth + "]" * depth + "\n"


def deep_json(depth: int = 100_000) -> str:
    return '{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkSet","metadata":{"name":"x","labels":{"a":' + (
        "[" * depth + "]" * depth + "}}}"
    )


HUGE_INT_YAML = HEAD + "spec:\n  nets: [" + "9" * 5000 + "]\n"
HUGE_INT_JSON = '{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkSet","metadata":{"name":"x"},"spec":{"nets":[' + (
    "9" * 5000 + "]}}"
)
DUP_JSON = '{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkSet","metadata":{"name":"x","name":"y"}}'


def _refused(text: str, source: str = "f.yaml") -> str:
    with pytest.raises(ValidationFailed) as info:
        load_text(text, source)
    return str(info.value)


# ------------------------------------------------------------------ 1. look-alike CIDRs

ARABIC_3 = "\u0663"


@pytest.mark.parametrize(
    "net",
    [f"1.2.3.4/{ARABIC_3}", f"1.2.3.{ARABIC_3}", f"1.2.3.{ARABIC_3}/32", "fe80::1%eth0", "fe80::1%eth0/128",
     f"fe80::{ARABIC_3}/64", "10.0.0.0/\uff18", "\uff11.2.3.4"],
)
def test_look_alike_cidrs_are_refused(net: str) -> None:
    assert check_set_nets([net]) and check_set_nets([net])[0][0] == 0
    with pytest.raises(CidrError):
        parse_net(net, strict=True)
    with pytest.raises(CidrError):
        parse_net(net, strict=False)


def test_ascii_cidrs_still_pass() -> None:
    assert check_set_nets(["1.2.3.4/32", "10.0.0.0/8", "1.2.3.4", "2001:db8::/32", "fe80::1"]) == []


# ------------------------------------------------------------------ 2. alias bomb


def test_billion_laughs_is_refused_fast() -> None:
    text = billion_laughs()
    assert len(text) < 1024
    start = time.monotonic()
    message = _refused(text)
    assert time.monotonic() - start < 1
    assert "aliases expand" in message and len(message) < 500


def test_billion_laughs_on_the_fast_path_is_refused() -> None:
    text = billion_laughs() + "#" + "x" * FAST_PATH_BYTES + "\n"
    with pytest.raises(YamlSyntaxError):
        load_all(text)


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlSyntaxError, match="recursive alias"):
        load_all_pyyaml("a: &x [*x]\n")


def test_modest_aliases_still_work() -> None:
    assert load_all_pyyaml("a: &x [1, 2]\nb: *x\n") == [{"a": [1, 2], "b": [1, 2]}]


def test_render_value_does_not_expand_shared_structure() -> None:
    level: list[object] = ["lol"] * 9
    for _ in range(30):  # 9**30 items if expanded
        level = [level] * 9
    start = time.monotonic()
    text = render_value(level)
    assert time.monotonic() - start < 0.1 and len(text) <= 82


def test_render_value_of_huge_int_and_deep_list() -> None:
    assert "bits" in render_value(10**5000)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert len(render_value(deep)) <= 82


# ------------------------------------------------------------------ 3. tracebacks


@pytest.mark.parametrize(("text", "source"), [(HUGE_INT_YAML, "f.yaml"), (HUGE_INT_JSON, "f.json"), (HUGE_INT_JSON, "f.yaml")])
def test_huge_integers_are_refused(text: str, source: str) -> None:
    assert "not valid YAML or JSON" in _refused(text, source)


def test_unhashable_mapping_key_is_refused() -> None:
    assert "must be a scalar" in _refused(HEAD + "  ? [a]\n  : 1\n")


@pytest.mark.parametrize(("text", "source"), [(deep_yaml(), "f.yaml"), (deep_yaml(150), "f.yaml"), (deep_json(), "f.json"),
                                              (deep_json(150), "f.json"), (deep_json(150), "f.yaml")])
def test_deep_nesting_is_refused(text: str, source: str) -> None:
    assert "nest" in _refused(text, source)


# ------------------------------------------------------------------ 4. duplicate JSON keys


def test_duplicate_json_keys_are_refused() -> None:
    assert "duplicate key 'name'" in _refused(DUP_JSON, "f.json")
    assert "duplicate key 'name'" in _refused(DUP_JSON, "f.yaml")


# ------------------------------------------------------------------ 5. bounded error output


def test_a_huge_value_gives_a_short_message() -> None:
    garbage = "x" * 5_000_000
    message = _refused(HEAD + f"spec:\n  nets: ['{garbage}']\n  {garbage}: 1\n")
    assert len(message) < 5_000


def test_a_huge_garbage_line_gives_a_short_message() -> None:
    message = _refused("a: [" + "\x01" * 5_000_000 + "\n")
    assert len(message) < 5_000


def test_at_most_max_errors_are_listed() -> None:
    errors = [DocumentError("f", str(i), "K", "n", [FieldError("p", "bad", i), FieldError("q", "bad")]) for i in range(500)]
    failed = ValidationFailed(errors)
    text = str(failed)
    assert text.count("error with field") == MAX_ERRORS_SHOWN
    assert "... and 900 more errors" in text
    assert sum(len(e.errors) for e in failed.errors) == 1000
    again = ValidationFailed(failed.errors)  # re-wrapping (as the CLI does) loses nothing
    assert str(again) == text


def test_many_bad_nets_in_one_document_are_capped() -> None:
    nets = ", ".join(f"'bad{i}'" for i in range(1000))
    message = _refused(HEAD + f"spec:\n  nets: [{nets}]\n")
    assert message.count("error with field") == MAX_ERRORS_SHOWN and "more errors" in message


# ------------------------------------------------------------------ 6. the CLI, end to end

CLI_CASES = {
    "bomb.yaml": billion_laughs(),
    "deep.yaml": deep_yaml(),
    "deep.json": deep_json(),
    "huge-int.yaml": HUGE_INT_YAML,
    "huge-int.json": HUGE_INT_JSON,
    "dup-keys.json": DUP_JSON,
    "garbage.yaml": "a: [" + "\x01" * 5_000_000 + "\n",
}


def _run_cli(path: str) -> subprocess.CompletedProcess[str]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "seawall", "validate", "-f", path], capture_output=True, text=True, timeout=30
    )
    assert time.monotonic() - start < 15
    return result


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_refuses_hostile_file_cleanly(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(CLI_CASES[name], encoding="utf-8")
    result = _run_cli(str(path))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr) + len(result.stdout) < 5_000
    assert "nothing was written" in result.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_cli_refuses_dev_zero() -> None:
    result = _run_cli("/dev/zero")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "not a regular file" in result.stderr
    assert len(result.stderr) < 2_000


def test_input_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seawall.cli import inputs

    monkeypatch.setattr(inputs, "MAX_INPUT_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "#" * 200, encoding="utf-8")
    with pytest.raises(ValidationFailed, match="limit"):
        inputs.read_sources((str(path),))


def test_crlf_files_still_read_as_text(tmp_path: Path) -> None:
    from seawall.cli import inputs

    path = tmp_path / "crlf.yaml"
    path.write_bytes(b"a: 1\r\nb: 2\r\n")
    assert inputs.read_sources((str(path),)) == [("a: 1\nb: 2\n", str(path))]


def test_json_documents_still_decode() -> None:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "x"},
           "spec": {"nets": ["10.0.0.0/8"]}}
    assert load_text(json.dumps(doc), "f.json")[0].key == ("GlobalNetworkSet", "x")


def test_a_field_at_the_wrong_level_is_not_suggested_as_itself() -> None:
    text = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
            "spec:\n  ingress:\n  - {action: Deny, kind: GlobalNetworkSet}\n")
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "p.yaml")
    message = str(info.value)
    assert 'unknown field "kind" (not a field at this level)' in message and 'did you mean "kind"' not in message


@pytest.mark.parametrize("version", ["²", "٢", "２", "9" * 5000, "1e3", "-1"])
def test_a_look_alike_or_huge_resource_version_is_refused(version: str) -> None:
    from seawall.cli import operations

    text = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n"
            f"metadata: {{name: s, resourceVersion: '{version}'}}\nspec: {{nets: [1.2.3.4/32]}}\n")
    item = load_text(text, "s.yaml")[0]
    with pytest.raises(ValidationFailed) as info:
        operations.plan(operations.Mode.APPLY, [item], {item.key: None})  # type: ignore[dict-item]
    assert "resourceVersion must be a revision number" in str(info.value)


@pytest.mark.parametrize("port", ["²", "２２", "1:²", "٣:5"])
def test_a_look_alike_port_is_refused(port: str) -> None:
    text = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
            f"spec:\n  ingress:\n  - action: Deny\n    protocol: TCP\n    destination: {{ports: ['{port}']}}\n")
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "p.yaml")
    assert "port" in str(info.value)


def test_a_million_unknown_keys_cost_a_walk_not_a_million_errors() -> None:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "s"},
           "spec": {f"k{i}": 1 for i in range(150_000)}}
    with pytest.raises(ValidationFailed) as info:
        load_text(json.dumps(doc), "s.json")
    assert "a mapping of 150,000 keys" in str(info.value) and len(info.value.errors[0].errors) == 1


def test_a_million_items_of_the_wrong_type_give_one_error() -> None:
    text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\nspec:\n  nets:\n" + "  - []\n" * 200_000
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "s.yaml")
    assert len(info.value.errors) == 1 and len(info.value.errors[0].errors) == 1
