"""Ranged reads and random access to single samples of a shard folder (local and S3)."""

import json
import pickle

import pytest
from prep_helpers import png_bytes, rgb, write
from shard_helpers import shard_dataset

import preprocessing.shard_index as shard_index
from preprocessing.schema import decode_image
from preprocessing.shard_index import ShardSet, scan_tar_members, split_member_name
from preprocessing.shards import ManifestNotFound
from preprocessing.storage import StorageError, open_storage


def make_backgrounds(root, n=5):
    imgs = {}
    for i in range(n):
        imgs[f"bg{i}"] = rgb(12 + i, 20, seed=i)
        write(root / f"bg{i}.png", png_bytes(imgs[f"bg{i}"]))
    return imgs


def check_reads(bank, imgs):
    assert len(bank) == len(imgs)
    for i, name in enumerate(sorted(imgs)):
        key, members = bank.read(i, ("gt.png",))
        assert key == name and (decode_image(members["gt.png"]) == imgs[name]).all()
    key, members = bank.read(0)
    assert sorted(members) == ["gt.png", "json"] and json.loads(members["json"])["key"] == "bg0"


def test_read_range_contract(tmp_path, s3_bucket):
    for st in (open_storage(str(tmp_path), create=True), open_storage(f"s3://{s3_bucket}/p")):
        st.write_bytes("x.bin", bytes(range(100)))
        assert st.read_range("x.bin", 10, 5) == bytes(range(10, 15))
        assert st.read_range("x.bin", 95, 10) == bytes(range(95, 100))  # short only past the end
        assert st.read_range("x.bin", 3, 0) == b""
        with pytest.raises(FileNotFoundError):
            st.read_range("nope.bin", 0, 4)
        with pytest.raises(ValueError, match="bad byte range"):
            st.read_range("x.bin", -1, 4)


def test_local_bank_uses_recorded_offsets(tmp_path):
    imgs = make_backgrounds(tmp_path / "raw")
    shard_dataset(str(tmp_path / "raw"), str(tmp_path / "bg"), "image_folder", {"crop": False}, items_per_shard=2)
    bank = ShardSet(str(tmp_path / "bg"))
    check_reads(bank, imgs)
    assert bank.locate(4) == ("shard-000002.tar", 0)
    assert {t.source for t in bank._tables.values()} == {"part-record"}
    with pytest.raises(IndexError, match="out of range"):
        bank.locate(5)
    # Recorded offsets agree with what a header scan finds.
    st = open_storage(str(tmp_path / "bg"))
    assert scan_tar_members(st, "shard-000000.tar").samples == bank.table("shard-000000.tar").samples
    clone = pickle.loads(pickle.dumps(bank))
    assert clone._shards is None and clone.read(1, ("gt.png",))[0] == "bg1"


def test_old_part_records_fall_back_to_scanning_headers(tmp_path, monkeypatch):
    imgs = make_backgrounds(tmp_path / "raw")
    shard_dataset(str(tmp_path / "raw"), str(tmp_path / "bg"), "image_folder", {"crop": False}, items_per_shard=2)
    parts = sorted((tmp_path / "bg/_parts").glob("*.json"))
    old = json.loads(parts[0].read_text())
    del old["offsets"]  # a record written before offsets were recorded
    parts[0].write_text(json.dumps(old))
    stale = json.loads(parts[1].read_text())
    stale["result"]["sha256"] = "0" * 64  # a record that belongs to another tar
    parts[1].write_text(json.dumps(stale))
    parts[2].unlink()  # no record at all
    bank = ShardSet(str(tmp_path / "bg"))
    check_reads(bank, imgs)
    assert {t.source for t in bank._tables.values()} == {"scan"}
    # The scan reads headers in small ranges, never the whole shard.
    sizes = []
    real = shard_index._RangedFile.read

    def spy(self, n=-1):
        before = self.reads
        out = real(self, n)
        if self.reads != before:
            sizes.append(len(self._buf))
        return out

    monkeypatch.setattr(shard_index._RangedFile, "read", spy)
    table = scan_tar_members(open_storage(str(tmp_path / "bg")), "shard-000000.tar", chunk=1024)
    assert [k for k, _ in table.samples] == ["bg0", "bg1"] and max(sizes) <= 1024


def test_bank_errors_are_one_line(tmp_path):
    with pytest.raises(ManifestNotFound, match="no manifest.json"):
        len(ShardSet(str(tmp_path)))
    write(tmp_path / "manifest.json", json.dumps({"format": "restoray-shards/1", "shards": []}).encode())
    assert len(ShardSet(str(tmp_path))) == 0
    with pytest.raises(IndexError, match="out of range .* \\(0 samples\\)"):
        ShardSet(str(tmp_path)).read(0)
    st = open_storage(str(tmp_path))
    write(tmp_path / "junk.tar", b"x" * 2048)
    with pytest.raises(StorageError, match="junk.tar is not a readable tar"):
        scan_tar_members(st, "junk.tar")
    assert split_member_name("a/k.gt.png") == ("a/k", "gt.png") and split_member_name("k.json") == ("k", "json")


def test_s3_bank_reads_ranges_only(tmp_path, s3_bucket, monkeypatch):
    imgs = make_backgrounds(tmp_path / "raw", n=3)
    dest = f"s3://{s3_bucket}/shards/bg"
    shard_dataset(str(tmp_path / "raw"), dest, "image_folder", {"crop": False}, items_per_shard=2)
    from preprocessing.storage import S3Storage

    whole = []
    real_read = S3Storage.read_bytes
    monkeypatch.setattr(S3Storage, "read_bytes",
                        lambda self, key: whole.append(key) or real_read(self, key))
    check_reads(ShardSet(dest), imgs)
    assert not any(k.endswith(".tar") for k in whole)  # manifest and part records only
    # Fallback on S3 too.
    st = open_storage(dest)
    record = json.loads(st.read_bytes("_parts/shard-000000.json"))
    del record["offsets"]
    st.write_bytes("_parts/shard-000000.json", json.dumps(record).encode())
    bank = ShardSet(dest)
    check_reads(bank, imgs)
    assert bank.table("shard-000000.tar").source == "scan"
