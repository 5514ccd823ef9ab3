"""The dashboard in a real headless browser: three node processes, Debian's Chromium.

With Selenium (``chromium`` + ``chromium-driver``, PyPI ``selenium``, no download: Selenium
Manager is kept offline): the peers table lists both peers, the mesh picture has three nodes,
a killed peer turns Offline on the page within 5 s, a busy main scheduler is said so, the
browser's console has no error, and a screenshot is kept (in ``$PYCOS_TEST_ARTIFACTS`` when
set, else the test's temporary directory). Without Selenium, the browser alone
(``--dump-dom``) still checks that the page fills itself. Skipped, saying why, when Chromium or
Selenium is missing — unless ``PYCOS_REQUIRE_BROWSER=1`` (CI), where a browser test that cannot
run fails: a skipped browser test is a test that cannot fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("PYCOS_REQUIRE_BROWSER") != "1":  # CI: a missing h11 fails, never skips
    pytest.importorskip("h11", reason="the dashboard needs h11: pip install 'pycos[dashboard]'")

from test_dashboard_http import DashNode, get_json, wait_until  # noqa: E402 - beside this file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("PYCOS_REQUIRE_BROWSER") == "1"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--window-size=1280,1700"]


@pytest.fixture
def dash_node(tmp_path: Path) -> Iterator[Callable[..., DashNode]]:
    made: list[DashNode] = []

    def start(**opts: Any) -> DashNode:
        node = DashNode(tmp_path / f"dash{len(made)}.log", **opts)
        made.append(node)
        return node

    try:
        yield start
    finally:
        for node in made:
            node.stop()


def need(ok: bool, why: str) -> None:
    """Skip (or, with PYCOS_REQUIRE_BROWSER=1, fail) when ``ok`` is false."""
    if ok:
        return
    if REQUIRED:
        pytest.fail(f"{why}, and PYCOS_REQUIRE_BROWSER=1 says the browser test must run")
    pytest.skip(why)


def artifact(tmp_path: Path, name: str) -> Path:
    where = os.environ.get("PYCOS_TEST_ARTIFACTS")
    folder = Path(where) if where else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def three_nodes(dash_node: Any, node_procs: Any) -> tuple[Any, Any, Any]:
    """The dashboard node and two peers, once the dashboard shows both and the mesh."""
    dash = dash_node(name="dash")
    b = node_procs("--name", "peerB", "--peer", f"127.0.0.1:{dash.port}")
    c = node_procs("--name", "peerC", "--peer", f"127.0.0.1:{dash.port}")
    wait_until(lambda: get_json(dash.dash_port, "/api/v1/peers")["peers"]["total"] == 2)
    wait_until(lambda: len(get_json(dash.dash_port, "/api/v1/graph")["nodes"]) == 3)
    return dash, b, c


def chrome(tmp_path: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag.replace("--headless", "--headless=new"))
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(DRIVER)), options=options)


def test_the_page_in_chromium_with_selenium(dash_node: Any, node_procs: Any,
                                            tmp_path: Path) -> None:
    need(CHROMIUM is not None and DRIVER is not None,
         "chromium and chromium-driver are not installed "
         "(apt-get install -y chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        need(False, "selenium is not installed (pip install selenium)")
    from selenium.webdriver.common.by import By

    dash, _b, c = three_nodes(dash_node, node_procs)
    driver = chrome(tmp_path)
    try:
        driver.set_page_load_timeout(20)
        driver.get(dash.url)

        def rows(state: str) -> list[Any]:
            return driver.find_elements(By.CSS_SELECTOR,
                                        f"#peers-table tbody tr[data-state='{state}']")

        wait_until(lambda: len(rows("Online")) == 2, timeout=10)
        names = sorted(r.get_attribute("data-name") for r in rows("Online"))
        assert names == ["peerB", "peerC"]
        wait_until(lambda: len(driver.find_elements(
            By.CSS_SELECTOR, "#graph-box svg g.node circle")) == 3, timeout=10)
        body = driver.find_element(By.TAG_NAME, "body")
        first_paint = float(body.get_attribute("data-first-paint"))
        assert 0 < first_paint < 3000, first_paint  # the target (500 ms) is the benchmark's
        assert driver.find_element(By.ID, "node-name").text == "dash"
        driver.save_screenshot(str(artifact(tmp_path, "dashboard.png")))
        assert artifact(tmp_path, "dashboard.png").stat().st_size > 10_000
        c.kill()
        killed = time.monotonic()
        wait_until(lambda: [r for r in rows("Offline")
                            if r.get_attribute("data-name") == "peerC"], timeout=5, step=0.05)
        assert time.monotonic() - killed <= 5.0
        dash.call("burn", 4)
        wait_until(lambda: driver.find_element(By.ID, "busy").is_displayed(), timeout=6)
        banner = driver.find_element(By.ID, "busy").text
        assert re.match(r"main scheduler busy for \d+\.\d s", banner), banner
        wait_until(lambda: not driver.find_element(By.ID, "busy").is_displayed(), timeout=10)
        assert body.get_attribute("data-state") == "live"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def test_the_page_fills_itself_in_chromium_alone(dash_node: Any, node_procs: Any,
                                                 tmp_path: Path) -> None:
    need(CHROMIUM is not None, "chromium is not installed (apt-get install -y chromium)")
    dash, _b, _c = three_nodes(dash_node, node_procs)
    assert CHROMIUM is not None
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=4000", "--dump-dom", dash.url],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert 'data-state="live"' in dom, dom[:2000]
    assert len(re.findall(r'<tr class="online" data-name="peer[BC]" data-state="Online">',
                          dom)) == 2
    assert len(re.findall(r'<g class="node"', dom)) == 3
