from __future__ import annotations

import pytest

from styx.errors import SpecError
from styx.spec.envsubst import substitute, substitute_data
from styx.spec.mounts import FileMount, GitWorkdir
from styx.spec.task import Task


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}/x", "1/x"),
        ("$A/x", "1/x"),
        ("$AB", "$AB"),  # a different, undefined variable
        ("${UNKNOWN}", "${UNKNOWN}"),
        ("$NULL", "$NULL"),
        ("${A", "${A"),
        ("$$A", "$1"),
        ("no vars", "no vars"),
        ("${A}${B_2}", "12"),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, {"A": "1", "B_2": "2", "NULL": None}) == expected


def test_substitute_data_reaches_keys_lists_and_nested_values() -> None:
    data = {"/p/$A": {"source": ["~/$A"], "n": 3}}
    assert substitute_data(data, {"A": "x"}) == {"/p/x": {"source": ["~/x"], "n": 3}}


def test_task_sections_that_skypilot_substitutes() -> None:
    t = Task.from_yaml_str(
        """
envs: {MODEL: llama, BUCKET: my-bucket, REF: v1}
workdir: {url: https://example.com/$MODEL.git, ref: $REF}
file_mounts:
  /models/${MODEL}: s3://${BUCKET}/${MODEL}
  /store:
    name: ${BUCKET}-2
    source: ~/${MODEL}
volumes:
  /mnt/$MODEL: vol-$MODEL
service:
  readiness_probe:
    path: /v1
    post_data: {model: $MODEL}
setup: echo $MODEL
run: echo ${MODEL}
"""
    ).substitute_env_vars()
    assert t.workdir == GitWorkdir("https://example.com/llama.git", "v1")
    assert t.file_mounts["/models/llama"] == FileMount("s3://my-bucket/llama")
    assert t.file_mounts["/store"] == FileMount("~/llama", name="my-bucket-2", mapping=True)
    assert t.volumes == {"/mnt/llama": "vol-llama"}
    assert t.service is not None and t.service["readiness_probe"]["post_data"] == {"model": "llama"}
    assert (t.setup, t.run) == ("echo $MODEL", "echo ${MODEL}")  # left to the shell


def test_secrets_are_not_substituted_into_printed_fields() -> None:
    t = Task.from_yaml_str("secrets: {TOKEN: abc}\nfile_mounts: {/x/$TOKEN: ./y}\n")
    assert "/x/$TOKEN" in t.substitute_env_vars().file_mounts


def test_substituted_paths_are_validated_again() -> None:
    t = Task.from_yaml_str('envs: {DIR: "da\\tta"}\nfile_mounts: {$DIR: ./y}\n')
    with pytest.raises(SpecError) as info:
        t.substitute_env_vars()
    assert info.value.code == "invalid-value"
    assert info.value.location is not None
    assert info.value.location.path == "file_mounts['da\\tta']"
