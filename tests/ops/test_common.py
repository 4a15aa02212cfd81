"""Pure helpers of the operations layer."""

from __future__ import annotations

from styx.ops.common import redact_argv


def test_the_recorded_command_line_never_holds_a_secret() -> None:
    argv = [
        "launch",
        "t.yaml",
        "--secret",
        "TOKEN=hunter2",
        "--secret=KEY=s3cr=et",
        "--secret",
        "FROM_SHELL",
        "--env",
        "PLAIN=visible",
        "--secret=ALSO_SHELL",
        "-c",
        "dev",
    ]
    out = redact_argv(argv)
    assert out == [
        "launch",
        "t.yaml",
        "--secret",
        "TOKEN=<redacted>",
        "--secret=KEY=<redacted>",
        "--secret",
        "FROM_SHELL",
        "--env",
        "PLAIN=visible",
        "--secret=ALSO_SHELL",
        "-c",
        "dev",
    ]
    assert "hunter2" not in " ".join(out) and "s3cr" not in " ".join(out)
