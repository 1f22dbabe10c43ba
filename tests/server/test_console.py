"""The credit-office console in a real browser (Debian's chromium, headless, driven by its
chromedriver) against a served demo database: a subject lookup with its entries, checks
and feedback, then the loop report with its chart; a screenshot lands in var/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.fixtures import run_gateway
from tests.server.conftest import Server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium, "chromium is missing: `make test` installs Debian's packages"
    assert driver, "chromedriver is missing: `make test` installs Debian's chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,1400", "--lang=zh-CN"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield browser
    finally:
        browser.quit()


def test_a_credit_office_looks_up_a_subject_and_reads_the_loop_report(
    tmp_path: Path, browser: WebDriver
) -> None:
    db = tmp_path / "demo.db"
    demo = run_gateway(db, "demo", "--db", str(db), "--subjects", "2000", "--no-serve")
    assert demo.returncode == 0, demo.stderr
    key = re.search(r"Demo key \(shown once\): (\S+)", demo.stdout).group(1)  # type: ignore[union-attr]
    restricted = re.search(r"uscc=(\w{18})&matter=bidding", demo.stdout).group(1)  # type: ignore[union-attr]
    server = Server(db).start()
    try:
        auth = {"Authorization": f"Bearer {key}"}
        checks = [
            httpx.get(
                f"{server.url}/v1/check",
                params={"uscc": restricted, "matter": "bidding"},
                headers=auth,
                timeout=5,
            ).json()
            for _ in range(2)
        ]
        applied = [m["code"] for m in checks[0]["measures"] if m["state"] == "apply"]
        posted = httpx.post(
            f"{server.url}/v1/checks/{checks[0]['check_id']}/feedback",
            json={"measures": [{"code": c, "executed": True} for c in applied]},
            headers=auth,
            timeout=5,
        )
        assert posted.status_code == 201, posted.text

        browser.get(f"{server.url}/console")
        assert "信用办控制台" in browser.title
        browser.find_element(By.ID, "key").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        browser.find_element(By.ID, "uscc").send_keys(restricted)
        browser.find_element(By.CSS_SELECTOR, "#subject-form button").click()
        wait = WebDriverWait(browser, 10)
        wait.until(lambda b: b.find_element(By.ID, "subject").is_displayed())
        wait.until(lambda b: "…" not in b.find_element(By.ID, "checks").text)
        entries = browser.find_element(By.ID, "entries").text
        assert "court_defaulter" in entries
        assert "有效" in entries
        recent = browser.find_element(By.ID, "checks").text
        assert recent.count("限制") == 2
        assert "已反馈" in recent
        assert "待反馈" in recent

        browser.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]").click()
        wait.until(lambda b: b.find_element(By.ID, "report").is_displayed())
        table = browser.find_element(By.ID, "report-table").text
        assert "北京" in table or "法院" in table  # grouped by listing authority
        assert browser.find_elements(By.CSS_SELECTOR, "#chart rect.checks")
        assert not browser.find_element(By.ID, "report-error").is_displayed()
        shot = REPO / "var" / "console.png"
        shot.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        server.stop()


def test_the_console_files_are_served_with_their_types_and_a_strict_policy(
    tmp_path: Path,
) -> None:
    from litestar.testing import TestClient

    from gateway.app import create_app
    from gateway.settings import Settings

    with TestClient(create_app(Settings(db=str(tmp_path / "g.db")))) as client:
        for path, media in (
            ("/console", "text/html; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
        ):
            response = client.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"] == media
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
