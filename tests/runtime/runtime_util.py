"""Shared by the runtime tests: the repository root and a subprocess runner."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(cmd, check=True, **kwargs):
    """subprocess.run with text output; on failure the assertion shows the command and its output."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 900)
    proc = subprocess.run([str(c) for c in cmd], **kwargs)
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc
