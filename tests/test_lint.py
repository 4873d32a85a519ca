"""The workflow passes Snakemake's linter (but for one deliberate lint) and snakefmt, as docs/operations.md says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import REPO


#: The one lint left on purpose: the rules name no conda environment, because the pinned venv of
#: run.sh is the supported way to run them (docs/operations.md, "Deployment").
NO_CONDA = "Specify a conda environment or container for each rule."


def test_snakemake_lint_reports_nothing_but_the_missing_conda_environments():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--workflow-profile", "none"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    lints = re.findall(r"^\s+\* (.+):$", output, re.M)
    assert lints and set(lints) == {NO_CONDA}, output
    assert len(re.findall(r"^Lints for ", output, re.M)) == len(lints)  # none for the Snakefile as a whole


def test_snakefmt_check():
    snakefmt = shutil.which("snakefmt", path=str(REPO / ".venv" / "bin")) or shutil.which("snakefmt")
    assert snakefmt, "snakefmt is part of the test extras; ./run.sh test installs it"
    proc = subprocess.run([snakefmt, "--check", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
