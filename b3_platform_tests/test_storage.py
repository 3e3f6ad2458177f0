"""Lake storage: which root opens which storage (a local folder, s3://bucket/prefix), and the local
folder's keys, round trip and atomic writes."""

from __future__ import annotations

import os

import pytest

from b3_platform.lake import storage
from b3_platform.lake.storage import TEMP_PREFIX, LocalStorage, StorageError, open_storage
from b3_platform.resources import LakeResource


def test_s3_root_opens_s3_storage_with_region_and_endpoint():
    from b3_platform.lake.s3_storage import S3Storage

    storage = LakeResource(
        root="s3://bucket/some/prefix/", region="sa-east-1", endpoint_url="http://127.0.0.1:9"
    ).storage()
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.region) == ("bucket", "some/prefix", "sa-east-1")
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert storage.uri("silver/assets/") == "s3://bucket/some/prefix/silver/assets/"
    with pytest.raises(StorageError, match="no bucket"):
        open_storage("s3:///prefix")


def test_other_url_schemes_are_refused():
    with pytest.raises(StorageError, match="expected a local folder"):
        open_storage("gs://bucket/prefix")


def test_relative_root_is_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_storage("data").uri() == str(tmp_path.resolve() / "data")


@pytest.mark.parametrize("key", ["../outside.json", "raw/../../outside.json", "a/../b", "/etc/passwd"])
def test_local_storage_refuses_escaping_keys(tmp_path, key):
    store = LocalStorage(tmp_path / "lake")
    for op in (
        lambda: store.write_bytes(key, b"x"),
        lambda: store.read_bytes(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(StorageError, match="invalid lake key"):
            op()
    assert not (tmp_path / "outside.json").exists()


def test_local_storage_round_trip(tmp_path):
    store = LocalStorage(tmp_path / "lake")
    store.write_bytes("a/b/c.json", b"one")
    store.write_bytes("a/d.json", b"two")
    assert store.read_bytes("a/b/c.json") == b"one"
    assert store.exists("a/d.json") and not store.exists("a/b")
    assert store.list_keys("a/") == ["a/b/c.json", "a/d.json"]
    assert store.list_keys("a/b") == ["a/b/c.json"]
    assert store.list_keys("") == ["a/b/c.json", "a/d.json"]
    assert store.list_keys("missing/") == []
    assert store.has_keys("a/") and store.has_keys("a/b") and not store.has_keys("missing/")
    store.write_bytes("top.json", b"three")  # a key at the root has no folder part
    assert store.list_keys("") == ["a/b/c.json", "a/d.json", "top.json"]
    store.delete("top.json")
    (tmp_path / "lake" / "e").mkdir()
    (tmp_path / "lake" / "e" / f"{TEMP_PREFIX}x.partial").write_bytes(b"half")
    assert not store.has_keys("e/")  # a temp file is not a key
    store.delete("a/d.json")
    store.delete("a/d.json")  # idempotent
    assert store.list_keys("a/") == ["a/b/c.json"]
    with pytest.raises(StorageError, match="does not exist"):
        store.read_bytes("a/d.json")


def test_write_bytes_is_atomic(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "lake")
    store.write_bytes("t/x.json", b"old")

    def crash(src, dst):
        raise OSError("disk gone mid-rename")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.write_bytes("t/x.json", b"new")
    monkeypatch.undo()

    assert store.read_bytes("t/x.json") == b"old"
    assert sorted(os.listdir(tmp_path / "lake" / "t")) == ["x.json"]
    assert not any(name.startswith(".tmp-") for name in os.listdir(tmp_path / "lake" / "t"))


def test_write_bytes_replaces_whole_file(tmp_path):
    store = LocalStorage(tmp_path / "lake")
    store.write_bytes("t/x.json", b"a much longer first version")
    store.write_bytes("t/x.json", b"short")
    assert store.read_bytes("t/x.json") == b"short"
    assert os.listdir(tmp_path / "lake" / "t") == ["x.json"]


def test_list_keys_never_lists_temp_files(tmp_path):
    store = LocalStorage(tmp_path / "lake")
    store.write_bytes("raw/date=2025-07-10/index=IBOV/a.json", b"{}")
    folder = tmp_path / "lake" / "raw" / "date=2025-07-10" / "index=IBOV"
    (folder / f"{storage.TEMP_PREFIX}abc-b.json.partial").write_bytes(b"half")
    assert store.list_keys("raw/") == ["raw/date=2025-07-10/index=IBOV/a.json"]
    assert store.list_keys("") == ["raw/date=2025-07-10/index=IBOV/a.json"]


def test_list_keys_lists_what_os_walk_lists_and_skips_a_symlinked_folder(tmp_path):
    """list_keys walks folders with one scandir each (not os.walk, for speed): the same keys as an
    os.walk of the tree, deep and shallow, a symlinked folder listed as neither key nor folder to
    descend (os.walk's default), a symlinked file listed as a key."""
    store = LocalStorage(tmp_path / "lake")
    for key in (
        "raw/m/date=2025-07-10/index=IBOV/a.json",
        "raw/m/date=2025-07-10/index=IBOV/a.meta.json",
        "raw/m/date=2025-07-11/index=SMLL/b.json",
        "raw/top.json",
        "gold/x/data.parquet",
    ):
        store.write_bytes(key, b"{}")
    (tmp_path / "lake" / "raw" / "linked").symlink_to(tmp_path / "lake" / "gold", target_is_directory=True)
    (tmp_path / "lake" / "raw" / "file-link.json").symlink_to(tmp_path / "lake" / "raw" / "top.json")
    (tmp_path / "lake" / "raw" / "empty").mkdir()
    root = str(tmp_path / "lake")

    def walked(prefix: str) -> list[str]:
        found = []
        for dirpath, _dirs, files in os.walk(os.path.join(root, prefix)):
            found += [os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/") for f in files]
        return sorted(found)

    assert (
        store.list_keys("raw/")
        == walked("raw")
        == [
            "raw/file-link.json",
            "raw/m/date=2025-07-10/index=IBOV/a.json",
            "raw/m/date=2025-07-10/index=IBOV/a.meta.json",
            "raw/m/date=2025-07-11/index=SMLL/b.json",
            "raw/top.json",
        ]
    )
    assert store.list_keys("") == walked("")
    assert store.list_keys("raw/m/date=2025-07-11") == ["raw/m/date=2025-07-11/index=SMLL/b.json"]
