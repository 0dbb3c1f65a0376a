"""The drawing page in a real headless Chromium (Debian's chromium + chromedriver, via Selenium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_serving.ports import local_url
from serving.native.process import free_ports
from tests.conftest import REPO
from tests.gateway.helpers import gateway

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if os.environ.get("REQUIRE_BROWSER_TESTS") and not (CHROMIUM and CHROMEDRIVER):
    raise RuntimeError("REQUIRE_BROWSER_TESTS is set but chromium/chromedriver are missing")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
)
ARTIFACTS = REPO / "test-artifacts"
WAIT_S = 20


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1100,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _draw_seven(driver) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    chain = ActionChains(driver).move_to_element_with_offset(pad, -80, -90).click_and_hold()
    for dx, dy in [(40, 0), (40, 0), (40, 0), (-15, 40), (-15, 40), (-15, 40), (-15, 40)]:
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()


def _predict(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, WAIT_S).until(ec.element_to_be_clickable((By.ID, "predict")))
    _draw_seven(driver)
    driver.find_element(By.ID, "predict").click()
    WebDriverWait(driver, WAIT_S).until(
        lambda d: "answered" in d.find_element(By.ID, "status").text or "down" in d.find_element(By.ID, "status").text
    )


def _card(driver, backend: str) -> dict[str, object]:
    from selenium.webdriver.common.by import By

    card = driver.find_element(By.ID, f"result-{backend}")
    error = card.find_element(By.CLASS_NAME, "error")
    return {
        "digit": card.find_element(By.CLASS_NAME, "digit").text,
        "bars": len(card.find_elements(By.CSS_SELECTOR, ".bars li")),
        "error": error.text if error.is_displayed() else "",
        "meta": card.find_element(By.CLASS_NAME, "meta").text,
    }


def test_draw_submit_see_both_backends(browser, gw_url: str) -> None:
    from selenium.webdriver.common.by import By

    _predict(browser, gw_url)
    for backend in ("tfserving", "torchserve"):
        card = _card(browser, backend)
        assert card["digit"] in list("0123456789"), card
        assert card["bars"] == 10 and "ms" in str(card["meta"]) and not card["error"]
    assert browser.find_element(By.ID, "status").text == "Both servers answered."
    assert "agree" in browser.find_element(By.ID, "agreement").text
    # The 28x28 model input was drawn: some pixel of the small canvas is bright.
    lit = browser.execute_script(
        "const d = document.getElementById('model-input').getContext('2d').getImageData(0,0,112,112).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++; return n;"
    )
    assert lit > 50
    top_fill = browser.execute_script(
        "return document.querySelector('#result-tfserving .bars li.top .fill').getBoundingClientRect().width;"
    )
    assert top_fill > 20  # the winning bar is drawn, not just labelled
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "page-both-backends.png"))


def test_fits_a_phone_screen(browser, gw_url: str) -> None:
    browser.set_window_size(390, 844)
    try:
        _predict(browser, gw_url)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth;")
        assert overflow <= 0
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "page-phone.png"))
    finally:
        browser.set_window_size(1100, 900)


def test_page_works_with_one_backend_stopped(browser, serving_stack) -> None:
    (dead,) = free_ports(1)
    p = serving_stack.ports
    with gateway(
        tfserving_url=local_url(dead),
        torchserve_url=local_url(p.torchserve_inference),
        torchserve_management_url=local_url(p.torchserve_management),
    ) as url:
        _predict(browser, url)
        tf, ts = _card(browser, "tfserving"), _card(browser, "torchserve")
        assert "did not answer" in str(tf["error"]) and tf["bars"] == 0
        assert ts["digit"] in list("0123456789") and ts["bars"] == 10
        from selenium.webdriver.common.by import By

        assert "tfserving is down" in browser.find_element(By.ID, "status").text
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "page-one-backend-down.png"))


def test_empty_drawing_says_so(browser, gw_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(gw_url + "/")
    pad = browser.find_element(By.ID, "pad")
    pad.send_keys(Keys.ENTER)  # keyboard submit
    assert "empty" in browser.find_element(By.ID, "status").text


def test_page_is_served_without_external_resources(gw_url: str) -> None:
    import httpx

    html = httpx.get(gw_url + "/").text
    assert "http://" not in html.replace("http://127.0.0.1", "") and "https://" not in html
    for asset in ("/static/app.js", "/static/style.css"):
        assert httpx.get(gw_url + asset).status_code == 200


def test_screenshot_path_is_ignored_by_git() -> None:
    assert "/test-artifacts/" in (REPO / ".gitignore").read_text()
    assert isinstance(ARTIFACTS, Path)


def _choose_file(driver, url: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, WAIT_S).until(ec.element_to_be_clickable((By.ID, "predict")))
    driver.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(driver, WAIT_S).until(lambda d: "answered" in d.find_element(By.ID, "status").text)


def test_a_chosen_file_is_predicted_again_by_predict_not_called_an_empty_drawing(browser, gw_url: str) -> None:
    """The page predicted on file choice, then Predict said "The drawing is empty" beside that result."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _choose_file(browser, gw_url, REPO / "examples" / "digit-9.png")
    assert _card(browser, "tfserving")["digit"] == "9"
    browser.execute_script("document.getElementById('status').textContent = '';")
    browser.find_element(By.ID, "predict").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "status").text)
    status = browser.find_element(By.ID, "status").text
    assert "empty" not in status and "answered" in status, status
    assert _card(browser, "tfserving")["digit"] == "9"


def test_an_uncertain_answer_says_so(browser, gw_url: str, tmp_path: Path) -> None:
    """A letter A: the models answer something, and the page says it is uncertain."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (200, 200), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=150)
    draw.text((35, 10), "A", fill=0, font=font)
    path = tmp_path / "letter-a.png"
    img.save(path)
    _choose_file(browser, gw_url, path)
    metas = [str(_card(browser, b)["meta"]) for b in ("tfserving", "torchserve")]
    assert any("uncertain" in m for m in metas), metas
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "page-uncertain.png"))


def test_the_favicon_is_served(gw_url: str) -> None:
    import httpx

    r = httpx.get(gw_url + "/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
