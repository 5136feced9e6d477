"""The web page in headless Chromium (Debian's, driven by Playwright), on the real pipeline.

The API is served by a real threaded HTTP server on loopback; ticks, the relay and projections run
in the `pipeline` fixture's real Celery worker, beat and `flask consume`. Set SCREENSHOTS_DIR to
keep the screenshots (the README's come from here).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from arena.settings import Settings
from harness.pipeline import produce
from harness.poison import poisoned_arena

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# This machine's network is closed: without these, Chromium keeps trying to reach its services.
QUIET_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIDE = 16
VIEWPORT = {"width": 1280, "height": 1300}  # the whole board in view: a click lands on its cell
WAIT_MS = 20_000  # Playwright's expectations wait until this deadline, polling


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET_FLAGS)
        yield launched
        launched.close()


def _board_pixels(page: Page) -> list[int]:
    return page.evaluate(
        """() => {
            const canvas = document.querySelector('#board');
            return Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width,
                canvas.height).data);
        }"""
    )


def _cell(page: Page, x: int, y: int) -> dict[str, float]:
    page.locator("#board").scroll_into_view_if_needed()
    box = page.locator("#board").bounding_box()
    assert box is not None
    return {
        "x": box["x"] + (x + 0.5) * box["width"] / SIDE,
        "y": box["y"] + (y + 0.5) * box["height"] / SIDE,
    }


def _tick(page: Page) -> int:
    return int(page.locator("#tick").inner_text())


def _keep(page: Page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def test_two_players_play_a_game_in_the_browser(
    site: str, browser: Browser, tmp_path: Path
) -> None:
    expect.set_options(timeout=WAIT_MS)
    ada = browser.new_context(viewport=VIEWPORT).new_page()
    ada.goto(site + "/")
    create = ada.get_by_role("form", name="Create an arena")
    create.get_by_label("Name", exact=True).fill("Browser dish")
    create.get_by_label("Your name").fill("Ada")
    create.get_by_label("Width").fill(str(SIDE))
    create.get_by_label("Height").fill(str(SIDE))
    create.get_by_role("button", name="Create").click()
    expect(ada.locator("#arena-title")).to_have_text("Browser dish")
    expect(ada.locator("#me")).to_have_text("Ada (ADMIN)")
    expect(ada.get_by_role("group", name="Admin controls")).to_be_visible()
    arena_url = ada.url

    bob = browser.new_context(viewport=VIEWPORT).new_page()
    bob.goto(arena_url)
    expect(bob.locator("#me")).to_have_text("a watcher")
    bob.locator("#join").get_by_label("Your name").fill("Bob")
    bob.get_by_role("button", name="Join this arena").click()
    expect(bob.locator("#me")).to_have_text("Bob (PLAYER)")
    expect(bob.get_by_role("group", name="Admin controls")).to_be_hidden()
    expect(ada.locator("#players, #feed")).to_contain_text(["PlayerJoined"])

    ada.get_by_role("button", name="Start", exact=True).click()
    expect(ada.locator("#status")).to_have_text("RUNNING")
    expect(bob.locator("#status")).to_have_text("RUNNING")

    # Ada feeds the whole dish by dragging across it; both seed it by clicking cells.
    ada.get_by_label("add nutrients (drag an area)").check()
    start, end = _cell(ada, 0, 0), _cell(ada, SIDE - 1, SIDE - 1)
    ada.mouse.move(start["x"], start["y"])
    ada.mouse.down()
    ada.mouse.move(end["x"], end["y"])
    ada.mouse.up()
    before = _board_pixels(bob)
    for page, cells in ((bob, [(3, 3), (4, 9)]), (ada, [(11, 5), (12, 12)])):
        page.get_by_label("spawn bacteria").check()
        for x, y in cells:
            spot = _cell(page, x, y)
            page.mouse.click(spot["x"], spot["y"])
    expect(ada.locator("#notice")).to_have_text("")
    # The keyboard reaches the board too: arrows move its cursor, Enter spawns there.
    bob.locator("#board").focus()
    for key in ("ArrowRight", "ArrowRight", "ArrowDown", "ArrowDown"):
        bob.keyboard.press(key)
    with bob.expect_response(lambda r: r.url.endswith("/actions")) as answered:
        bob.keyboard.press("Enter")
    assert answered.value.status == 202
    assert answered.value.request.post_data_json["payload"]["position"] == {"x": 2, "y": 2}
    for name in ("Ada", "Bob"):  # each player's organisms are on the board
        expect(bob.locator("#players tbody")).to_contain_text(name)
    ticked_from = _tick(bob)
    expect(bob.locator("#tick")).not_to_have_text(str(ticked_from))
    expect(bob.locator("#leaders li").first).to_be_visible()  # organisms live and rank
    expect(bob.locator("#feed")).to_contain_text("ActionApplied")
    after = _board_pixels(bob)
    changed = sum(1 for a, b in zip(before, after, strict=True) if a != b)
    assert changed > 0, "the board canvas did not change as the dish ticked"
    _keep(ada, "arena.png", tmp_path)

    ada.get_by_role("button", name="Pause", exact=True).click()
    expect(ada.locator("#status")).to_have_text("PAUSED")
    expect(bob.locator("#status")).to_have_text("PAUSED")
    expect(bob.get_by_role("group", name="Admin controls")).to_be_hidden()


def test_the_pipeline_page_shows_a_stalled_arena_after_a_poison_event(
    site: str, browser: Browser, settings: Settings, tmp_path: Path
) -> None:
    expect.set_options(timeout=WAIT_MS)
    arena, _, stream = poisoned_arena()
    produce(settings, stream)  # version 3 is an event type no projection knows
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(site + "/pipeline")
    stalled = page.locator("#stalled tbody")
    expect(stalled).to_contain_text(arena.id)
    expect(stalled).to_contain_text(f"flask dlq replay --arena {arena.id}")
    expect(page.locator("#parked")).not_to_have_text("0")
    expect(page.locator("#dead-letters")).not_to_have_text("0")
    expect(page.locator("#lag tbody tr")).to_have_count(settings.kafka_events_partitions)
    for stage in ("published", "consumed", "applied"):  # a rate once two samples are in
        expect(page.locator(f"#rates tr[data-stage={stage}] td").first).to_have_text(
            re.compile(r"^\d+\.\d$")
        )
    expect(page.get_by_role("link", name="Flower")).to_have_attribute("href", settings.flower_url)
    _keep(page, "pipeline.png", tmp_path)
