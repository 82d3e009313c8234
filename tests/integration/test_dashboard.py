"""The dashboard in a real browser (headless Chromium), against a real 3-node testnet.

The nodes challenge each other every couple of seconds (tests/support/challenges.jsonl), so the ledger
moves and the reputation chart has something to show. The page must load with no console error, show
every peer, show the winner of a round asked through its box as soon as the round is over, and follow
the reputation as it changes. A screenshot of the page with the finished round is kept in
.artifacts/dashboard.png for a person to look at.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from testnet.process import NodeProcess
from testnet.testnet import Testnet
from tests.support.observe import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:  # said before any node starts
    pytest.skip(
        "no Chromium here: apt-get install chromium chromium-driver (scripts/setup.sh does, as root)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="no selenium here: pip install -e .[dev]")
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow

SMOLLM, GEMMA, QWEN = "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"
EASY = Path(__file__).parents[1] / "support" / "challenges.jsonl"
QUESTION = "What is the capital of Italy? Answer in one word."
ARTIFACTS = Path(__file__).parents[2] / ".artifacts"
PAGE_BUDGET = 200 * 1024  # bytes: the page, its script, its style and its icon
SLACK_S = 5.0  # from the click to the round starting, and from its end to the page drawing it


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    directory = tmp_path_factory.mktemp("dashboard")
    with Testnet(3, [SMOLLM, GEMMA, QWEN], directory, challenge_interval=2, challenge_file=EASY) as testnet:
        yield testnet


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1500,1300")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def errors(driver: Any) -> list[dict[str, Any]]:
    """What the browser logged at error level since the last call: failed loads, exceptions, errors."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


# The page redraws its panels as events come: it is read in one script, never element by element.
def shown_peers(driver: Any) -> set[str]:
    peers = "return [...document.querySelectorAll('#peers-body .peer')].map(e => e.title)"
    return set(driver.execute_script(peers))


def eligible(driver: Any) -> set[str]:
    """The peers the reputation table shows holding a say in some domain (a domain tag marked good)."""
    return set(
        driver.execute_script(
            "return [...document.querySelectorAll('#rep-body tr')]"
            ".filter(row => row.querySelector('.peer') && row.querySelector('.tag.good'))"
            ".map(row => row.querySelector('.peer').title)"
        )
    )


def text(driver: Any, element_id: str) -> str | None:
    """What the element shows, or None while there is no such element."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e && e.innerText", element_id
    )


def screenshot(driver: Any, path: Path) -> None:
    """The whole page, beyond the window too."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))


def chart_moved_at(driver: Any) -> float:
    """When the reputation chart last took a sample (0: it has none yet)."""
    return float(driver.find_element(By.ID, "rep-chart").get_attribute("data-last") or 0)


def test_the_page_shows_the_network_a_round_asked_through_it_and_the_reputation(
    net: Testnet, browser: Any
) -> None:
    gateway = net.nodes[0]
    browser.get(f"{gateway.url}/")
    everyone = {n.peer_id for n in net.nodes}
    wait_for(lambda: shown_peers(browser) >= everyone, 30, "every peer in the network panel")
    wait_for(lambda: text(browser, "live") == "live", 30, "the live stream")

    # Everything the page loaded came from the node, and not much of it.
    loaded = browser.execute_script(
        "return performance.getEntries()"
        ".filter(e => e.entryType === 'navigation' || e.entryType === 'resource')"
        ".map(e => [e.name, e.encodedBodySize || 0])"
    )
    origins = {urlsplit(name).netloc for name, _ in loaded}
    assert origins == {urlsplit(gateway.url).netloc}, loaded
    assets = sum(size for name, size in loaded if urlsplit(name).path == "/" or "/dashboard/" in name)
    assert 0 < assets < PAGE_BUDGET, loaded

    # The reputation chart follows the ledger as the challenges move it, until every peer has a say.
    wait_for(lambda: chart_moved_at(browser) > 0, 240, "a first sample on the reputation chart")
    first = chart_moved_at(browser)
    wait_for(lambda: chart_moved_at(browser) > first, 120, "the reputation chart moving on")
    wait_for(lambda: eligible(browser) >= everyone, 240, "every peer eligible in the reputation table")

    # A question asked through the box: its winner is on the page once the round is over.
    browser.find_element(By.ID, "ask-question").send_keys(QUESTION)
    tokens = browser.find_element(By.ID, "ask-tokens")
    tokens.clear()
    tokens.send_keys("12")
    browser.find_element(By.ID, "ask-button").click()
    waited = wait_for(lambda: text(browser, "round-winner") is not None, 600, "the round's winner")
    rounds = httpx.get(f"{gateway.url}/v1/dashboard/rounds", timeout=30).json()["rounds"]
    ours = next(r for r in rounds if r["question"] == QUESTION)
    report = httpx.get(f"{gateway.url}/v1/dashboard/rounds/{ours['round_id']}", timeout=30).json()["report"]
    took_s = sum(report["timings_ms"].values()) / 1000
    assert waited <= took_s + SLACK_S, (waited, report["timings_ms"])
    answer = next(c for c in report["candidates"] if c["id"] == report["answered_by"]["candidate"])
    assert (text(browser, "round-winner") or "").split() == answer["answer"].split()
    # The round's candidates, each with its strength, and the votes between them.
    shown = text(browser, "round-body") or ""
    assert all(c["id"] in shown and c["model"] in shown for c in report["candidates"])
    assert all(f"{c['bt_score']:.2f}" in shown for c in report["candidates"] if c["bt_score"] is not None)
    if report["votes"]:
        assert browser.execute_script("return !!document.querySelector('#round-body table.matrix')")
    wait_for(lambda: text(browser, "ask-winner") is not None, 60, "the answer in the box")

    assert errors(browser) == []
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot(browser, ARTIFACTS / "dashboard.png")

    # A click on the round opens its provenance: the commitments' and the ballots' signatures.
    row = f'#rounds-body tr[data-round="{ours["round_id"]}"]'
    browser.execute_script("document.querySelector(arguments[0]).click()", row)
    wait_for(lambda: "signature" in (text(browser, "prov-body") or ""), 30, "the provenance")
    provenance = text(browser, "prov-body") or ""
    assert all(c["commitment"]["signature"] in provenance for c in report["candidates"])
    assert all(b["signature"] in provenance for b in report["ballots"])
    assert errors(browser) == []


def test_a_node_with_keys_has_the_page_ask_for_one_and_send_it(tmp_path: Path, browser: Any) -> None:
    key = "dashboard-secret"
    args = ("--model", SMOLLM, "--api-key", key, "--no-ledger", "--context-length", "1024")
    with NodeProcess(tmp_path / "keyed", *args) as node:
        assert httpx.get(f"{node.url}/v1/dashboard/node", timeout=10).status_code == 401
        browser.get(f"{node.url}/")
        wait_for(lambda: browser.find_element(By.ID, "keydialog").is_displayed(), 30, "the key dialog")
        browser.find_element(By.ID, "key-input").send_keys(key + "\n")
        wait_for(lambda: SMOLLM in (text(browser, "models-body") or ""), 30, "the node's model")
        # The live stream carries the key too.
        wait_for(lambda: text(browser, "live") == "live", 30, "the live stream")
        # The page met the node's 401 before it had a key, and nothing else went wrong.
        assert all("401" in entry["message"] for entry in errors(browser)), errors(browser)
