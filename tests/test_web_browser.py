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
from impasto.web.job import StylizerEngine  # noqa: E402

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
# Seeds that make the test server's engine misbehave (see TroubledEngine).
FAILING_SEED, SLOW_SETUP_SEED = 13, 21

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no chromium at {CHROMIUM} (apt-get install chromium, or set IMPASTO_CHROMIUM)",
    ),
]


class TroubledEngine(StylizerEngine):
    """The real engine, except that two seeds make a job fail or take its time to start."""

    def __call__(self, content: Any, styles: Any, settings: Any) -> Any:
        if settings.seed == FAILING_SEED:
            raise RuntimeError("the network could not be built")
        if settings.seed == SLOW_SETUP_SEED:
            time.sleep(3)  # as loading the network does on a slow disk
        return super().__call__(content, styles, settings)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app under uvicorn in a thread; yields its base URL."""
    config = ServerConfig(
        workdir=str(tmp_path_factory.mktemp("web")), device="cpu", preview_seconds=0.05
    )
    app = create_app(config, engine=TroubledEngine("cpu"))
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


# --- what the page does with odd input and odd outcomes ----------------------------------------
def test_a_file_that_is_no_image_is_refused_in_the_page(
    page: Any, server: str, tmp_path: Path
) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("these are not the pixels you are looking for")
    style = tmp_path / "style.png"
    draw_painting(style)
    page.goto(server)
    page.wait_for_selector("#setting-size")
    page.set_input_files("#style-input", str(style))
    page.set_input_files("#content-input", str(fake))
    error = page.locator("#form-error")
    error.wait_for(state="visible")
    assert "holiday.png is not an image" in error.inner_text()
    assert page.locator("#content-thumb").is_hidden()
    assert page.locator("#start").is_disabled()
    # A TIFF is an image the server reads even though the browser cannot draw it.
    tiff = tmp_path / "scan.tif"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(tiff)
    page.set_input_files("#content-input", str(tiff))
    page.wait_for_function("!document.getElementById('start').disabled")
    assert "scan.tif" in page.locator("#content-hint").inner_text()


def test_style_names_and_blend_weights(page: Any, server: str, tmp_path: Path) -> None:
    a, b = tmp_path / "monet.png", tmp_path / "klimt.png"
    draw_painting(a)
    draw_painting(b, size=40)
    content = tmp_path / "photo.png"
    draw_photo(content)
    page.goto(server)
    page.wait_for_selector("#setting-size")
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input", [str(a), str(b)])
    names = page.locator("#styles-list .style-name")
    names.nth(1).wait_for()
    assert names.all_inner_texts() == ["monet.png · 50%", "klimt.png · 50%"]

    def slide(index: int, value: str) -> None:
        page.locator("#styles-list input.blend").nth(index).evaluate(
            "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value
        )

    slide(0, "0")
    page.wait_for_function(
        "document.querySelector('#styles-list .style-name').textContent.endsWith(' 0%')"
    )
    assert names.all_inner_texts() == ["monet.png · 0%", "klimt.png · 100%"]
    assert page.locator("#start").is_enabled()
    slide(1, "0")
    page.wait_for_function("document.getElementById('start').disabled")
    assert page.locator("#weight-hint").is_visible()
    slide(1, "0.5")
    page.wait_for_function("!document.getElementById('start').disabled")


def test_a_queued_job_shows_its_own_photo(page: Any, server: str, tmp_path: Path) -> None:
    content, style = tmp_path / "photo.png", tmp_path / "style.png"
    draw_photo(content)
    draw_painting(style)
    # Another client's long job keeps the worker busy.
    files = {
        "content": {"name": "c.png", "mimeType": "image/png", "buffer": content.read_bytes()},
        "styles": {"name": "s.png", "mimeType": "image/png", "buffer": style.read_bytes()},
        "settings": '{"size": 48, "iterations": 1000, "tolerance": 0}',
    }
    paint(page, server, content, [style], size=48, iterations=2)
    page.locator("#download").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert "/preview?v=" in page.locator("#preview").get_attribute("src")
    busy = page.request.post(server + "/api/jobs", multipart=files).json()
    try:
        page.click("#start")  # the same photo again, behind the busy job
        page.wait_for_function("document.getElementById('status').textContent.includes('queue')")
        source = page.locator("#preview").get_attribute("src") or ""
        assert source.startswith("blob:"), source  # its own photo, not the last job's painting
    finally:
        page.request.post(f"{server}/api/jobs/{busy['id']}/cancel")
    page.locator("#download").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)


def test_a_failed_job_says_what_failed(page: Any, server: str, tmp_path: Path) -> None:
    content, style = tmp_path / "photo.png", tmp_path / "style.png"
    draw_photo(content)
    draw_painting(style)
    paint(page, server, content, [style], size=48, iterations=3, seed=FAILING_SEED)
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Failed')",
        timeout=RUN_TIMEOUT_MS,
    )
    assert page.locator("#status").inner_text() == (
        "Failed: the job failed inside the server: RuntimeError: the network could not be built"
    )
    assert page.locator("#download").is_hidden()


def test_cancelled_before_the_first_iteration_offers_nothing(
    page: Any, server: str, tmp_path: Path
) -> None:
    content, style = tmp_path / "photo.png", tmp_path / "style.png"
    draw_photo(content)
    draw_painting(style)
    paint(page, server, content, [style], size=48, iterations=50, seed=SLOW_SETUP_SEED)
    page.locator("#cancel").wait_for(state="visible")
    page.click("#cancel")
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Cancelled')",
        timeout=RUN_TIMEOUT_MS,
    )
    assert "no result" in page.locator("#status").inner_text()
    assert page.locator("#download").is_hidden()


def test_a_reload_after_the_job_is_gone_says_so(page: Any, server: str) -> None:
    page.goto(f"{server}/#job={'ab' * 16}")
    page.wait_for_function(
        "document.getElementById('status').textContent.includes('no longer on the server')"
    )
    assert page.locator("#status").inner_text().startswith("Job abababab is no longer")
    assert "#job=" not in page.url


def test_the_api_docs_render_offline(page: Any, server: str) -> None:
    """The browser here has no internet: the docs page works from the server alone."""
    page.goto(server + "/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() >= 10


def test_a_video_shows_its_frames_and_offers_the_mp4(
    page: Any, server: str, tmp_path: Path
) -> None:
    av = pytest.importorskip("av")
    pytest.importorskip("cv2")
    clip, style = tmp_path / "clip.mp4", tmp_path / "style.png"
    draw_painting(style)
    with av.open(str(clip), "w") as out:  # 3 frames of 48x32, a bar moving right
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(3):
            pixels = np.full((32, 48, 3), 60, np.uint8)
            pixels[:, 8 + 6 * i : 20 + 6 * i] = (230, 180, 40)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    paint(page, server, clip, [style], size=32, iterations=2, first_iterations=3, seed=3)
    assert "clip.mp4 (video)" in page.locator("#content-hint").inner_text()
    page.locator("#download").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert page.locator("#download").inner_text() == "Download MP4"
    assert page.locator("#download").get_attribute("download").endswith(".mp4")
    assert page.locator("#result-video").get_attribute("src").endswith("/result")
    assert "/preview?v=" in (page.locator("#preview").get_attribute("src") or "")
