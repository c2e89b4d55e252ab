import pickle

import pytest

from utils.io_utils import atomic_path, save_pickle


class Unpicklable:
    def __reduce__(self):
        raise OSError("disk full")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "stats.pkl"
    save_pickle({"version": 1}, path)
    with pytest.raises(OSError, match="disk full"):
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
