"""The JSONL results store: crash safety (a killed writer leaves no partial record) and the record schema."""

import json
import os
import signal
import subprocess
import sys
import time

from mobileseg.results.record import LatencyRecord, cell_key, validate_record
from mobileseg.results.stats import summarize
from mobileseg.results.store import ResultStore, read_records


def make_record(i: int, n_samples: int = 5) -> LatencyRecord:
    samples = [float(i + k) for k in range(n_samples)]
    key = cell_key("host-x", f"m{i}", (64, 64), "onnx", "onnxruntime", "fp32", "logits", 1)
    return LatencyRecord(
        id=key,
        model=f"m{i}",
        resolution=[64, 64],
        format="onnx",
        runtime="onnxruntime",
        stats_ms=summarize(samples),
        samples_ms=samples,
        timestamp="2026-01-01T00:00:00+00:00",
    )


def test_roundtrip_and_schema(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    for i in range(3):
        store.append(make_record(i))
    recs = store.read()
    assert [r["model"] for r in recs] == ["m0", "m1", "m2"]
    assert all(validate_record(r) == [] for r in recs)
    assert LatencyRecord.from_dict(recs[1]).to_dict() == recs[1]
    assert store.done_keys() == {r["id"] for r in recs}


def test_truncated_last_line_ignored_then_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    store.append(make_record(0))
    full = json.dumps(make_record(1).to_dict())
    with open(path, "a") as f:
        f.write(full[: len(full) // 2])  # what a writer killed mid-line leaves
    assert [r["model"] for r in store.read()] == ["m0"]
    assert any("unterminated" in s for s in store.skipped)
    store.append(make_record(2))
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 2
    assert [r["model"] for r in store.read()] == ["m0", "m2"]
    assert store.skipped == []


def test_a_complete_line_that_happens_to_parse_is_not_taken_from_a_partial_tail(tmp_path):
    # A cut that ends exactly at a closing brace still lacks its newline: it must not count as a record.
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(make_record(0).to_dict()))
    assert ResultStore(path).read() == []


_WRITER = r"""
import sys
sys.path.insert(0, {root!r})
from mobileseg.results.store import ResultStore
from mobileseg.results.record import LatencyRecord
store = ResultStore({path!r})
samples = [0.123456789] * 400000          # ~5 MB per line: a kill lands mid-write often
i = 0
print("ready", flush=True)
while True:
    store.append(LatencyRecord(id=f"k{{i}}", model="m", resolution=[64, 64], format="onnx", runtime="onnxruntime",
                               samples_ms=samples, stats_ms={{"count": len(samples)}}))
    i += 1
"""


def test_killed_writer_leaves_no_partial_record(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = tmp_path / "killed.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(root=root, path=str(path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    # Wait until at least one record is on disk and the file is growing, then kill without warning.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 6_000_000):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ResultStore(path)
    recs = store.read()
    assert recs, "the writer was killed before writing one record"
    assert all(len(r["samples_ms"]) == 400000 for r in recs)  # every kept record is whole
    size_before = path.stat().st_size
    complete_bytes = path.read_bytes().rfind(b"\n") + 1
    store.append(make_record(7))
    after = store.read()
    assert len(after) == len(recs) + 1 and after[-1]["model"] == "m7"
    # the partial tail (if the kill landed mid-line) was cut, not kept in front of the new record
    assert path.stat().st_size == complete_bytes + len(json.dumps(make_record(7).to_dict(), separators=(",", ":"))) + 1
    assert size_before >= complete_bytes


def test_read_records_from_folder_and_missing_file(tmp_path):
    ResultStore(tmp_path / "a.jsonl").append(make_record(0))
    ResultStore(tmp_path / "b.jsonl").append(make_record(1))
    recs, notes = read_records([tmp_path])
    assert sorted(r["model"] for r in recs) == ["m0", "m1"] and notes == []
    import pytest

    from mobileseg.errors import MobilesegError

    with pytest.raises(MobilesegError, match="does not exist"):
        read_records([tmp_path / "nope.jsonl"])
