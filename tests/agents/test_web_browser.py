"""`ser-agent web` in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium): upload a
real RAVDESS clip, wait for the result, check the tinted transcript, the timeline picture, the caveat, the
download and the chat (a scripted model, with the reply without affect beside it); upload a non-audio file and
check the page shows the core's message; upload the clip again (the app kept serving). Screenshots go to the
test's tmp dir. Skips, with the reason, only where Chromium or its driver is not installed or ../shared/data is
absent (.ci/run installs chromium + chromium-driver)."""

from __future__ import annotations

import csv
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from agents.pipeline import AffectPipeline
from agents.testing import ScriptedChatModel
from ser_tool import EMOTIONS, Analyzer
from tests.helpers import SHARED_DATA

pytestmark = [pytest.mark.slow, pytest.mark.data]

CORPUS = SHARED_DATA / "ravdess"
WITH_AFFECT = "I can hear how you said that. (scripted reply, with the affect)"
WORDS_ONLY = "Noted. (scripted reply, words only)"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000")


def _skip(reason: str):
    print(f"SKIPPED test_web_browser: {reason}")
    pytest.skip(reason)


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if Path(name).is_file() else None)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def clip() -> tuple[Path, str]:
    """An angry RAVDESS clip and its words (from the corpus manifest)."""
    manifest = CORPUS / "manifest.csv"
    if not manifest.is_file():
        _skip(f"no RAVDESS data at {CORPUS} (../shared/data is absent)")
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f):
            path = CORPUS / row["path"]
            if row["label"] == "angry" and path.is_file():
                return path, row["text"]
    _skip(f"{manifest} lists no angry clip that exists")


@pytest.fixture(scope="module")
def server():
    """The app (the bundled emotion model, a scripted chat model) served by uvicorn on a free port, in a thread."""
    import uvicorn

    from agents.web import create_app
    from agents.web.cli import _bind

    def rule(text: str) -> str:
        return WITH_AFFECT if "Affect of the whole recording" in text else WORDS_ONLY

    model = ScriptedChatModel(rule=rule)
    app = create_app(AffectPipeline(model, analyzer=Analyzer("embedded")), chat_model_name="scripted (test)")
    sock = _bind("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the web app did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", model
    srv.should_exit = True
    thread.join(10)


def _start_browser(*extra_flags: str):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip("selenium is not installed (pip install selenium; it is in the [test] extra)")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver", "/usr/lib/chromium/chromedriver")
    if binary is None or driver_path is None:
        _skip(f"no {'Chromium' if binary is None else 'chromedriver'} on this machine "
              "(Debian: apt-get install chromium chromium-driver; .ci/run does this as root)")
    profile = tempfile.mkdtemp(prefix="ser-web-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)  # no selenium-manager
    driver.set_page_load_timeout(60)
    return driver, profile


@pytest.fixture(scope="module")
def browser():
    driver, profile = _start_browser()
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def mic_browser():
    """Chromium with a fake microphone (a beeping test signal) that needs no permission prompt."""
    driver, profile = _start_browser("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 120.0, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except Exception:  # noqa: BLE001 - say what the page showed instead
        status = driver.execute_script("return document.getElementById('status').textContent")
        error = driver.execute_script("return document.getElementById('error').textContent")
        raise AssertionError(f"timed out waiting for {what}; status: {status!r}, error: {error!r}") from None


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "file-input").send_keys(str(path))


def _result_shown(driver) -> bool:
    return driver.execute_script("return !document.getElementById('result').classList.contains('hidden')")


def test_the_page_in_a_real_browser(server, browser, clip, tmp_path):
    from selenium.webdriver.common.by import By

    url, model = server
    path, words = clip
    browser.get(url)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#legend .sw")) == len(EMOTIONS), 30, "the colour legend")

    # a real clip, with its words typed in
    browser.find_element(By.ID, "words-input").send_keys(words)
    _upload(browser, path)
    _wait(browser, _result_shown, what="the analysis of a RAVDESS clip")
    segments = browser.find_elements(By.CSS_SELECTOR, "#transcript .segment")
    assert segments, "no transcript segment on the page"
    assert all(s.get_attribute("data-emotion") in EMOTIONS for s in segments)
    assert words in browser.find_element(By.ID, "transcript").text
    assert "confidence" in segments[0].text
    tinted = browser.execute_script("return getComputedStyle(document.querySelector('#transcript .segment')).backgroundColor")
    assert tinted.startswith("rgba(") and tinted != "rgba(0, 0, 0, 0)"
    _wait(browser, lambda d: d.execute_script("const i = document.getElementById('timeline'); return i.complete && i.naturalWidth > 300"),
          30, "the timeline picture")
    assert "not felt" in browser.find_element(By.ID, "caveat").text.lower()
    assert browser.find_element(By.ID, "description").text.strip()
    overall = browser.find_element(By.CSS_SELECTOR, "#overall .chip").text
    assert overall in EMOTIONS
    href = browser.find_element(By.ID, "download-json").get_attribute("href")
    report = browser.execute_script("return fetch(arguments[0]).then(r => r.json())", href)
    assert report["overall"]["emotion"] == overall and report["source"] == path.name

    # the chat: the reply with the affect and, toggled on, the same model's reply without it
    browser.find_element(By.ID, "compare-toggle").click()
    browser.find_element(By.ID, "chat-input").send_keys("How do I sound to you?")
    browser.find_element(By.ID, "chat-send").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-log .reply.plain"), 60, "the chat replies")
    assert WITH_AFFECT in browser.find_element(By.CSS_SELECTOR, "#chat-log .reply.affect").text
    assert WORDS_ONLY in browser.find_element(By.CSS_SELECTOR, "#chat-log .reply.plain").text
    assert "Affect of the whole recording" in model.calls[0][1].text and words in model.calls[0][1].text
    shot = tmp_path / "web-demo.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    # a non-audio file: the core's message in the page, no traceback
    junk = tmp_path / "notes.txt"
    junk.write_text("these are notes, not a recording\n" * 50)
    _upload(browser, junk)
    _wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed(), 60, "the error message")
    error = browser.find_element(By.ID, "error").text
    assert "notes.txt is not an audio file" in error and "Traceback" not in error
    assert not _result_shown(browser)
    browser.save_screenshot(str(tmp_path / "web-demo-error.png"))

    # still serving: the clip again
    _upload(browser, path)
    _wait(browser, _result_shown, what="the second analysis")
    assert not browser.find_element(By.ID, "error").is_displayed()


def test_recording_from_the_microphone_is_analysed(server, mic_browser, clip):
    """Record (MediaRecorder, Chromium's fake microphone), stop: the recording is uploaded as WebM/Ogg and the
    page ends with the server's answer - a result, or the core's message about that audio - never a lost upload."""
    from selenium.webdriver.common.by import By

    url, _ = server
    browser = mic_browser
    browser.get(url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#legend .sw"), 30, "the colour legend")
    button = browser.find_element(By.ID, "record-btn")
    button.click()
    _wait(browser, lambda d: "recording" in button.get_attribute("class"), 30, "the recording to start")
    time.sleep(2.5)
    button.click()
    _wait(browser, lambda d: _result_shown(d) or d.find_element(By.ID, "error").is_displayed(), 120, "the recording's analysis")
    status = browser.find_element(By.ID, "status").text
    error = browser.find_element(By.ID, "error").text
    if _result_shown(browser):
        assert status.startswith("Analysed recording.") and browser.find_elements(By.CSS_SELECTOR, "#transcript .segment")
    else:  # e.g. no ffmpeg for WebM, or the test signal is not speech: the core's message, from the server
        assert "recording." in error and "did not reach" not in error and "Traceback" not in error
