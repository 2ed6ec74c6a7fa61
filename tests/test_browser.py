"""The page in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven by Selenium).

Screenshots go to ``test-artifacts/`` (``web-no-camera.png``, ``web-demo.png``, ``web-device-error.png``,
``web-cameras.png``, ``web-camera-down.png``, ``web-problem.png``).
"""
from __future__ import annotations

import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
import support

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.browser


def wait_for(predicate, timeout=60.0, step=0.1):
    """A browser takes its time: support.wait_for with a longer default."""
    return support.wait_for(predicate, timeout, step)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: apt-get install chromium "
                    "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser tests need Selenium: pip install selenium")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture()
def server(live_server):
    # round 1's single camera (``--camera 99``: named ``camera``), on an index no machine has
    base, _, app = live_server(CAMERA=99, STREAM_GRACE=0.5, REALTIME=True)
    return base, app


def _visible(driver, element_id):
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]); return !!e && !e.hidden && e.offsetParent !== null;",
        element_id)


def _text(driver, element_id):
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.ID, element_id).text
    except NoSuchElementException:
        return ""


def _playing(driver, width):
    return _visible(driver, "stream") and driver.execute_script(
        "return document.getElementById('stream').naturalWidth") == width


def test_page_shows_the_camera_is_down_then_the_demo_stream_moves(browser, server):
    from selenium.webdriver.common.by import By

    base, app = server
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(f"{base}/?source=camera&device-name=CPU")

    # the camera does not open: a message with its error and an offer of the demo video, never a broken image
    assert wait_for(lambda: "Camera camera is reconnecting" in _text(browser, "notice-text"))
    assert not _visible(browser, "stream")
    assert _visible(browser, "notice-action") and _text(browser, "notice-action") == "Try again"
    assert _visible(browser, "notice-alt") and "demo" in _text(browser, "notice-alt").lower()
    assert "no camera 99" in _text(browser, "notice-detail").lower()
    assert "unavailable" in browser.find_element(By.ID, "source-camera").get_attribute("class")
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#device option")]
    assert options == app.extensions["pose_fast_streams"].devices()
    assert wait_for(lambda: _text(browser, "stat-state").startswith("reconnecting: no camera 99"), timeout=10)
    assert "always on: retried until it is back" in _text(browser, "stat-state")
    browser.save_screenshot(str(ARTIFACTS / "web-no-camera.png"))

    # toggle to the demo video
    browser.find_element(By.ID, "source-demo").click()
    assert wait_for(lambda: _playing(browser, 480))
    assert "source=demo" in browser.current_url
    assert browser.find_element(By.ID, "source-demo").get_attribute("aria-checked") == "true"
    image = browser.find_element(By.ID, "stream")
    first = image.screenshot_as_png
    assert wait_for(lambda: image.screenshot_as_png != first), "the stream image never changed"
    assert wait_for(lambda: _text(browser, "stat-fps") not in ("", "–"))
    assert _text(browser, "stat-inference").endswith(" ms")
    assert wait_for(lambda: _text(browser, "stat-viewers") == "1")
    assert "always on" not in _text(browser, "stat-state")
    stream = app.extensions["pose_fast_streams"].stream("demo", "CPU")
    assert stream.state == "running" and stream.viewers == 1
    # the latest events (people entering) show up from /detections
    assert wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#events tr.enter"), timeout=90)
    assert "store-aisle-detection.mp4" in browser.find_element(By.CSS_SELECTOR, "#events tr.enter").text
    browser.save_screenshot(str(ARTIFACTS / "web-demo.png"))

    # back to the camera: the demo stream loses its viewer (the page closes the MJPEG connection)
    browser.find_element(By.ID, "source-camera").click()
    assert wait_for(lambda: "Camera camera is reconnecting" in _text(browser, "notice-text"))
    assert wait_for(lambda: stream.state == "stopped", timeout=30)


def test_page_without_a_camera_opens_on_the_demo_and_a_broken_device_is_a_message(browser, tmp_path, live_server):
    # web_config has no camera (CAMERA None)
    from selenium.webdriver.common.by import By

    broken = tmp_path / "human-pose-estimation-0001.xml"
    broken.write_text("<net name='broken'>")
    (tmp_path / "human-pose-estimation-0001.bin").write_bytes(b"")
    base, _, _ = live_server(threads=8, MODEL=str(broken), INPUT_HEIGHT=256, STREAM_GRACE=2.0, REALTIME=True)
    browser.get(f"{base}/")
    # no source in the URL and no camera: the page picks the demo and says why
    assert wait_for(lambda: "No camera on this server: showing the demo video" in _text(browser, "source-hint"))
    # the model cannot load: a visible message with the server's reason, not a spinner forever
    assert wait_for(lambda: "Could not show" in browser.find_element(By.ID, "notice-text").text)
    assert "model" in browser.find_element(By.ID, "notice-detail").text
    assert not _visible(browser, "stream") and not _visible(browser, "spinner")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web-device-error.png"))


class _Viewer:
    """Another viewer of an MJPEG stream (another person's browser): reads it in a thread until :meth:`close`."""

    def __init__(self, url):
        self.response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - the test's own server
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            while not self._stop.is_set():
                chunk = self.response.read1(65536)
                if not chunk:
                    return
                self.bytes += len(chunk)
        except (OSError, ValueError):
            pass

    def close(self):
        self._stop.set()  # the camera sends 10 frames a second: the reader sees this at its next chunk
        self._thread.join(10)
        self.response.close()


def test_page_with_two_named_cameras_one_down(browser, live_server, video_path):
    """Two cameras: ``door`` (a live MJPEG stream over HTTP) plays, and records events with snapshots that the
    events table shows as thumbnails; ``broken`` (index 99, never opens) says so with its error and offers the demo;
    another viewer on another device is explained; an unknown device-name is a visible problem."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ARTIFACTS.mkdir(exist_ok=True)
    with support.VideoHttpServer(video_path("one-by-one"), fps=10) as camera:
        base, _, app = live_server(CAMERAS=[f"door={camera.base}/live.mjpg", "broken=99"], STREAM_GRACE=0.5,
                                   REALTIME=True)
        manager = app.extensions["pose_fast_streams"]
        browser.get(f"{base}/?device-name=CPU")

        # the sources by name, in the configured order, then the demo; the default is the first camera that runs
        buttons = browser.find_elements(By.CSS_SELECTOR, "#source-toggle [data-source]")
        assert [b.get_attribute("data-source") for b in buttons] == ["door", "broken", "demo"]
        assert [b.text for b in buttons] == ["door", "broken", "Demo video"]
        assert [b.get_attribute("data-kind") for b in buttons] == ["camera", "camera", "demo"]
        assert wait_for(lambda: _playing(browser, 768), timeout=90), _text(browser, "notice-text")
        assert "source=door" in browser.current_url
        assert browser.find_element(By.ID, "source-door").get_attribute("aria-checked") == "true"
        assert _text(browser, "caption") == "camera door · CPU"
        image = browser.find_element(By.ID, "stream")
        first = image.screenshot_as_png
        assert wait_for(lambda: image.screenshot_as_png != first, timeout=30), "the camera's image never changed"
        assert wait_for(lambda: "running · always on: recording while nobody watches" in _text(browser, "stat-state"),
                        timeout=10)
        assert wait_for(lambda: "unavailable" in browser.find_element(By.ID, "source-broken").get_attribute("class"),
                        timeout=10)

        # people entering on door: rows with the camera's name, the person and a thumbnail that loads
        def thumbnails():
            return browser.execute_script(
                "return Array.prototype.filter.call(document.querySelectorAll('#events tr.enter td.thumb img'),"
                " function (i) { return i.complete && i.naturalWidth > 0; }).length")

        assert wait_for(thumbnails, timeout=120), "no event thumbnail loaded"
        row = browser.find_element(By.CSS_SELECTOR, "#events tr.enter")
        cells = row.find_elements(By.TAG_NAME, "td")
        assert len(cells) == 5
        assert cells[2].text == "enter" and cells[3].text.startswith("#") and cells[4].text == "door"
        link = cells[0].find_element(By.TAG_NAME, "a")
        assert link.get_attribute("target") == "_blank"
        assert "/detections/" in link.get_attribute("href") and link.get_attribute("href").endswith("/snapshot.jpg")
        thumb = cells[0].find_element(By.TAG_NAME, "img")
        assert thumb.get_dom_attribute("loading") == "lazy" and thumb.get_dom_attribute("width") == "64"
        assert thumb.size["width"] == 64
        assert len(browser.find_elements(By.CSS_SELECTOR, "#events tr")) <= 8
        browser.save_screenshot(str(ARTIFACTS / "web-cameras.png"))

        # another viewer watches door on CPU: this page cannot have it on another device, and says so
        other = _Viewer(f"{base}/video_feed?source=door&device-name=CPU")
        try:
            assert wait_for(lambda: manager.stream("door", "CPU").viewers == 2, timeout=10)
            Select(browser.find_element(By.ID, "device")).select_by_value("AUTO")
            assert wait_for(lambda: "being watched on CPU" in _text(browser, "notice-text"), timeout=30)
            assert "another viewer" in _text(browser, "notice-detail").lower()
            assert _text(browser, "notice-action") == "Watch it on CPU"
            browser.find_element(By.ID, "notice-action").click()
            assert wait_for(lambda: _playing(browser, 768), timeout=30)
            assert browser.find_element(By.ID, "device").get_attribute("value") == "CPU"
        finally:
            other.close()
        assert other.bytes > 0

        # broken: reconnecting, with its error, a try-again and the demo; then the demo plays
        browser.find_element(By.ID, "source-broken").click()
        assert wait_for(lambda: "Camera broken is reconnecting" in _text(browser, "notice-text"), timeout=30)
        assert "no camera 99" in _text(browser, "notice-detail").lower()
        assert not _visible(browser, "stream") and not _visible(browser, "spinner")
        assert _text(browser, "notice-action") == "Try again"
        assert _text(browser, "notice-alt") == "Watch the demo video"
        assert wait_for(lambda: _text(browser, "stat-state").startswith("reconnecting: no camera 99"), timeout=10)
        browser.save_screenshot(str(ARTIFACTS / "web-camera-down.png"))
        browser.find_element(By.ID, "notice-action").click()   # try again: still down, still said
        assert wait_for(lambda: "Camera broken is reconnecting" in _text(browser, "notice-text"), timeout=30)
        browser.find_element(By.ID, "notice-alt").click()
        assert wait_for(lambda: _playing(browser, 480), timeout=90)  # the demo: the store-aisle clip, 480 wide
        assert "source=demo" in browser.current_url

        # a device this machine does not have: the page says so, visibly
        browser.get(f"{base}/?device-name=NOSUCH")
        assert "unknown device-name 'NOSUCH'" in _text(browser, "problem")
        assert _visible(browser, "problem")
        colour = browser.find_element(By.ID, "problem").value_of_css_property("color")
        assert colour in ("rgba(255, 181, 71, 1)", "rgb(255, 181, 71)"), colour
        browser.save_screenshot(str(ARTIFACTS / "web-problem.png"))
