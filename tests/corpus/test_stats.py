"""Stage counters sum across partitions and refuse counts that do not add up."""

from __future__ import annotations

import pytest

from infra.core.manifest import AccountingError, StageStats, build_manifest, read_manifest, write_manifest


def test_partition_counters_sum_and_check():
    a = StageStats(input=5, kept=3)
    a.drop("short_doc")
    a.error("timeout")
    b = StageStats(input=4, kept=2, duplicates=1)
    b.drop("short_doc")
    total = a + b
    total.check()
    assert total.to_dict()["filtered"] == {"short_doc": 2}
    assert StageStats.from_dict(total.to_dict()).to_dict() == total.to_dict()


def test_lost_record_is_an_accounting_error_and_no_manifest_is_built():
    stats = StageStats(input=3, kept=1)
    stats.drop("not_ecommerce")
    with pytest.raises(AccountingError, match="input 3"):
        build_manifest("filter", stats)


def test_manifest_round_trip_and_missing_manifest_message(tmp_path):
    write_manifest(tmp_path, build_manifest("dedup", StageStats(input=2, kept=1, duplicates=1), inputs=["a"]))
    manifest = read_manifest(tmp_path)
    assert manifest["counts"]["duplicates"] == 1 and manifest["versions"]["python"]
    with pytest.raises(FileNotFoundError, match="did not finish"):
        read_manifest(tmp_path / "nothing")
