"""Safe files: the database, its WAL, the packets and the key are this user's alone (0600 in
0700 folders); an empty key file is refused, not silently replaced each start; a packet
write that fails leaves nothing behind, and no packet key names a folder or a dot."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path

import pytest

from trigger_do.api.keys import load_or_create_key
from trigger_do.errors import StorageUnavailableError, TriggerDoError
from trigger_do.platform.local.platform import FileBlobs, open_local


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> object:
    old = os.umask(0o022)  # the common default: what made files 0644 before
    yield None
    os.umask(old)


def test_the_database_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "home" / ".trigger-do" / "trigger.db"
    _, sql = open_local(db)
    sql.exec("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
    sql.exec("INSERT INTO probe VALUES (1)")
    made = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    assert all(p.exists() for p in made)
    assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}
    assert mode(db.parent) == 0o700
    sql.close()


def test_packets_are_private_and_writes_leave_no_temporary_file(tmp_path: Path) -> None:
    blobs = FileBlobs(tmp_path / "packets")
    asyncio.run(blobs.put("uploads/abc/deep/payload.json", b'{"a": 1}'))
    root = tmp_path / "packets"
    files = [p for p in root.rglob("*") if p.is_file()]
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    assert [p.name for p in files] == ["payload.json"] and mode(files[0]) == 0o600
    assert {mode(f) for f in folders} == {0o700}
    assert asyncio.run(blobs.get("uploads/abc/deep/payload.json")) == b'{"a": 1}'
    asyncio.run(blobs.delete("uploads/abc/deep/payload.json"))
    assert list(root.iterdir()) == []  # emptied folders go too


@pytest.mark.parametrize("key", ["", ".", "a/.", "a/./b", "a/../b", "../x", "a//b", "a/", "/abs"])
def test_blob_keys_never_name_a_dot_or_a_folder(tmp_path: Path, key: str) -> None:
    blobs = FileBlobs(tmp_path / "packets")
    with pytest.raises(ValueError):
        asyncio.run(blobs.put(key, b"x"))
    with pytest.raises(ValueError):
        asyncio.run(blobs.get(key))
    assert not (tmp_path / "packets").exists() or not any((tmp_path / "packets").rglob("*"))


def test_a_key_naming_a_folder_or_through_a_file_is_refused_cleanly(tmp_path: Path) -> None:
    blobs = FileBlobs(tmp_path / "packets")
    asyncio.run(blobs.put("a/b/c", b"1"))
    before = sorted(str(p) for p in (tmp_path / "packets").rglob("*"))
    with pytest.raises(ValueError):
        asyncio.run(blobs.put("a/b", b"2"))  # a folder
    with pytest.raises(ValueError):
        asyncio.run(blobs.put("a/b/c/d", b"3"))  # through a file
    assert asyncio.run(blobs.get("a/b")) is None
    assert asyncio.run(blobs.get("a/b/c/d")) is None
    asyncio.run(blobs.delete("a/b"))  # a folder: nothing to delete, no error
    assert sorted(str(p) for p in (tmp_path / "packets").rglob("*")) == before


def test_a_failed_write_leaves_nothing_and_a_full_disk_is_storage_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = FileBlobs(tmp_path / "packets")
    asyncio.run(blobs.put("p/old", b"old"))

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageUnavailableError):
        asyncio.run(blobs.put("p/new", b"new"))
    with pytest.raises(StorageUnavailableError):
        asyncio.run(blobs.put("p/old", b"overwritten"))
    monkeypatch.undo()
    names = sorted(p.name for p in (tmp_path / "packets" / "p").iterdir())
    assert names == ["old"] and asyncio.run(blobs.get("p/old")) == b"old"


def test_the_generated_key_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    db = tmp_path / "new" / "trigger.db"
    key = load_or_create_key(db)
    assert mode(db.parent / "secret-key") == 0o600 and mode(db.parent) == 0o700
    assert load_or_create_key(db) == key


@pytest.mark.parametrize("content", ["", "\n", "   \n\t"])
def test_an_empty_key_file_is_refused_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    db = tmp_path / "trigger.db"
    (tmp_path / "secret-key").write_text(content)
    for _ in range(2):
        with pytest.raises(TriggerDoError, match=r"secret key file .* is empty"):
            load_or_create_key(db)
    assert (tmp_path / "secret-key").read_text() == content  # left for the user to fix
    monkeypatch.setenv("TRIGGER_SECRET_KEY", "tr_dev_fromenv")
    assert load_or_create_key(db) == "tr_dev_fromenv"  # the environment still wins
