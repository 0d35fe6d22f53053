"""The deployment's web UI in headless Chromium after the backfill (the same running services as
test_stack.py): asset groups, every plate partition of site_images materialized, a contact sheet
that decodes and is not blank, passed asset checks, the sensor and the schedule.
Screenshots go to the test's tmp dir."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from imaging_assets_tests.browser import TIMEOUT_MS, chromium_context
from imaging_assets_tests.deployment.conftest import PLATE_ASSETS

pytestmark = [pytest.mark.s3, pytest.mark.slow]
CHECKS = """
query Checks {
  assetNodeOrError(assetKey: {path: ["site_images"]}) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name } } }
    }
  }
}"""


@pytest.fixture(scope="module")
def browser_context():
    with chromium_context() as context:
        yield context


@pytest.fixture()
def page(browser_context, deployment):
    page = browser_context.new_page()
    # the UI's "Join the Dagster community" dialog covers the page whenever it shows up
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )
    yield page
    page.close()


def _open(page, deployment, path: str) -> None:
    page.goto(deployment.stack.webserver_url + path, wait_until="networkidle", timeout=TIMEOUT_MS)


def test_asset_graph_lists_the_groups(page, deployment, tmp_path):
    from imaging_assets.definitions import defs

    groups = {node.group_name for node in defs.resolve_asset_graph().asset_nodes}
    assert {"metadata", "plates", "images", "profiles"} <= groups
    _open(page, deployment, "/asset-groups")
    for group in sorted(groups):
        page.get_by_text(group, exact=True).first.wait_for()
    page.screenshot(path=tmp_path / "asset_graph.png")


def test_site_images_has_every_plate_materialized(page, deployment, tmp_path):
    plates = deployment.plates
    _open(page, deployment, "/assets/site_images?view=partitions")
    page.get_by_text(f"Materialized ({len(plates)})").wait_for()
    for status in ("Failed (0)", "Missing (0)", "Materializing (0)"):
        page.get_by_text(status).wait_for()
    for plate in plates:
        page.get_by_text(plate, exact=True).first.wait_for()
    page.screenshot(path=tmp_path / "site_images_partitions.png")
    assert "site_images" in PLATE_ASSETS


def test_contact_sheet_decodes_and_is_not_blank(page, deployment, tmp_path):
    imaged = sorted(
        f"{p.source}__{p.plate}" for p in deployment.gallery.plates if p.plate_type != "DMSO"
    )
    _open(page, deployment, f"/assets/site_images?view=events&partition={imaged[0]}")
    row = page.locator("tr", has=page.get_by_text("contact_sheet", exact=True))
    row.get_by_text("[Show Markdown]").click()
    image = page.locator('img[src^="data:image/png;base64,"]').first
    image.wait_for()
    width, height, complete = image.evaluate("i => [i.naturalWidth, i.naturalHeight, i.complete]")
    assert complete and width > 0 and height > 0  # the browser decoded it
    page.screenshot(path=tmp_path / "contact_sheet.png")
    encoded = image.get_attribute("src").split(",", 1)[1]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("L"))
    assert pixels.shape == (height, width)
    assert pixels.std() > 5 and pixels.max() > pixels.min() + 50, (pixels.min(), pixels.max())
    assert (pixels > 0).mean() > 0.05  # not a black sheet with a few stray pixels
    from imaging_assets.jump.images.contact_sheet import LABEL_HEIGHT

    band = pixels[:LABEL_HEIGHT]  # the first site's label: its key and control role
    assert (band > 128).sum() > 20 and (band == 0).mean() > 0.5


def test_site_images_shows_its_columns_and_row_count(page, deployment, tmp_path):
    _open(page, deployment, f"/assets/site_images?partition={deployment.plates[0]}")
    page.get_by_text("Row count", exact=True).first.wait_for()
    page.get_by_text("Columns", exact=True).first.wait_for()
    for column in ("site_key", "dna_raw_md5", "dna_read_uri", "dna_codec"):
        page.get_by_text(column, exact=True).first.wait_for()
    page.get_by_text("md5 of the raw bytes", exact=False).first.wait_for()  # described
    page.screenshot(path=tmp_path / "site_images_overview.png", full_page=True)


def test_asset_checks_show_as_passed(page, deployment, tmp_path):
    answer = deployment.stack.graphql(CHECKS)["assetNodeOrError"]
    names = sorted(check["name"] for check in answer["assetChecksOrError"]["checks"])
    assert len(names) >= 3, answer
    _open(page, deployment, "/assets/site_images?view=checks")
    page.get_by_text(f"Checks ({len(names)})").wait_for()
    for name in names:
        page.get_by_text(name, exact=True).first.wait_for()
    succeeded = page.get_by_text("Succeeded", exact=True)
    succeeded.first.wait_for()
    assert succeeded.count() == len(names)
    page.get_by_text("Passed", exact=True).first.wait_for()
    page.screenshot(path=tmp_path / "site_images_checks.png")


def test_sensor_and_schedule_are_listed(page, deployment, tmp_path):
    _open(page, deployment, "/automation")
    page.get_by_text("new_plates_sensor", exact=True).first.wait_for()
    page.get_by_text("plate_backfill_schedule", exact=True).first.wait_for()
    page.screenshot(path=tmp_path / "automation.png")
