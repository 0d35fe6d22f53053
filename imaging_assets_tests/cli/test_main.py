"""The `imaging-assets` command line: sample writes a gallery and says what it wrote."""

from __future__ import annotations

import subprocess
import sys

from imaging_assets.cli.main import build_parser
from imaging_assets.jump import layout


def _sample(root, preset: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "imaging_assets.cli.main", "sample", "--root", str(root)]
    return subprocess.run(
        [*command, "--preset", preset], capture_output=True, text=True, timeout=300
    )


def test_sample_command_writes_the_tiny_gallery(tmp_path):
    done = _sample(tmp_path, "tiny")
    assert done.returncode == 0, done.stderr
    assert "5 imaged plates" in done.stdout
    assert "images [" in done.stderr  # the progress bar
    key = layout.load_data_csv_key("source_4", "2021_04_26_Batch1", "BR00117035")
    assert (tmp_path / "cpg0016-jump" / key).exists()


def test_unknown_preset_is_a_clear_error(tmp_path):
    done = _sample(tmp_path, "huge")
    assert done.returncode == 2
    assert "unknown sample preset 'huge'" in done.stderr and "tiny" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_subcommand_has_help():
    parser = build_parser()
    for command in ("sample", "demo", "dev"):
        assert (
            parser.parse_args(
                [command, "--root", "x"] if command == "sample" else [command]
            ).command
            == command
        )


def test_version_and_help_without_arguments(capsys):
    from imaging_assets import __version__
    from imaging_assets.cli.main import main

    assert main([]) == 0
    shown = capsys.readouterr().out
    assert "usage: imaging-assets" in shown and "lake" in shown
    done = subprocess.run(
        [sys.executable, "-m", "imaging_assets.cli.main", "--version"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and __version__ in done.stdout


def test_every_option_has_help_text():
    parser = build_parser()
    subparsers = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    pending = [(name, p) for name, p in subparsers[0].choices.items()]
    while pending:
        name, sub = pending.pop()
        for action in sub._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                pending += [(f"{name} {n}", p) for n, p in action.choices.items()]
            elif action.dest != "help":
                assert action.help, f"{name} {action.dest} has no help"
