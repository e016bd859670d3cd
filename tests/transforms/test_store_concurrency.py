"""Several trainers and scorers on one store at once: versions form one chain, readers never see
a torn or missing version, retention keeps the newest ones."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from matchstream.framing import encode_frames

from .conftest import SCORE, SPEC, TRAIN, run_transform


def test_concurrent_trainers_and_scorers(tmp_path: Path, train_lines: list[bytes],
                                         score_lines: list[bytes]) -> None:
    model_dir = tmp_path / "models"
    trainers = 3
    batches = [train_lines[i * 100:(i + 1) * 100] for i in range(trainers)]
    procs = [subprocess.Popen([sys.executable, str(TRAIN), "--model-dir", str(model_dir),
                               "--spec", str(SPEC), "--keep", "2"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(trainers)]
    outputs: list[tuple[bytes, bytes]] = [(b"", b"")] * trainers

    def trainer(i: int) -> None:
        outputs[i] = procs[i].communicate(encode_frames(batches[i]), timeout=300)

    seen_versions: set[str] = set()
    failures: list[str] = []
    stop = threading.Event()

    def scorer() -> None:
        while not stop.is_set():
            result = run_transform(SCORE, f"--model-dir {model_dir} --wait-for-model 120",
                                   encode_frames(score_lines[:50]))
            rows = [line.split("\t") for line in result.stdout.splitlines()]
            if result.code != 0 or len(rows) != 50 or len({r[3] for r in rows}) != 1:
                failures.append(f"code {result.code}: {result.stderr[-300:]}")
            seen_versions.update(r[3] for r in rows)

    feeders = [threading.Thread(target=trainer, args=(i,)) for i in range(trainers)]
    threads = [threading.Thread(target=scorer, daemon=True) for _ in range(2)]
    try:
        for thread in feeders + threads:
            thread.start()
        for thread in feeders:
            thread.join(timeout=300)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert [p.returncode for p in procs] == [0] * trainers, [o[1][-500:] for o in outputs]
    metrics = sorted(int(out.decode().split("\t")[0]) for out, _ in outputs)
    assert metrics == [1, 2, 3]  # one row each, versions unique and consecutive
    assert not failures, failures
    assert seen_versions and seen_versions <= {"1", "2", "3"}
    assert (model_dir / "LATEST").read_text() == "v000003\n"
    assert sorted(p.name for p in (model_dir / "versions").iterdir()) == ["v000002", "v000003"]
    assert not list(model_dir.glob(".tmp-*"))
    meta = json.loads((model_dir / "versions" / "v000003" / "metadata.json").read_text())
    assert meta["parent_version"] == 2 and meta["rows_seen_total"] == 300
