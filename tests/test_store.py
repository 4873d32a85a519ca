"""The netCDF store: provenance round-trip, CF attributes, atomic writes, clear read errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from daedyn import provenance, store


def small_dataset():
    return xr.Dataset(
        {"u": (("epoch", "mode"), np.arange(6.0).reshape(3, 2), {"long_name": "mode strength", "units": "1"})},
        coords={"epoch": [0, 10, 20], "mode": [0, 1], "lr": ("lr", [0.01])},
    )


def test_provenance_round_trips(tmp_path):
    inputs = tmp_path / "in.bin"
    inputs.write_bytes(b"abc")
    config = {"lr": 0.01, "eps": [0.5, 1.0], "name": "fig5"}
    attrs = provenance.collect(config, rule="train", wildcards={"seed": "3"}, inputs=[inputs], seed=3,
                               device="cpu")
    path = store.write_dataset(small_dataset(), tmp_path / "r.nc", title="t", summary="s",
                               provenance_attrs=attrs)
    back = store.open_dataset(path)
    for key in ("daedyn_version", "git_commit", "git_dirty", "config_sha256", "package_versions",
                "hostname", "device", "seed", "time_started", "time_finished", "snakemake_rule"):
        assert key in back.attrs, key
    assert store.config_of(back) == config
    assert back.attrs["config_sha256"] == provenance.sha256_text(provenance.canonical_json(config))
    assert json.loads(back.attrs["input_sha256"]) == {
        str(inputs): "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}  # sha256("abc")
    assert back.attrs["seed"] == 3
    assert json.loads(back.attrs["snakemake_wildcards"]) == {"seed": "3"}
    assert json.loads(back.attrs["package_versions"])["xarray"] == xr.__version__
    assert back.attrs["Conventions"].startswith("CF-")
    for key in ("title", "history", "source", "references", "date_created"):
        assert back.attrs[key]
    assert back.attrs["git_dirty"] in (0, 1)
    assert "_FillValue" not in back["lr"].encoding  # no fill value on coordinates
    xr.testing.assert_equal(back["u"].reset_coords(drop=True), small_dataset()["u"].reset_coords(drop=True))
    assert back["u"].attrs == {**small_dataset()["u"].attrs, "coverage_content_type": "modelResult"}
    report = provenance.describe(back.attrs)
    assert back.attrs["config_sha256"] in report and "git commit" in report


def test_same_config_same_hash_regardless_of_key_order():
    a = provenance.collect({"a": 1, "b": [1, 2]})
    b = provenance.collect({"b": [1, 2], "a": 1})
    assert a["config_sha256"] == b["config_sha256"]
    assert a["config_sha256"] != provenance.collect({"a": 2, "b": [1, 2]})["config_sha256"]


def test_bad_attribute_type_fails_before_writing(tmp_path):
    ds = small_dataset()
    ds.attrs["bad"] = object()
    with pytest.raises(TypeError, match="'bad'"):
        store.write_dataset(ds, tmp_path / "r.nc", title="t", summary="s", provenance_attrs={})
    assert list(tmp_path.iterdir()) == []


def test_booleans_and_dicts_become_netcdf_safe(tmp_path):
    path = store.write_dataset(small_dataset(), tmp_path / "r.nc", title="t", summary="s",
                               provenance_attrs={"flag": True, "info": {"k": 1}})
    back = store.open_dataset(path)
    assert back.attrs["flag"] == 1 and json.loads(back.attrs["info"]) == {"k": 1}


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "r.nc"

    def crash(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"CDF partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write_dataset(small_dataset(), target, title="t", summary="s", provenance_attrs={})
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "r.nc"
    store.write_dataset(small_dataset(), target, title="old", summary="s", provenance_attrs={})
    monkeypatch.setattr(xr.Dataset, "to_netcdf", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        store.write_dataset(small_dataset(), target, title="new", summary="s", provenance_attrs={})
    assert store.open_dataset(target).attrs["title"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.nc"]


def test_corrupt_file_error_names_file_and_rule(tmp_path):
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(store.ResultFileError, match=r"broken\.nc \(needed by spectrum\).*delete it and rerun"):
        store.open_dataset(bad, needed_by="spectrum")
    with pytest.raises(store.ResultFileError, match="does not exist"):
        store.open_dataset(tmp_path / "missing.nc")


def test_provenance_command(tmp_path, capsys):
    from daedyn.__main__ import main

    attrs = provenance.collect({"lr": 0.5}, rule="train", seed=7)
    path = store.write_dataset(small_dataset(), tmp_path / "r.nc", title="run", summary="s", provenance_attrs=attrs)
    assert main(["provenance", str(path)]) == 0
    out = capsys.readouterr().out
    assert attrs["config_sha256"] in out and "seed: 7" in out and '"lr": 0.5' in out
    assert main(["provenance", str(tmp_path / "nope.nc")]) == 1
    assert "does not exist" in capsys.readouterr().err


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, check=True).stdout


def test_dirty_tree_records_the_hash_of_its_diff(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "m.py").write_text("a = 1\n")
    _git(repo, "add", "m.py")
    _git(repo, "commit", "-q", "-m", "first")
    clean = provenance.git_state(repo)
    assert clean["git_dirty"] == 0 and clean["git_diff_sha256"] == ""

    (repo / "m.py").write_text("a = 2\n")
    first = provenance.git_state(repo)
    assert first["git_dirty"] == 1 and first["git_commit"] == clean["git_commit"]
    assert first["git_diff_sha256"] == hashlib.sha256(_git(repo, "diff", "HEAD", "--binary")).hexdigest()
    (repo / "m.py").write_text("a = 3\n")  # same commit, other edit: told apart
    assert provenance.git_state(repo)["git_diff_sha256"] not in ("", first["git_diff_sha256"])
    assert provenance.git_state(tmp_path)["git_diff_sha256"] == ""  # not a checkout


def test_untracked_files_of_the_package_make_the_code_dirty(tmp_path):
    """A new module that is not yet added runs too: its content is part of the code's hash."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "pkg" / "m.py").write_text("a = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "scratch.txt").write_text("not the package's")  # outside the package: still clean
    assert provenance.git_state(repo / "pkg")["git_dirty"] == 0
    (repo / "pkg" / "new.py").write_text("b = 1\n")
    first = provenance.git_state(repo / "pkg")
    assert first["git_dirty"] == 1 and first["git_diff_sha256"] != ""
    (repo / "pkg" / "new.py").write_text("b = 2\n")
    assert provenance.git_state(repo / "pkg")["git_diff_sha256"] not in ("", first["git_diff_sha256"])


def test_provenance_identifies_package_threads_and_resumption(tmp_path, one_torch_thread):
    import torch

    attrs = provenance.collect({"lr": 0.5}, device="cpu", resumed_from=[500, 1000])
    assert attrs["package_path"] == str(Path(provenance.__file__).resolve().parent)
    assert attrs["torch_threads"] == torch.get_num_threads() == 1
    assert json.loads(attrs["resume_history"]) == [500, 1000]
    assert json.loads(provenance.collect({})["resume_history"]) == []
    assert {"package_path", "resume_history", "git_diff_sha256"} <= set(provenance.VOLATILE_ATTRS)


def test_provenance_command_shows_code_threads_and_resumption(tmp_path, capsys, one_torch_thread):
    from daedyn.__main__ import main

    attrs = {**provenance.collect({"lr": 0.5}, device="cpu", resumed_from=[40]), "git_diff_sha256": "d1ff" * 16}
    path = store.write_dataset(small_dataset(), tmp_path / "r.nc", title="run", summary="s", provenance_attrs=attrs)
    assert main(["provenance", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"package: {provenance.PACKAGE_ROOT}" in out
    assert f"git diff sha256: {'d1ff' * 16}" in out
    assert "torch threads: 1" in out and "resumed from: [40]" in out


def test_job_fails_first_when_it_imports_another_checkout(tmp_path, monkeypatch):
    from daedyn.jobs import JobInfo
    from daedyn.jobs.spectrum import spectrum_job

    monkeypatch.setenv(provenance.WORKFLOW_SOURCE_ENV, str(provenance.PACKAGE_ROOT.parent))
    provenance.check_source()  # the workflow's own sources: fine
    monkeypatch.delenv(provenance.WORKFLOW_SOURCE_ENV)
    provenance.check_source()  # outside a workflow: nothing to compare

    other = tmp_path / "other" / "src"
    monkeypatch.setenv(provenance.WORKFLOW_SOURCE_ENV, str(other))
    with pytest.raises(provenance.ForeignPackageError) as err:
        # the input does not exist either: the check comes first, before any work
        spectrum_job({"n_samples": 1}, str(tmp_path / "missing.nc"), str(tmp_path / "out.nc"), JobInfo(rule="spectrum"))
    message = str(err.value)
    assert f"imports daedyn from {provenance.PACKAGE_ROOT}" in message
    assert f"pip install -e {tmp_path / 'other'}" in message and f"{tmp_path / 'other' / 'run.sh'} pipeline" in message


def test_long_names_are_short_with_the_definition_as_comment_and_files_have_an_acdd_id(tmp_path):
    ds = small_dataset()
    ds["u"].attrs.update(long_name="mode strength: u_i = v_i^T W v_i (W = W2 W1)", comment="float32 training")
    ds["lr"].attrs.update(long_name="learning rate")
    path = store.write_dataset(ds, tmp_path / "results" / "exp" / "runs" / "a" / "seed0.nc", title="t", summary="s",
                               provenance_attrs={"config_sha256": "0123456789abcdef" * 4})
    back = store.open_dataset(path)
    assert back["u"].attrs["long_name"] == "mode strength"
    assert back["u"].attrs["comment"] == "u_i = v_i^T W v_i (W = W2 W1); float32 training"
    assert back["lr"].attrs["long_name"] == "learning rate" and "comment" not in back["lr"].attrs
    assert back.attrs["Conventions"] == "CF-1.11, ACDD-1.3" and back.attrs["naming_authority"] == "daedyn"
    assert back.attrs["id"] == "results/exp/runs/a/seed0.nc:0123456789abcdef" and " " not in back.attrs["id"]
    # written again (a combined file of run files read back): nothing changes
    again = store.open_dataset(store.write_dataset(back, tmp_path / "again.nc", provenance_attrs={}))
    assert again["u"].attrs["long_name"] == "mode strength"
    assert again["u"].attrs["comment"] == back["u"].attrs["comment"]


def test_shared_coordinates_get_a_long_name_and_files_a_licence(tmp_path):
    ds = small_dataset().assign_coords(seed=[7], run=["dae"])
    ds["mode"].attrs["long_name"] = "my own mode label"
    path = store.write_dataset(ds, tmp_path / "r.nc", title="t", summary="s", provenance_attrs={})
    back = store.open_dataset(path)
    for name in ("epoch", "seed", "run"):  # "short name: definition" as long_name and comment
        short, _, definition = store.COORDINATE_LONG_NAMES[name].partition(": ")
        assert (back[name].attrs["long_name"], back[name].attrs["comment"]) == (short, definition)
        assert back[name].attrs["coverage_content_type"] == "coordinate"
    assert back["mode"].attrs["long_name"] == "my own mode label"  # a coordinate's own name wins
    assert "long_name" not in back["lr"].attrs  # not a shared coordinate: its maker must name it
    assert back.attrs["license"] == store.LICENSE and "MIT" in back.attrs["license"]
    assert back.attrs["creator_name"] == "daedyn contributors" and back.attrs["institution"] != "daedyn"
