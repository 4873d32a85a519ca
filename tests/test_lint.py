"""The workflow passes Snakemake's linter and snakefmt, as the README promises."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO


def test_snakemake_lint_reports_nothing():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--workflow-profile", "none"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_snakefmt_check():
    snakefmt = shutil.which("snakefmt", path=str(REPO / ".venv" / "bin")) or shutil.which("snakefmt")
    assert snakefmt, "snakefmt is part of the test extras; ./run.sh test installs it"
    proc = subprocess.run([snakefmt, "--check", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
