"""The one cluster-name rule (SkyPilot's): ASCII, a letter first, bounded length."""

from __future__ import annotations

import pytest

from styx.errors import UsageError
from styx.spec.names import MAX_LENGTH, check_cluster_name, is_valid_name


@pytest.mark.parametrize("name", ["a", "dev", "my-cluster_2.prod", "A1", "x" * MAX_LENGTH])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name) and check_cluster_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a\nb",
        "abc\n",  # a trailing newline passes a `$`-anchored pattern; not this rule
        "ünïcode",
        "café",
        "1abc",
        "-abc",
        "abc-",
        "a b",
        "a/b",
        "a\tb",
        "x" * (MAX_LENGTH + 1),
        "\uff41\uff42\uff43",  # fullwidth letters are letters to str.isalpha, not ASCII
        "a\u0661",  # an Arabic-Indic digit is a digit to str.isalnum
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(UsageError) as info:
        check_cluster_name(name)
    assert info.value.code == "invalid-cluster-name" and info.value.exit_code == 2
    assert "\n" not in info.value.message  # a newline is shown escaped, never printed
    assert "ASCII" in info.value.hint
