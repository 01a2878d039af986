"""Storage layout, reachability checks, atomic writes and listing (local and a real S3 API);
the settings: tests/test_settings.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from ocr_core.storage import Storage, StorageError

# --- layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("root", ["s3://bucket/prefix", "/data/ocr"])
def test_layout_production_is_versioned(root):
    s = Storage(root=root, environment="production", version="1.2.3")
    ns = "production/v1.2.3"
    assert s.icechunk_uri == f"{root}/output/fire-risk/tensor/{ns}/ocr.icechunk"
    assert s.region_geoparquet_uri("y5_x14") == (
        f"{root}/intermediate/fire-risk/vector/{ns}/geoparquet-regions/y5_x14.parquet"
    )
    assert s.summary_stats_dir == f"{root}/intermediate/fire-risk/vector/{ns}/region-summary-stats"
    assert s.geoparquet_dir == f"{root}/output/fire-risk/vector/{ns}/geoparquet"
    assert s.region_analysis_dir == f"{root}/output/fire-risk/vector/{ns}/region-analysis"
    assert s.pmtiles_dir == f"{root}/output/fire-risk/vector/{ns}/pmtiles"
    assert s.pyramid_uri == f"{root}/output/fire-risk/pyramid/{ns}/pyramid.zarr"


@pytest.mark.parametrize("environment", ["qa", "staging"])
def test_layout_unversioned_environments(environment):
    root = "s3://bucket"
    s = Storage(root=root + "/", environment=environment)
    assert s.icechunk_uri == f"{root}/output/fire-risk/tensor/{environment}/ocr.icechunk"
    assert s.region_geoparquet_uri("y5_x14") == (
        f"{root}/intermediate/fire-risk/vector/{environment}/geoparquet-regions/y5_x14.parquet"
    )
    assert s.pmtiles_dir == f"{root}/output/fire-risk/vector/{environment}/pmtiles"
    assert s.pyramid_uri == f"{root}/output/fire-risk/pyramid/{environment}/pyramid.zarr"


def _outputs(s: Storage) -> list[str]:
    return [
        s.icechunk_uri,
        s.region_geoparquet_dir,
        s.summary_stats_dir,
        s.geoparquet_dir,
        s.region_analysis_dir,
        s.pmtiles_dir,
        s.pyramid_uri,
    ]


def test_no_two_outputs_share_or_nest_a_path():
    namespaces = [
        Storage("s3://b", "qa"),
        Storage("s3://b", "staging"),
        Storage("s3://b", "production", "1.2.3"),
        Storage("s3://b", "production", "1.2.4"),
    ]
    paths = [p for s in namespaces for p in _outputs(s)]
    assert len(set(paths)) == len(paths) == 28
    for a in paths:
        for b in paths:
            if a != b:
                assert not b.startswith(a + "/"), f"{b} lies inside {a}"


# --- reachability ----------------------------------------------------------------------------


def test_check_reachable_local_writable(tmp_path):
    root = tmp_path / "new" / "root"
    Storage(str(root)).check_reachable()
    assert root.is_dir()
    assert list(root.iterdir()) == []  # the write probe is removed


def test_check_reachable_local_unwritable_names_root(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = str(blocker / "root")
    with pytest.raises(StorageError, match="cannot be written") as err:
        Storage(root).check_reachable()
    assert root in str(err.value)
    assert "OCR_STORAGE_ROOT" in str(err.value)


def test_check_reachable_root_that_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError) as err:
        Storage(str(blocker), variable="OCR_INPUT_ROOT").check_reachable(writable=False)
    message = str(err.value)
    assert message == (
        f"OCR_INPUT_ROOT={str(blocker)!r} is a file, not a folder: point OCR_INPUT_ROOT at a "
        "folder or an s3:// URL"
    )
    assert blocker.read_text() == "not a folder"


def test_check_reachable_existing_unwritable_folder():
    # /sys is a folder nobody may create files in, root included (tests may run as root)
    with pytest.raises(StorageError, match="cannot be written") as err:
        Storage("/sys").check_reachable()
    assert str(err.value).startswith("OCR_STORAGE_ROOT='/sys' cannot be written (")
    assert "\n" not in str(err.value)
    Storage("/sys").check_reachable(writable=False)  # readable inputs need no write access


def test_storage_variable_is_a_label_not_part_of_the_location():
    import pickle

    inputs = Storage("/data/ocr", variable="OCR_INPUT_ROOT")
    assert inputs == Storage("/data/ocr") and pickle.loads(pickle.dumps(inputs)).variable == (
        "OCR_INPUT_ROOT"
    )


def test_resources_check_their_roots_before_any_step(tmp_path):
    import dagster as dg

    from ocr_assets.follow import failure_lines
    from ocr_resources import InputCatalogResource, StorageResource

    calls = []

    @dg.asset(required_resource_keys={"storage", "catalog"})
    def uses_roots() -> None:
        calls.append(1)

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for resources, expected in [
        (
            {"storage": StorageResource(root=str(blocker))},
            f"OCR_STORAGE_ROOT={str(blocker)!r} is a file",
        ),
        (
            {"storage": StorageResource(root="/sys")},
            "OCR_STORAGE_ROOT='/sys' cannot be written",
        ),
        (
            {"catalog": InputCatalogResource(root=str(blocker))},
            f"OCR_INPUT_ROOT={str(blocker)!r} is a file",
        ),
    ]:
        resources = {
            "storage": StorageResource(root=str(tmp_path / "out")),
            "catalog": InputCatalogResource(root=str(tmp_path)),
            **resources,
        }
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [uses_roots], resources=resources, instance=instance, raise_on_error=False
            )
            assert not result.success
            # what the command line prints for the run: one line, the variable's message
            (line,) = failure_lines(instance, result.run_id)
        assert line.startswith(f"uses_roots: ocr_core.storage.StorageError: {expected}"), line
    assert calls == []


def test_check_reachable_missing_bucket(s3_server):
    root = "s3://ocr-no-such-bucket/prefix"
    storage = Storage(root, s3_endpoint_url=s3_server, s3_region="us-east-1")
    with pytest.raises(StorageError, match="cannot be reached") as err:
        storage.check_reachable()
    assert root in str(err.value)


def test_check_reachable_bucket(s3_server, s3_bucket):
    Storage(s3_bucket, s3_endpoint_url=s3_server, s3_region="us-east-1").check_reachable()


# --- atomic writes ---------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, monkeypatch):
    """A Storage on a local folder or a moto bucket; scratch files go to a watched temp dir."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    if request.param == "local":
        return Storage(str(tmp_path / "root"))
    endpoint = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return Storage(bucket, s3_endpoint_url=endpoint, s3_region="us-east-1")


def _files_under(storage: Storage, uri: str) -> list[str]:
    """Every file below ``uri`` (hidden temp files included), relative to it."""
    fs = storage.filesystem()
    base = storage.fs_path(uri).rstrip("/")
    if not fs.exists(base):
        return []
    return sorted(p[len(base) + 1 :] for p in fs.find(base))


def _scratch_is_empty() -> bool:
    """No file left in local scratch (the stage area's empty folders may stay)."""
    return not any(p.is_file() for p in Path(tempfile.gettempdir()).rglob("*"))


def test_atomic_file_replaces_whole(storage):
    uri = storage.join("out/stats.csv")
    storage.write_bytes_atomic(uri, b"old")
    with storage.atomic_local_file(uri, suffix=".csv") as path:
        assert path.suffix == ".csv"
        path.write_bytes(b"new, longer content")
        assert storage.read_bytes(uri) == b"old"  # nothing visible before the block ends
    assert storage.read_bytes(uri) == b"new, longer content"
    assert _files_under(storage, storage.join("out")) == ["stats.csv"]
    assert _scratch_is_empty()


def test_atomic_file_error_keeps_previous(storage):
    uri = storage.join("out/stats.csv")
    storage.write_bytes_atomic(uri, b"old")
    with pytest.raises(RuntimeError, match="boom"), storage.atomic_local_file(uri) as path:
        path.write_bytes(b"half")
        raise RuntimeError("boom")
    assert storage.read_bytes(uri) == b"old"
    assert _files_under(storage, storage.join("out")) == ["stats.csv"]
    assert _scratch_is_empty()


def test_atomic_file_error_on_first_write_creates_nothing(storage):
    uri = storage.join("out/stats.csv")
    with pytest.raises(RuntimeError), storage.atomic_local_file(uri) as path:
        path.write_bytes(b"half")
        raise RuntimeError("boom")
    assert not storage.exists(uri)
    assert _files_under(storage, storage.join("out")) == []


def _write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _published(storage, uri: str) -> list[str]:
    """The files a reader of the folder dataset ``uri`` sees now."""
    return _files_under(storage, storage.current_dir(uri))


def _kept_versions(storage, uri: str) -> int:
    """How many versions an S3 folder dataset keeps (the current and the previous one)."""
    return len({f.split("/", 1)[0] for f in _files_under(storage, uri) if f != "CURRENT"})


def test_atomic_dir_replaces_whole_and_drops_stale_files(storage):
    uri = storage.join("out/pmtiles")
    with storage.atomic_local_dir(uri) as folder:
        _write_tree(folder, {"a.pmtiles": b"a1", "b.pmtiles": b"b1", "sub/c.json": b"c1"})
    assert _published(storage, uri) == ["a.pmtiles", "b.pmtiles", "sub/c.json"]

    with storage.atomic_local_dir(uri) as folder:
        _write_tree(folder, {"a.pmtiles": b"a2", "sub/d.json": b"d2"})
        assert storage.read_bytes(f"{storage.current_dir(uri)}/b.pmtiles") == b"b1"
    assert _published(storage, uri) == ["a.pmtiles", "sub/d.json"]
    assert storage.read_bytes(f"{storage.current_dir(uri)}/a.pmtiles") == b"a2"
    if storage.is_s3:
        with storage.atomic_local_dir(uri) as folder:
            _write_tree(folder, {"a.pmtiles": b"a3"})
        assert _kept_versions(storage, uri) == 2  # the oldest version was removed
    else:
        assert _files_under(storage, storage.join("out")) == [
            "pmtiles/a.pmtiles",
            "pmtiles/sub/d.json",
        ]
    assert _scratch_is_empty()


def test_atomic_dir_error_keeps_previous(storage):
    uri = storage.join("out/pmtiles")
    with storage.atomic_local_dir(uri) as folder:
        _write_tree(folder, {"a.pmtiles": b"a1"})
    before = _files_under(storage, storage.join("out"))
    with pytest.raises(ValueError, match="tippecanoe failed"), storage.atomic_local_dir(uri) as f:
        _write_tree(f, {"a.pmtiles": b"half", "x.pmtiles": b"x"})
        raise ValueError("tippecanoe failed")
    assert _files_under(storage, storage.join("out")) == before
    assert _published(storage, uri) == ["a.pmtiles"]
    assert storage.read_bytes(f"{storage.current_dir(uri)}/a.pmtiles") == b"a1"
    assert _scratch_is_empty()


# --- icechunk --------------------------------------------------------------------------------


def test_icechunk_storage_roundtrip_on_s3(s3_server, s3_bucket):
    import icechunk
    import zarr

    storage = Storage(f"{s3_bucket}/root", s3_endpoint_url=s3_server, s3_region="us-east-1")
    repo = icechunk.Repository.create(storage.icechunk_storage())
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="risk", shape=(4, 6), chunks=(2, 3), dtype="f4")
    array[:] = np.arange(24, dtype="f4").reshape(4, 6)
    snapshot = session.commit("wrote region_id (y0_x0)")

    reopened = icechunk.Repository.open(storage.icechunk_storage())
    read = zarr.open_array(reopened.readonly_session(branch="main").store, path="risk", mode="r")
    np.testing.assert_array_equal(read[:], np.arange(24, dtype="f4").reshape(4, 6))
    assert next(iter(reopened.ancestry(branch="main"))).id == snapshot
    keys = storage.filesystem().find(storage.fs_path(storage.icechunk_uri))
    assert keys, "the repository lives under icechunk_uri in the bucket"


def test_icechunk_storage_local(tmp_path):
    import icechunk

    storage = Storage(str(tmp_path))
    icechunk.Repository.create(storage.icechunk_storage())
    assert Path(storage.icechunk_uri).is_dir()


# --- listing ---------------------------------------------------------------------------------
ODD = "o c r [x] it's *"  # spaces, a quote and glob characters: a name, never a pattern


def test_list_files_lists_the_folder_without_hidden_files(storage):
    folder = storage.join(ODD, "regions")
    for name in ("y1_x1.parquet", "y2_x1.parquet", ".y3_x1.parquet.tmp-1.parquet", "notes.txt"):
        storage.write_bytes_atomic(f"{folder}/{name}", b"x")
    storage.write_bytes_atomic(f"{folder}/sub/y9_x9.parquet", b"x")
    storage.write_bytes_atomic(f"{folder}/.staging/y8_x8.parquet", b"x")
    storage.write_bytes_atomic(storage.join(ODD, "regions-old/y0_x0.parquet"), b"x")
    assert storage.list_files(folder, ".parquet") == [
        f"{folder}/y1_x1.parquet",
        f"{folder}/y2_x1.parquet",
    ]
    assert storage.list_files(folder, ".parquet", recursive=True) == [
        f"{folder}/sub/y9_x9.parquet",
        f"{folder}/y1_x1.parquet",
        f"{folder}/y2_x1.parquet",
    ]
    assert storage.list_files(folder) == [
        f"{folder}/notes.txt",
        f"{folder}/y1_x1.parquet",
        f"{folder}/y2_x1.parquet",
    ]
    assert storage.list_files(storage.join(ODD, "missing")) == []
    assert storage.list_files(f"{folder}/y1_x1.parquet") == []  # a file is not a folder
