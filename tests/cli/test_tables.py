"""Tables keep every value whole when piped, and no value can break their lines."""

from __future__ import annotations

import pytest

from styx.cli import tables

LONG = "lambda/asia-northeast-1/" + "x" * 90


def test_piped_tables_keep_every_value_whole(capsys: pytest.CaptureFixture[str]) -> None:
    tables.render(("INFRA", "STATUS"), [(LONG, "UP")], max_width=40)
    out = capsys.readouterr().out
    assert LONG in out and "…" not in out


def test_on_a_terminal_long_cells_are_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "_stdout_is_terminal", lambda: True)
    tables.render(("INFRA", "STATUS"), [(LONG, "UP")], max_width=40)
    out = capsys.readouterr().out
    assert LONG not in out and LONG[:39] + "…" in out


def test_control_characters_cannot_break_a_row(capsys: pytest.CaptureFixture[str]) -> None:
    tables.render(("NAME", "STATUS"), [("a\nb\tc", "UP")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "a\\nb\\tc" in lines[1]


def test_rich_consoles_are_wide_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.table import Table

    from styx.ops.pipeline import console

    table = Table(box=None)
    for name in ("INFRA", "INSTANCE", "vCPUs", "MEM(GB)", "ACCELERATORS", "$/H"):
        table.add_column(name)
    table.add_row(LONG, "gpu_8x_a100_80gb_sxm4", "240", "1800", "A100-80GB:8", "14.32")
    console().print(table)
    out = capsys.readouterr().out
    assert LONG in out and "gpu_8x_a100_80gb_sxm4" in out and "…" not in out
