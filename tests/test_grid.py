"""Region grid facts: CONUS (the reference's) and the embedded demo grid."""

import pytest
from grid_helpers import region_id_at, region_ids_for_bbox, region_slices

from ocr_core.grid import CONUS, DEMO, KERNEL_REACH_PX, Grid, RegionIdError, get_grid


def test_conus_chunking_facts():
    assert (CONUS.n_rows, CONUS.n_cols) == (17, 47)
    assert len(CONUS.all_region_ids()) == 799
    assert CONUS.pixel_window("y16_x0")[1] - CONUS.pixel_window("y16_x0")[0] == 1579
    r0, r1, c0, c1 = CONUS.pixel_window("y0_x46")
    assert (r1 - r0, c1 - c0) == (6000, 1881)


def test_conus_valid_ids_are_the_reference_list():
    ids = CONUS.valid_region_ids
    assert len(ids) == 405 and len(set(ids)) == 405
    assert {"y1_x21", "y2_x20", "y14_x5"} <= set(ids)


def test_region_slices_match_reference_example():
    lat, lon = region_slices(CONUS, "y5_x14")
    assert lat.start == pytest.approx(31.66793, abs=1e-5)
    assert lat.stop == pytest.approx(33.51589, abs=1e-5)
    assert lon.start == pytest.approx(-108.98394, abs=1e-5)
    assert lon.stop == pytest.approx(-107.59797, abs=1e-5)
    blat, blon = region_slices(CONUS, "y5_x14", buffered=True)
    assert blat.start == pytest.approx(lat.start - 0.15) and blon.stop == pytest.approx(
        lon.stop + 0.15
    )


def test_neighbouring_regions_share_exact_edges():
    west = CONUS.region_bounds("y5_x14")
    east = CONUS.region_bounds("y5_x15")
    north = CONUS.region_bounds("y6_x14")
    assert west[2] == east[0]  # bit-identical: no gap, no overlap
    assert west[3] == north[1]


def test_region_id_at_uses_pixel_edges():
    lon_min, lat_min, lon_max, _lat_max = DEMO.region_bounds("y2_x1")
    assert region_id_at(DEMO, lon_min, lat_min) == "y2_x1"  # west/south edges inclusive
    assert region_id_at(DEMO, lon_max, lat_min) == "y2_x2"  # east edge belongs to the neighbour
    assert region_id_at(DEMO, lon_min - 1e-9, lat_min) == "y2_x0"
    assert region_id_at(DEMO, DEMO.lon0 - 1, DEMO.lat0) is None


def test_bbox_to_region_ids():
    lon_min, lat_min, lon_max, lat_max = DEMO.region_bounds("y2_x1")
    inner = (lon_min + 0.01, lat_min + 0.01, lon_max - 0.01, lat_max - 0.01)
    assert region_ids_for_bbox(DEMO, inner) == ["y2_x1"]
    across = (lon_min - 0.01, lat_min + 0.01, lon_min + 0.01, lat_min + 0.02)
    assert region_ids_for_bbox(DEMO, across) == ["y2_x0", "y2_x1"]
    # the southern row is open ocean: valid_only drops it
    w, s, e, n = DEMO.region_bounds("y0_x0")
    south = (w, s, e - 1e-6, n - 1e-6)
    assert region_ids_for_bbox(DEMO, south) == []
    assert region_ids_for_bbox(DEMO, south, valid_only=False) == ["y0_x0"]
    with pytest.raises(ValueError, match="west, south, east, north"):
        region_ids_for_bbox(DEMO, (1, 1, 0, 0))


def test_demo_grid_shape_and_alignment():
    assert (DEMO.n_rows, DEMO.n_cols) == (4, 4) and DEMO.pixel_size == CONUS.pixel_size
    assert (DEMO.chunk_lat, DEMO.chunk_lon) == (600, 450)
    # the demo's pixels are CONUS pixels
    assert ((DEMO.lon0 - CONUS.lon0) / CONUS.pixel_size) == pytest.approx(30317, abs=1e-6)
    assert ((DEMO.lat0 - CONUS.lat0) / CONUS.pixel_size) == pytest.approx(36922, abs=1e-6)
    assert len(DEMO.valid_region_ids) == 12
    assert set(DEMO.all_region_ids()) - set(DEMO.valid_region_ids) == {f"y0_x{c}" for c in range(4)}


def test_buffers_cover_the_kernels_reach():
    for grid in (CONUS, DEMO):
        assert grid.buffer_pixels >= KERNEL_REACH_PX
    assert CONUS.buffer_pixels == 488  # 0.15° / 0.000308°
    with pytest.raises(ValueError, match="less than the risk kernels' reach"):
        Grid("tiny", CONUS.pixel_size, 0, 0, 10, 10, 5, 5, 0.01, "demo_valid_region_ids.json")


@pytest.mark.parametrize(
    ("region_id", "message"),
    [
        ("y5-x14", "malformed region id"),
        ("", "malformed region id"),
        ("y99_x1", "outside the demo grid"),
        ("y0_x0", "holds no data"),
    ],
)
def test_bad_region_ids_are_named(region_id, message):
    with pytest.raises(RegionIdError, match=message):
        DEMO.validate_region_id(region_id)


@pytest.mark.parametrize(
    ("grid", "given", "canonical"),
    [
        (DEMO, "y02_x01", "y2_x1"),
        (DEMO, "y2_x1", "y2_x1"),
        (CONUS, "y05_x14", "y5_x14"),
        (CONUS, "y005_x0014", "y5_x14"),
        (CONUS, "y0_x00", "y0_x0"),
    ],
)
def test_canonical_region_id_drops_zero_padding(grid, given, canonical):
    assert grid.canonical_region_id(given) == canonical
    assert grid.parse_region_id(given) == grid.parse_region_id(canonical)


@pytest.mark.parametrize("region_id", ["y5_x14\n", "y٥_x14", "Y5_x14", "y5_x", " y5_x14"])
def test_canonical_region_id_refuses_other_spellings(region_id):
    with pytest.raises(RegionIdError, match="malformed region id"):
        CONUS.canonical_region_id(region_id)


def test_validate_answers_a_padded_id_with_its_canonical_form():
    assert CONUS.validate_region_id("y5_x14") == (5, 14)
    with pytest.raises(RegionIdError, match=r"^region id 'y05_x14' is written 'y5_x14'$"):
        CONUS.validate_region_id("y05_x14")  # not "holds no data"
    with pytest.raises(RegionIdError, match=r"region 'y00_x1' \(y0_x1\) holds no data"):
        DEMO.validate_region_id("y00_x1")


@pytest.mark.parametrize(
    ("grid", "given", "selected", "notes"),
    [
        (CONUS, ["y5_x14", "y5_x14"], ["y5_x14"], ["y5_x14 given twice; running it once"]),
        (CONUS, ["y05_x14"], ["y5_x14"], ["y05_x14 is y5_x14"]),
        (
            CONUS,
            ["y14_x5", "y05_x14", "y5_x14", "y14_x5", "y14_x05"],
            ["y14_x5", "y5_x14"],
            [
                "y05_x14 is y5_x14",
                "y14_x05 is y14_x5",
                "y14_x5 given 3 times; running it once",
                "y5_x14 given twice; running it once",
            ],
        ),
        (DEMO, ["y2_x1", "y3_x03", "y1_x0"], ["y2_x1", "y3_x3", "y1_x0"], ["y3_x03 is y3_x3"]),
        (DEMO, [], [], []),
    ],
)
def test_select_region_ids_canonical_once_each_in_order(grid, given, selected, notes):
    assert grid.select_region_ids(given) == (selected, notes)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["y2_x1", "y00_x1"], "holds no data"),
        (["y2_x1", "y9_x1"], "outside the demo grid"),
        (["y2_x1", "y2-x1"], "malformed region id"),
    ],
)
def test_select_region_ids_refuses_any_bad_id(given, message):
    with pytest.raises(RegionIdError, match=message):
        DEMO.select_region_ids(given)


def test_unknown_grid():
    assert get_grid("conus") is CONUS
    with pytest.raises(ValueError, match=r"unknown grid .mars.*OCR_GRID"):
        get_grid("mars")
