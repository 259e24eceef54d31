"""The README's commands do what they say, as far as they run here without data or clouds:
every ``make sweep`` / ``make status`` line runs as its launcher command with ``--dry-run``
(shell variables set in its block included), a trainer command line is checked by the launcher
with the same flags, every documented ``python -m trainer.models`` line prints the parameter
count its comment states, and every other ``make`` target named exists."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def blocks() -> list[list[str]]:
    """The README's bash blocks, each a list of commands (continuation lines joined)."""
    out, cur, inside = [], [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```bash"):
            inside, cur = True, []
        elif line.startswith("```") and inside:
            inside = False
            text = "\n".join(cur).replace("\\\n", " ")
            out.append([ln.strip() for ln in text.splitlines() if ln.strip()])
        elif inside:
            cur.append(line)
    return out


def without_comment(cmd: str) -> str:
    return shlex.join(shlex.split(cmd, comments=True))


def make_command(cmd: str, env: dict[str, str]) -> list[str]:
    """The ``python -m ...`` argv ``make`` would run for ``cmd`` (``make -n``)."""
    words = shlex.split(cmd, comments=True)
    words = [re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), w) for w in words]
    r = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", *words[1:]],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (line,) = [ln for ln in r.stdout.splitlines() if " -m " in ln and "pip" not in ln]
    argv = shlex.split(line)
    return [sys.executable, *argv[1:]]


def launch_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for block in blocks():
        env: dict[str, str] = {}
        for cmd in block:
            m = re.match(r"^(\w+)=\"(.*)\"$", cmd)
            if m:
                env[m.group(1)] = m.group(2)
            elif re.match(r"^make (sweep|status)\b", cmd):
                cases.append((cmd, make_command(cmd, env)))
            elif cmd.startswith("python -m trainer "):
                cases.append((cmd, [sys.executable, "-m", "launch", *shlex.split(cmd)[3:]]))
    return cases


@pytest.mark.slow
def test_every_documented_sweep_command_parses_and_dry_runs(tmp_path):
    cases = launch_cases()
    assert len(cases) >= 10
    for cmd, argv in cases:
        argv = [*argv, "--runs-dir", str(tmp_path / "runs")]
        if "--status" not in argv and "--dry-run" not in argv:
            argv.append("--dry-run")
        r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{cmd}\n{shlex.join(argv)}\n{r.stdout[-2000:]}{r.stderr[-2000:]}"


def test_documented_models_commands_print_what_they_say():
    found = 0
    for block in blocks():
        for cmd in block:
            m = re.match(r"^python -m trainer\.models (.*?)\s+# ([\d,]+)", cmd)
            if not m:
                continue
            found += 1
            r = subprocess.run(
                [sys.executable, "-m", "trainer.models", *shlex.split(m.group(1))],
                cwd=REPO, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["params"] == int(m.group(2).replace(",", "")), cmd
            assert "note:" not in r.stderr  # full-size models, as said
    assert found >= 2


def test_every_make_target_named_exists():
    targets = set()
    for block in blocks():
        for cmd in block:
            for m in re.finditer(r"(?:^|&& )make (\w[\w-]*)", without_comment(cmd)):
                targets.add(m.group(1))
    rules = (REPO / "Makefile").read_text()
    for t in targets:
        assert re.search(rf"^{re.escape(t)}:", rules, re.M), f"make {t} is in README, not Makefile"
