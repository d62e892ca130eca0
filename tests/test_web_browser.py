"""The page in a real headless browser: Debian's chromium driven by Playwright.

The real server runs on a free loopback port with the real engine. Set
``IMPASTO_SCREENSHOT=path.png`` to also save a screenshot of a run with the bundled
example images (that is how docs/web.png is made).
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs Playwright: pip install playwright"
)

from impasto.web import ServerConfig, create_app  # noqa: E402

CHROMIUM = os.environ.get("IMPASTO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no chromium at {CHROMIUM} (apt-get install chromium, or set IMPASTO_CHROMIUM)",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app under uvicorn in a thread; yields its base URL."""
    config = ServerConfig(
        workdir=str(tmp_path_factory.mktemp("web")), device="cpu", preview_seconds=0.05
    )
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as e:  # a chromium Playwright cannot drive is not a test failure
            pytest.skip(f"cannot start {CHROMIUM} with Playwright: {e}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def draw_photo(path: Path, size: tuple[int, int] = (48, 36)) -> None:
    """A small 'photo': sky, hill and sun, with flat areas a style visibly changes."""
    w, h = size
    img = Image.new("RGB", size, (120, 170, 230))
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.65, h * 0.1, w * 0.85, h * 0.4), fill=(250, 220, 90))
    d.polygon([(0, h), (0, h * 0.6), (w * 0.5, h * 0.45), (w, h * 0.7), (w, h)], fill=(60, 130, 60))
    img.save(path)


def draw_painting(path: Path, size: int = 48) -> None:
    """A small 'painting': bold diagonal strokes in warm colours."""
    y, x = np.mgrid[0:size, 0:size]
    stripes = ((x + y) // 5) % 3
    palette = np.array([[200, 60, 30], [240, 180, 40], [40, 40, 120]], dtype=np.uint8)
    Image.fromarray(palette[stripes], "RGB").save(path)


def paint(page: Any, url: str, content: Path, styles: list[Path], **settings: Any) -> None:
    """Open the page, choose the images, fill in settings and press Paint."""
    page.goto(url)
    page.wait_for_selector("#setting-size")  # the form is built from GET /api/settings
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input", [str(s) for s in styles])
    for name, value in settings.items():
        field = page.locator(f"#setting-{name}")
        if not field.is_visible():
            page.click("details.more summary")
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    page.click("#start")


def test_paint_watch_and_download(page: Any, server: str, tmp_path: Path) -> None:
    content, style_a, style_b = tmp_path / "photo.png", tmp_path / "a.png", tmp_path / "b.png"
    draw_photo(content)
    draw_painting(style_a)
    draw_painting(style_b, size=40)
    paint(page, server, content, [style_a, style_b], size=48, iterations=8, seed=3)
    assert page.locator("#styles-list li").count() == 2
    assert page.locator("#styles-list input.blend").count() == 2

    # Progress arrives through the event stream and is shown as it comes.
    page.wait_for_function("Number(document.body.dataset.events) >= 2", timeout=RUN_TIMEOUT_MS)
    page.locator("#download").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert page.locator("#status").inner_text().startswith("Done")
    assert page.locator("#stat-iteration").inner_text() == "8 / 8"
    assert page.locator("#stat-total").inner_text() not in ("", "–")
    assert "/preview?v=" in page.locator("#preview").get_attribute("src")
    assert page.locator("#bar").evaluate("el => el.style.width") == "100%"
    assert page.locator("#cancel").is_hidden()

    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "result.png"
    download.value.save_as(saved)
    result = Image.open(saved).convert("RGB")
    assert max(result.size) == 48
    original = Image.open(content).convert("RGB").resize(result.size)
    difference = np.abs(np.asarray(result, float) - np.asarray(original, float)).mean()
    assert difference > 5, difference


def test_bad_settings_show_the_servers_message(page: Any, server: str, tmp_path: Path) -> None:
    content = tmp_path / "photo.png"
    draw_photo(content)
    paint(page, server, content, [content], size=5000)
    error = page.locator("#form-error")
    error.wait_for(state="visible")
    assert "size" in error.inner_text() and "at most" in error.inner_text()
    assert page.locator("#start").is_enabled()  # try again with other settings


def test_cancel_keeps_the_best_image(page: Any, server: str, tmp_path: Path) -> None:
    content, style = tmp_path / "photo.png", tmp_path / "style.png"
    draw_photo(content)
    draw_painting(style)
    paint(page, server, content, [style], size=48, iterations=1000)
    page.wait_for_function(
        "document.getElementById('stat-iteration').textContent.startsWith('2 ')"
        " || Number(document.getElementById('stat-iteration').textContent.split(' ')[0]) > 2",
        timeout=RUN_TIMEOUT_MS,
    )
    page.click("#cancel")
    page.locator("#download").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert page.locator("#status").inner_text().startswith("Cancelled")
    href = page.locator("#download").get_attribute("href")
    answer = page.request.get(server + href)
    assert answer.status == 200 and answer.headers["content-type"] == "image/png"
    assert max(Image.open(io.BytesIO(answer.body())).size) == 48


@pytest.mark.skipif(not os.environ.get("IMPASTO_SCREENSHOT"), reason="set IMPASTO_SCREENSHOT=path")
def test_screenshot_of_a_run(page: Any, server: str, examples: tuple[Path, Path]) -> None:
    """A picture of the page half-way through a run on the bundled examples."""
    content, style = examples
    paint(page, server, content, [style], size=128, iterations=60, seed=0, initial="content")
    page.wait_for_function(
        "Number(document.getElementById('stat-iteration').textContent.split(' ')[0]) >= 30",
        timeout=300_000,
    )
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)  # let the newest preview load
    target = Path(os.environ["IMPASTO_SCREENSHOT"])
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    page.click("#cancel")
    page.locator("#download").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
