"""Lock files and atomic writes never write through a planted symlink or hard link, and results get
the mode the umask asks for (issue 18, class 5); small inputs are read as regular files (class 2)."""
import os
import stat
import subprocess
import sys

import pytest

from segnext_jt import files
from segnext_jt.files import (UnsafeLockError, atomic_file, lock_holder, read_regular_file, try_lock, unlock,
                                 write_json_atomic, write_text_atomic)


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    os.chmod(path, 0o644)
    return path




# ---------------------------------------------------------------------------------------- locks
def test_a_lock_of_our_own_is_taken_and_holds_our_pid(tmp_path):
    path = str(tmp_path / ".lock")
    fd = try_lock(path)
    assert fd is not None and lock_holder(path) == f"pid {os.getpid()}"
    code = f"from segnext_jt.files import try_lock; print(try_lock({path!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd())).stdout
    assert out.strip() == "None"  # held by us
    unlock(fd)
    fd = try_lock(path)  # an old lock file of ours is reused and rewritten
    assert fd is not None
    unlock(fd)


@pytest.mark.parametrize("plant", ["symlink", "symlink to a missing file", "symlink to a directory",
                                   "hard link", "fifo", "directory", "relative symlink"])
def test_planted_lock_files_are_refused_and_nothing_written(tmp_path, victim, alarm, plant):
    lock = tmp_path / "work" / ".lock"
    lock.parent.mkdir()
    target_missing = tmp_path / "would_be_created.txt"
    if plant == "symlink":
        lock.symlink_to(victim)
    elif plant == "relative symlink":
        lock.symlink_to(os.path.join("..", victim.name))
    elif plant == "symlink to a missing file":
        lock.symlink_to(target_missing)
    elif plant == "symlink to a directory":
        lock.symlink_to(tmp_path)
    elif plant == "hard link":
        os.link(victim, lock)
    elif plant == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    with pytest.raises(UnsafeLockError) as info:
        try_lock(str(lock))
    msg = str(info.value)
    assert "\n" not in msg and str(lock) in msg and len(msg) < 400
    assert victim.read_text() == "precious\n" and not target_missing.exists()
    assert lock_holder(str(lock)) == "another process"  # never reads through the link either


def test_seed_sweep_locks_refuse_a_planted_symlink(tmp_path, victim):
    from segnext_jt.repro.sweep.seed_sweep import held_lock
    from segnext_jt.repro.sweep.launch import busy_reason
    seed_dir = tmp_path / "seed_0"
    seed_dir.mkdir()
    (seed_dir / ".lock").symlink_to(victim)
    (seed_dir / ".sweep.lock").symlink_to(victim)
    with pytest.raises(ValueError, match="symlink"):
        with held_lock(str(seed_dir / ".lock"), " busy"):
            pass
    with pytest.raises(ValueError, match="symlink"):
        busy_reason(str(seed_dir), 0)
    assert victim.read_text() == "precious\n"


# ---------------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o000])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
        write_text_atomic(tmp_path / "sub" / "r.md", "x")
        with atomic_file(tmp_path / "r.bin", "wb") as f:
            f.write(b"x")
        assert files.current_umask() == umask
    finally:
        os.umask(old)
    for name in ("r.json", "sub/r.md", "r.bin"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_umask_in_a_fresh_process_and_results_group_readable(tmp_path):
    code = ("import os; from segnext_jt.files import write_json_atomic; "
            f"write_json_atomic({str(tmp_path / 'a.json')!r}, 1)")
    subprocess.run(["sh", "-c", f"umask 002 && exec {sys.executable} -c \"{code}\""], check=True,
                   env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o664


def test_current_umask_without_proc(monkeypatch):
    real_open = open

    def no_proc(path, *a, **kw):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *a, **kw)
    monkeypatch.setattr(files, "open", no_proc, raising=False)
    monkeypatch.setattr(files, "_UMASK_FALLBACK", None)
    old = os.umask(0o027)
    try:
        assert files.current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # the probe put the umask back
    finally:
        os.umask(old)


def test_atomic_write_replaces_a_planted_symlink_not_its_target(tmp_path, victim):
    out = tmp_path / "result.json"
    out.symlink_to(victim)
    write_json_atomic(out, {"x": 1})
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and out.read_text().strip() == '{\n "x": 1\n}'


def test_atomic_temporaries_are_created_exclusively(tmp_path, victim, monkeypatch):
    """A symlink planted at the temporary name the writer picks is never written through."""
    import tempfile
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    (tmp_path / ".out.txt.planted.tmp").symlink_to(victim)
    write_text_atomic(tmp_path / "out.txt", "new")
    assert victim.read_text() == "precious\n" and (tmp_path / "out.txt").read_text() == "new"


# ------------------------------------------------------------------------------ regular-file reads
def test_read_regular_file(tmp_path, alarm):
    path = tmp_path / "a.txt"
    path.write_bytes(b"12345")
    assert read_regular_file(path, 5) == b"12345"
    with pytest.raises(ValueError, match="larger than 4 bytes"):
        read_regular_file(path, 4)
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(KeyError, match="FIFO"):
        read_regular_file(fifo, 10, KeyError)


def test_read_regular_file_rechecks_after_open(tmp_path, alarm, monkeypatch):
    """A FIFO swapped in between the stat and the open does not block the reader."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    regular = tmp_path / "regular.txt"
    regular.write_text("x")
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular) if str(p) == str(fifo) else
                        real_stat(p, *a, **k))
    with pytest.raises(ValueError, match="FIFO"):
        read_regular_file(fifo, 10)
