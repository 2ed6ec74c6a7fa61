"""The page in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven by Selenium).

Screenshots go to ``test-artifacts/`` (``web-no-camera.png``, ``web-demo.png``).
"""
from __future__ import annotations

import shutil
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
    base, _, app = live_server(STREAM_GRACE=0.5, REALTIME=True)
    return base, app


def _visible(driver, element_id):
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]); return !!e && !e.hidden && e.offsetParent !== null;",
        element_id)


def test_page_shows_no_camera_then_the_demo_stream_moves(browser, server):
    from selenium.webdriver.common.by import By

    base, app = server
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(f"{base}/?source=camera&device-name=CPU")

    # no camera on this server: a message and an offer of the demo video, never a broken image
    assert wait_for(lambda: "No camera" in browser.find_element(By.ID, "notice-text").text)
    assert not _visible(browser, "stream")
    assert _visible(browser, "notice-action")
    assert "demo" in browser.find_element(By.ID, "notice-action").text.lower()
    assert "camera 99 cannot be opened" in browser.find_element(By.ID, "notice-detail").text.lower()
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#device option")]
    assert options == app.extensions["pose_fast_streams"].devices()
    browser.save_screenshot(str(ARTIFACTS / "web-no-camera.png"))

    # toggle to the demo video
    browser.find_element(By.ID, "source-demo").click()
    assert wait_for(lambda: _visible(browser, "stream") and browser.execute_script(
        "return document.getElementById('stream').naturalWidth") == 480)
    assert "source=demo" in browser.current_url
    assert browser.find_element(By.ID, "source-demo").get_attribute("aria-checked") == "true"
    image = browser.find_element(By.ID, "stream")
    first = image.screenshot_as_png
    assert wait_for(lambda: image.screenshot_as_png != first), "the stream image never changed"
    assert wait_for(lambda: browser.find_element(By.ID, "stat-fps").text not in ("", "–"))
    assert browser.find_element(By.ID, "stat-inference").text.endswith(" ms")
    assert wait_for(lambda: browser.find_element(By.ID, "stat-viewers").text == "1")
    stream = app.extensions["pose_fast_streams"].stream("demo", "CPU")
    assert stream.state == "running" and stream.viewers == 1
    # the latest events (people entering) show up from /detections
    assert wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#events tr.enter"), timeout=90)
    assert "store-aisle-detection.mp4" in browser.find_element(By.CSS_SELECTOR, "#events tr.enter").text
    browser.save_screenshot(str(ARTIFACTS / "web-demo.png"))

    # back to the camera: the demo stream loses its viewer (the page closes the MJPEG connection)
    browser.find_element(By.ID, "source-camera").click()
    assert wait_for(lambda: "No camera" in browser.find_element(By.ID, "notice-text").text)
    assert wait_for(lambda: stream.state == "stopped", timeout=30)


def test_page_without_a_camera_opens_on_the_demo_and_a_broken_device_is_a_message(browser, tmp_path, live_server):
    from selenium.webdriver.common.by import By

    broken = tmp_path / "human-pose-estimation-0001.xml"
    broken.write_text("<net name='broken'>")
    (tmp_path / "human-pose-estimation-0001.bin").write_bytes(b"")
    base, _, _ = live_server(threads=8, MODEL=str(broken), INPUT_HEIGHT=256, STREAM_GRACE=2.0, REALTIME=True)
    browser.get(f"{base}/")
    # no source in the URL and no camera: the page picks the demo and says why
    assert wait_for(lambda: "showing the demo video" in browser.find_element(By.ID, "source-hint").text)
    # the model cannot load: a visible message with the server's reason, not a spinner forever
    assert wait_for(lambda: "Could not show" in browser.find_element(By.ID, "notice-text").text)
    assert "model" in browser.find_element(By.ID, "notice-detail").text
    assert not _visible(browser, "stream") and not _visible(browser, "spinner")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web-device-error.png"))
