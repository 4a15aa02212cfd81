from __future__ import annotations

from pathlib import Path

import pytest

from styx.errors import SpecError
from styx.spec import yamlio
from styx.spec.yamlio import dump, dump_all, format_path, load_documents, read_text


def test_positions_point_at_keys_and_items() -> None:
    (doc,) = load_documents("name: a\nresources:\n  cpus: 4\n  ports: [80, 81]\n")
    assert doc.data == {"name": "a", "resources": {"cpus": 4, "ports": [80, 81]}}
    assert doc.positions[("name",)] == (1, 1)
    assert doc.positions[("resources", "cpus")] == (3, 3)
    assert doc.positions[("resources", "ports", 1)] == (4, 15)


def test_several_documents_and_empty_ones() -> None:
    docs = load_documents("---\na: 1\n---\n---\nb: 2\n")
    assert [d.data for d in docs] == [{"a": 1}, None, {"b": 2}]
    assert docs[2].positions[("b",)] == (5, 1)


def test_keys_stay_text_as_written() -> None:
    (doc,) = load_documents("on: 1\n123: x\nnull: y\n")
    assert doc.data == {"on": 1, "123": "x", "null": "y"}


def test_values_follow_yaml_types() -> None:
    (doc,) = load_documents("a: yes\nb: 1.5\nc: ~\nd: '1'\ne: .inf\nf: 2024-13-45\n")
    assert doc.data["a"] is True and doc.data["b"] == 1.5 and doc.data["c"] is None
    assert doc.data["d"] == "1" and doc.data["e"] == float("inf")
    assert doc.data["f"] == "2024-13-45"  # not a real date: the text is kept


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  y: 3\n  <<: *b\n"
    (doc,) = load_documents(text)
    assert doc.data["use"] == {"x": 1, "y": 2}
    assert doc.data["merged"] == {"x": 1, "y": 3}
    assert doc.positions[("merged", "y")] == (4, 3)


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("a: 1\na: 2\n", "duplicate-key", 2),
        ("a:\n  b: 1\n  b: 1\n", "duplicate-key", 3),
        ("a: [\n", "yaml-syntax", 2),
        ("a: *nope\n", "yaml-syntax", 1),
        ("a: !custom 1\n", "yaml-syntax", 1),
        ("a: \x07\n", "yaml-syntax", 1),
        ("x: &a [*a]\n", "too-complex", 1),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "too-complex", 1),
        ("? [1]\n: 2\n", "invalid-type", 1),
        ("a: 1" + "0" * 5000 + "\n", "invalid-value", 1),
    ],
)
def test_bad_yaml_is_a_located_spec_error(text: str, code: str, line: int) -> None:
    with pytest.raises(SpecError) as info:
        load_documents(text, file="f.yaml")
    assert info.value.code == code
    assert info.value.location is not None
    assert (info.value.location.file, info.value.location.line) == ("f.yaml", line)


def test_billion_laughs_is_stopped() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(SpecError) as info:
        load_documents("\n".join(lines))
    assert info.value.code == "too-complex"


def test_huge_text_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlio, "MAX_BYTES", 100)
    with pytest.raises(SpecError) as info:
        load_documents("a: " + "x" * 200)
    assert info.value.code == "too-complex"


def test_duplicate_key_in_second_document_names_it() -> None:
    with pytest.raises(SpecError) as info:
        load_documents("a: 1\n---\nb: 1\nb: 2\n")
    assert info.value.location is not None
    assert info.value.location.path == "[1].b"


def test_format_path() -> None:
    assert format_path(("resources", "accelerators")) == "resources.accelerators"
    assert format_path((2, "run")) == "[2].run"
    assert format_path(("file_mounts", "/data", "mode")) == "file_mounts['/data'].mode"
    assert format_path(("envs", "1A")) == "envs['1A']"
    assert format_path(()) == ""


def test_dump_uses_literal_blocks_for_scripts() -> None:
    text = dump({"run": "echo a\necho b\n", "name": "x", "n": [1, 2]})
    assert "run: |\n  echo a\n  echo b\n" in text
    assert load_documents(text)[0].data == {"run": "echo a\necho b\n", "name": "x", "n": [1, 2]}


def test_dump_all_round_trips() -> None:
    docs = [{"name": "p"}, {"run": "a"}, {"run": "b\n"}]
    assert [d.data for d in load_documents(dump_all(docs))] == docs


def test_read_text_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        read_text(tmp_path / "missing.yaml")
    assert info.value.code == "file-not-found"
    with pytest.raises(SpecError) as info:
        read_text(tmp_path)
    assert info.value.code == "file-not-found"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        read_text(bad)
    assert info.value.code == "yaml-syntax"
    assert info.value.location is not None and info.value.location.line == 2


def test_read_text_strips_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfrun: x\n")
    assert load_documents(read_text(path))[0].data == {"run": "x"}
