"""The filesystem layer on a local folder and on a real S3 endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import pytest

from infra.core import fs


def _roundtrip(root: str, tmp_path) -> None:
    uri = fs.join(root, "a/b/x.json")
    fs.write_text(uri, "hello")
    assert fs.read_text(uri) == "hello"
    assert fs.is_file(uri) and fs.is_dir(fs.join(root, "a"))
    fs.write_text(fs.join(root, "a/_errors/y.parquet"), "x")
    fs.write_text(fs.join(root, "a/c.warc.gz"), "x")
    assert fs.list_files(fs.join(root, "a")) == [f"{root}/a/b/x.json", f"{root}/a/c.warc.gz"]
    # pages win over side data in a folder; `_` folders are never inputs; globs expand
    assert fs.list_inputs([fs.join(root, "a")]) == [("warc", f"{root}/a/c.warc.gz")]
    assert fs.list_inputs([fs.join(root, "a/*.gz")]) == [("warc", f"{root}/a/c.warc.gz")]
    assert fs.list_inputs([uri]) == [("jsonl", uri)]  # a file named directly is taken
    (tmp_path / "d").mkdir(parents=True)
    (tmp_path / "d" / "f.txt").write_text("1")
    fs.copy_dir(tmp_path / "d", fs.join(root, "copy"))
    assert fs.read_text(fs.join(root, "copy/f.txt")) == "1"
    fs.copy_dir(fs.join(root, "copy"), tmp_path / "back")
    assert (tmp_path / "back" / "f.txt").read_text() == "1"
    fs.delete_dir(fs.join(root, "copy"))
    assert not fs.exists(fs.join(root, "copy/f.txt"))
    with pytest.raises(FileNotFoundError, match="missing"):
        fs.list_inputs([fs.join(root, "missing")])


def test_local_paths_and_file_uris_work_alike(tmp_path):
    _roundtrip(str(tmp_path / "root"), tmp_path / "l")
    _roundtrip(f"file://{tmp_path}/uri", tmp_path / "u")


def test_s3_through_a_real_local_endpoint(s3_server, tmp_path):
    _roundtrip(s3_server, tmp_path)


def test_unsupported_scheme_is_named():
    with pytest.raises(fs.FileSystemError, match="ftp"):
        fs.read_text("ftp://host/x")
