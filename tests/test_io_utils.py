import json
import os
import pickle
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from utils.errors import InputError
from utils.io_utils import atomic_path, save_json, save_pickle


class Unpicklable:
    def __reduce__(self):
        raise OSError("disk full")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "stats.pkl"
    save_pickle({"version": 1}, path)
    with pytest.raises(InputError, match=r"stats.pkl: cannot be written \(disk full\)"):  # one error line
        save_pickle({"version": 2, "payload": Unpicklable()}, path)
    with open(path, "rb") as f:
        assert pickle.load(f) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["stats.pkl"]


def test_atomic_path_renames_only_on_success(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("done")
        assert not path.exists()
    assert path.read_text() == "done"


def test_a_write_is_flushed_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    path = tmp_path / "model_epoch_1.pt"
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"weights")
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / ".model_epoch_1.pt.")) and events[0][1].endswith(".tmp")
    assert events[1][1] == str(path) and events[2][1] == str(tmp_path)


def test_new_files_follow_the_umask_without_changing_it(tmp_path, monkeypatch):
    previous = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda *_: pytest.fail("atomic_path must not touch the umask"))
        save_pickle([1], tmp_path / "a.pkl")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.pkl").stat().st_mode) == 0o640


def test_threads_writing_the_same_file_never_collide(tmp_path):
    path = tmp_path / "summary.json"
    payloads = [{"writer": k, "data": list(range(2000))} for k in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda obj: [save_json(obj, path) for _ in range(10)], payloads))
    assert json.loads(path.read_text()) in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
