"""imaging_assets.read: the Lake object's frame-dataset methods delegate to frames.reading."""

import numpy as np

from imaging_assets.read import open_lake

OME = "DEMO-2024-05-01-10-00-00-0001"


def test_lake_queries_reads_and_follows_links(samples, ingested):
    lake = open_lake(ingested.root)
    table = lake.frame_datasets(project="DEMO", microscope="Nikon-Ti2", description="HeLa")
    assert sorted(table.column("dataset_id").to_pylist()) == [
        OME,
        "DEMO-2024-05-01-12-00-00-0002",
    ]
    np.testing.assert_array_equal(
        lake.frames(OME, c="GFP", z=range(1, 3), t=2),
        samples.expected[OME][0][[2]][:, [1]][:, :, 1:3],
    )
    assert lake.frames_table(OME, t=0).num_rows == 8
    assert lake.frame_dataset(OME)["summary"]["frame_count"] == 24
    assert lake.dataset_children(OME) == ["DEMO-2024-05-01-12-00-00-0002"]
    assert lake.dataset_parents("DEMO-2024-05-01-12-00-00-0002") == [OME]
    assert "frames" in lake.datasets()  # the Lance table listing is unchanged
