"""Running, resuming and repairing grids on disk; SLURM arrays; failures recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grid_dispatch import (
    SearchSpace,
    StaticPartition,
    load_results,
    run_grid,
    scan_results,
)


def linear(config):
    return {"y": config["a"] * 10.0 + config["b"]}


def small_space():
    return SearchSpace({"a": list(range(10)), "b": list(range(8))})


def rank0_files(out: Path) -> list[Path]:
    return sorted((out / "results" / "rank-00000").glob("batch-*.parquet"))


def test_run_then_load_matches_direct_evaluation(tmp_path):
    space = small_space()
    summary = run_grid(linear, space, tmp_path, batch_size=16, progress=False)
    assert (summary.n_total, summary.n_evaluated, summary.n_failed) == (80, 80, 0)
    df = load_results(tmp_path)
    assert df["config_index"].tolist() == list(range(80))
    np.testing.assert_array_equal(df["y"], df["a"] * 10.0 + df["b"])
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    assert df.attrs["n_missing"] == 0
    assert df["config_hash"].tolist() == space.hashes(np.arange(80)).tolist()
    again = run_grid(linear, space, tmp_path, batch_size=16, progress=False)
    assert (again.n_done_before, again.n_evaluated) == (80, 0)


def test_resume_after_kill_9_in_the_middle_of_a_batch(tmp_path, scripts):
    out, marker = tmp_path / "run", tmp_path / "blocked"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, str(scripts / "killable.py"), str(out), str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "the grid never reached the blocking configuration"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    space = small_space()
    # Batch 40..47 was in flight. Batches before it are written by a background thread,
    # which on a loaded machine may not have flushed all of them: what is on disk must be
    # whole batches from the start, none at or after the blocked one.
    before = scan_results(out, space, owned=set())
    n_before = int(before.done.sum())
    assert n_before % 8 == 0 and n_before <= 40
    assert np.flatnonzero(before.done).tolist() == list(range(n_before))
    # Debris a kill during a write would leave: a temporary file and a half manifest line.
    rank = out / "results" / "rank-00000"
    (rank / ".tmp-deadbeef-batch-000000000040-8-x.parquet").write_bytes(b"PAR1 partial")
    with open(rank / "manifest.jsonl", "a") as fh:
        fh.write('{"file": "batch-0000000000')

    summary = run_grid(linear, space, out, batch_size=8, progress=False, flush_every_s=0.0)
    assert (summary.n_done_before, summary.n_evaluated) == (n_before, 80 - n_before)
    assert not list(rank.glob(".tmp-*"))
    df = load_results(out)  # raises on any duplicated configuration
    assert df["config_index"].tolist() == list(range(80))
    np.testing.assert_array_equal(df["y"], df["a"] * 10.0 + df["b"])


def test_corrupt_and_orphan_files_are_detected_and_redone(tmp_path, caplog):
    space = small_space()
    run_grid(linear, space, tmp_path, batch_size=8, progress=False, flush_every_s=0.0)
    reference = load_results(tmp_path)
    files = rank0_files(tmp_path)
    assert len(files) == 10
    truncated, flipped, orphan, orphan_bad = files[1], files[4], files[6], files[8]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed: only the digest can tell
    flipped.write_bytes(bytes(data))
    bad = orphan_bad.read_bytes()
    orphan_bad.write_bytes(bad[:-10])
    manifest = tmp_path / "results" / "rank-00000" / "manifest.jsonl"
    lines = [
        line
        for line in manifest.read_text().splitlines()
        if json.loads(line)["file"] not in (orphan.name, orphan_bad.name)
    ]
    manifest.write_text("\n".join(lines) + "\n")

    with pytest.raises(ValueError, match="3 corrupt batch files"):
        load_results(tmp_path)
    partial = load_results(tmp_path, on_corrupt="skip")
    assert len(partial) == 56 and partial.attrs["n_missing"] == 24

    summary = run_grid(linear, space, tmp_path, batch_size=8, progress=False)
    assert sorted(summary.quarantined) == sorted([truncated.name, flipped.name, orphan_bad.name])
    assert summary.adopted == (orphan.name,)
    assert (summary.n_done_before, summary.n_evaluated) == (56, 24)
    assert "event=corrupt_file" in caplog.text
    assert len(list((tmp_path / "quarantine").iterdir())) == 3
    pd.testing.assert_frame_equal(
        load_results(tmp_path).drop(columns="error"), reference.drop(columns="error")
    )
    assert (tmp_path / "quarantine").exists()
    # The adopted file now has a manifest line: the next scan reads no file in full.
    assert orphan.name in manifest.read_text()


def test_failures_are_recorded_in_the_table(tmp_path):
    space = SearchSpace({"x": [0.0, 1.0, 2.0, 3.0]})

    def fragile(config):
        if config["x"] == 2.0:
            raise ArithmeticError("no convergence")
        return {"inv": 1.0 / config["x"] if config["x"] else float("inf")}

    summary = run_grid(fragile, space, tmp_path, mode="loop", progress=False)
    assert summary.n_failed == 2
    df = load_results(tmp_path)
    assert df["status"].tolist() == ["nonfinite", "ok", "error", "ok"]
    assert df.loc[2, "error"].startswith("ArithmeticError: no convergence")
    assert df.loc[0, "error"] == "non-finite values in inv"
    assert np.isnan(df.loc[2, "inv"]) and np.isinf(df.loc[0, "inv"])
    again = run_grid(fragile, space, tmp_path, mode="loop", progress=False)
    assert again.n_evaluated == 0  # failures are results: not re-run, not dropped


def test_slurm_array_matches_single_process(tmp_path, scripts):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_MAX": "2",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(scripts / "grid_job.py"),
                str(tmp_path / "array"),
                "auto",
                "static",
            ],
            env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for task in range(3)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sorted(o.split()[0] for o in outputs) == [f"process={i}/3" for i in range(3)]
    assert all("backend=slurm" in o for o in outputs)
    single = _single_reference(tmp_path / "single", scripts)
    space = _grid_job_space(scripts).reference_space()
    pd.testing.assert_frame_equal(load_results(tmp_path / "array", space), single, check_exact=True)


def _grid_job_space(scripts):
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid_job", scripts / "grid_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _single_reference(out, scripts) -> pd.DataFrame:
    module = _grid_job_space(scripts)
    space = module.reference_space()
    run_grid(module.objective, space, out, batch_size=16, backend="single", progress=False)
    df = load_results(out, space)
    assert (df["status"] == "nonfinite").sum() == 9  # x = 1.0: 5 k x 2 models - (5, "b")
    return df


def test_bad_run_arguments(tmp_path):
    space = small_space()
    with pytest.raises(ValueError, match="larger than the grid size"):
        run_grid(linear, space, tmp_path / "a", backend=StaticPartition(0, 81), progress=False)
    with pytest.raises(ValueError, match="balance='dynamic' needs"):
        run_grid(linear, space, tmp_path / "b", backend=StaticPartition(0, 2), balance="dynamic")
    with pytest.raises(ValueError, match="balance must be"):
        run_grid(linear, space, tmp_path / "c", balance="greedy")
    with pytest.raises(ValueError, match="rows_per_file"):
        run_grid(linear, space, tmp_path / "c", rows_per_file=0)
    with pytest.raises(ValueError, match="SearchSpace"):
        run_grid(linear, {"a": [1]}, tmp_path / "c")
    run_grid(linear, space, tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="different search space"):
        run_grid(linear, SearchSpace({"a": [1, 2]}), tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="not a grid-dispatch run folder"):
        load_results(tmp_path / "nowhere")


def test_quiet_mode_logs_structured_lines(tmp_path, caplog, capsys):
    caplog.set_level("INFO", logger="grid_dispatch")
    run_grid(linear, small_space(), tmp_path, quiet=True, log_every_s=0.0, batch_size=8)
    events = [r.getMessage() for r in caplog.records if r.name == "grid_dispatch"]
    assert events[0].startswith("event=start process=0 processes=1 backend=single")
    assert any(e.startswith("event=progress") and "eta_s=" in e for e in events)
    assert events[-1].startswith("event=finish") and "done=80 total=80" in events[-1]
    assert capsys.readouterr().err == ""


def test_progress_bar_reports_throughput_and_eta(tmp_path, capsys):
    run_grid(linear, small_space(), tmp_path, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "80/80" in err and "cfg/s" in err and "ETA" in err
