"""The web console (GET /ui/) in a real headless Chromium against a real `qstore serve` subprocess.

One server and one browser serve the whole module. Data goes in through the API client, and
every figure the console shows is checked against the same call made through the client.
Each test saves a PNG of its view under its tmp_path.
"""
from __future__ import annotations

import asyncio
import glob
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomllib

from qstore_client import AsyncClient
from qstore_client.errors import QStoreError
from qstore_server.console import STATIC
from tests.servers import ServerProcess
from tests.ui.browser import launch, screenshot, script_errors, table, wait

REPO = Path(__file__).resolve().parents[2]
ADMIN, WRITER, READER = "console-admin-key", "console-writer-key", "console-reader-key"
DIM = 4


def api(server: ServerProcess, fn: Any, key: str = ADMIN) -> Any:
    """Run `await fn(client)` with a fresh client holding `key`."""
    async def go() -> Any:
        async with AsyncClient(server.url, api_key=key) as client:
            return await fn(client)
    return asyncio.run(go())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("console") / "data", write_key=ADMIN, read_key=READER,
                         keys={WRITER: "write"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = launch()
    yield driver
    driver.quit()


def open_console(driver: Any, server: ServerProcess, view: str, key: str = ADMIN) -> Any:
    """Load /ui/#view, enter `key` as a user would (typing, then Enter) and wait for its access."""
    driver.get("about:blank")  # a fresh page, not a same-document hash change
    driver.get(f"{server.url}/ui/#{view}")
    driver.execute_script("sessionStorage.clear()")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "true", "the console to start")
    field = driver.find_element("id", "api-key")
    field.clear()
    field.send_keys(key + "\n")
    expected = {ADMIN: "read, write and admin", WRITER: "read and write", READER: "read only"}[key]
    wait(driver, lambda d: d.find_element("id", "access").text == f"Access: {expected}", f"access {expected}")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "true", f"the {view} view")
    return driver


def fill(driver: Any, form: str, **values: Any) -> None:
    """Type into a form's fields (selects by visible value), as a keyboard user would."""
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        el = driver.find_element("css selector", f"{form} [name={name}]")
        if el.tag_name == "select":
            Select(el).select_by_value(str(value))
        else:
            el.clear()
            el.send_keys(str(value))


def submit(driver: Any, form: str) -> None:
    driver.find_element("css selector", f"{form} button[type=submit]").click()


def error_text(driver: Any) -> str:
    box = driver.find_element("id", "error")
    return "" if box.get_attribute("hidden") is not None else box.text


def no_errors(driver: Any) -> None:
    assert error_text(driver) == "", error_text(driver)
    assert script_errors(driver) == []


@pytest.fixture(scope="module")
def docs(server: ServerProcess, browser: Any) -> dict[str, Any]:
    """The "docs" collection: created in the console, then filled through the API with plain,
    superposed, expiring and entangled records."""
    open_console(browser, server, "collections")
    fill(browser, "#create-form", name="docs", dim=DIM, metric="cosine", index_type="hnsw", m=16, ef_search=32)
    submit(browser, "#create-form")
    wait(browser, lambda d: any(r[0] == "docs" for r in table(d, "#collections-table")), "docs to be listed")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, DIM)).astype(np.float32)
    ids = [f"doc-{i:02d}" for i in range(30)]
    bank = rng.normal(size=(2, DIM)).astype(np.float32)

    async def seed(client: AsyncClient) -> dict[str, Any]:
        col = await client.collection("docs")
        await col.upsert(ids, vectors, metadata=[{"lang": "de" if i % 3 == 0 else "en", "i": i} for i in range(30)])
        await col.superpose("bank", [(bank[0], "finance", 0.8), (bank[1], "river", 0.6)], metadata={"lang": "en"})
        await col.upsert(["brief"], rng.normal(size=(1, DIM)), metadata=[{"lang": "en"}], coherence_time=900.0)
        await col.entangle("pair", ["doc-01", "doc-02"], strength=0.7)
        await col.entangle("trio", ["doc-01", "doc-04", "bank"], strength=0.25)
        return {"info": await col.info(), "rho_12": await col.correlation("doc-01", "doc-02"),
                "rho_14": await col.correlation("doc-01", "doc-04"), "bank": (await col.get(["bank"]))[0]}

    return {"ids": ids, "vectors": vectors, **api(server, seed)}


def test_collections_view_lists_creates_and_drops(server: ServerProcess, browser: Any, docs: dict[str, Any],
                                                  tmp_path: Path) -> None:
    driver = open_console(browser, server, "collections")
    info = docs["info"]
    wait(driver, lambda d: any(r[0] == "docs" and r[3] == str(info["count"]) for r in table(d, "#collections-table")),
         "the record count")
    row = next(r for r in table(driver, "#collections-table") if r[0] == "docs")
    assert row[:4] == ["docs", str(DIM), "cosine", "32"] and info["count"] == 32
    assert row[4].startswith("hnsw (") and "m=16" in row[4] and "ef_search=32" in row[4]
    assert info["index"]["m"] == 16 and info["index"]["ef_search"] == 32  # what the form sent is what the server holds
    assert row[5:8] == [str(info["indexed_vectors"]), str(info["tombstones"]), "never"]

    # A collection with expiry, created and then dropped in the console, with confirmation.
    fill(driver, "#create-form", name="scratch", dim=3, metric="l2", coherence_time=60, on_decohere="collapse")
    submit(driver, "#create-form")
    wait(driver, lambda d: any(r[0] == "scratch" for r in table(d, "#collections-table")), "scratch to be listed")
    scratch = next(r for r in table(driver, "#collections-table") if r[0] == "scratch")
    assert scratch[2] == "l2" and scratch[7] == "60 s, then collapse"
    screenshot(driver, tmp_path / "collections.png")
    drop = driver.find_element("xpath", "//tr[th='scratch']//button[text()='Drop…']")
    drop.click()
    dialog = driver.find_element("id", "drop-dialog")
    assert dialog.get_attribute("open") is not None
    driver.find_element("id", "drop-confirm").send_keys("scratc\n")  # wrong name: nothing is dropped
    wait(driver, lambda d: "type scratch to confirm" in error_text(d), "the refusal")
    assert "scratch" in api(server, lambda c: c.list_collections())
    drop = driver.find_element("xpath", "//tr[th='scratch']//button[text()='Drop…']")
    drop.click()
    driver.find_element("id", "drop-confirm").send_keys("scratch\n")
    wait(driver, lambda d: all(r[0] != "scratch" for r in table(d, "#collections-table")), "scratch to go")
    assert api(server, lambda c: c.list_collections()) == ["docs"]
    no_errors(driver)


def test_records_scroll_filter_and_open_a_superposed_record(server: ServerProcess, browser: Any,
                                                            docs: dict[str, Any], tmp_path: Path) -> None:
    driver = open_console(browser, server, "records")
    fill(driver, "#records-form", collection="docs", limit=10)
    submit(driver, "#records-form")
    wait(driver, lambda d: len(table(d, "#records-table")) == 10, "the first page")
    more = driver.find_element("id", "records-more")
    while more.is_enabled():
        n = len(table(driver, "#records-table"))
        more.click()
        wait(driver, lambda d, n=n: len(table(d, "#records-table")) > n or not more.is_enabled(), "the next page")

    async def scroll_all(client: AsyncClient, filter: Any = None) -> list[str]:
        col, out, cursor = await client.collection("docs"), [], None
        while True:
            page = await col.scroll(limit=100, cursor=cursor, filter=filter)
            out += [r.id for r in page.records]
            if (cursor := page.next_cursor) is None:
                return out

    assert [r[0] for r in table(driver, "#records-table")] == api(server, scroll_all)

    fill(driver, "#records-form", limit=50, filter='{"lang": "de"}')
    submit(driver, "#records-form")
    german = api(server, lambda c: scroll_all(c, {"lang": "de"}))
    assert len(german) == 10
    wait(driver, lambda d: [r[0] for r in table(d, "#records-table")] == german, "the filtered records")

    # An expiring record counts down.
    fill(driver, "#records-form", filter="")
    submit(driver, "#records-form")
    wait(driver, lambda d: len(table(d, "#records-table")) == 32, "every record")
    driver.find_element("xpath", "//table[@id='records-table']//button[text()='brief']").click()
    wait(driver, lambda d: d.find_element("id", "record-title").text == "Record brief", "brief to open")
    left = float(wait(driver, lambda d: d.find_element("id", "record-expiry").text, "the countdown")
                 .split("Expires in ")[1].split(" s")[0])
    assert 0 < left <= 900
    wait(driver, lambda d: float(d.find_element("id", "record-expiry").text.split("Expires in ")[1].split(" s")[0])
         < left, "the countdown to tick")

    # The superposed record: its branches with |α|², and its entanglement.
    driver.find_element("xpath", "//table[@id='records-table']//button[text()='bank']").click()
    wait(driver, lambda d: d.find_element("id", "record-title").text == "Record bank", "bank to open")
    assert driver.switch_to.active_element.get_attribute("id") == "record-title"  # focus follows the user
    branches = table(driver, "#branches-table")
    expected = {b.context: b.probability for b in docs["bank"].branches}
    assert [r[0] for r in branches] == ["finance", "river"]
    assert expected == pytest.approx({"finance": 0.64, "river": 0.36})
    assert [r[2] for r in branches] == ["64.0%", "36.0%"]
    meters = driver.find_elements("css selector", "#branches-table [role=meter]")
    assert [float(m.get_attribute("aria-valuenow")) for m in meters] == pytest.approx([0.64, 0.36])
    assert driver.find_element("id", "record-expiry").text == "Does not expire."
    wait(driver, lambda d: table(d, "#partners-table") == [["doc-01", "0.250"], ["doc-04", "0.250"]], "bank's partners")
    screenshot(driver, tmp_path / "records.png")

    driver.find_element("xpath", "//table[@id='records-table']//button[text()='doc-01']").click()
    wait(driver, lambda d: d.find_element("id", "record-title").text == "Record doc-01", "doc-01 to open")
    rho = docs["rho_12"]
    assert rho == pytest.approx(0.7) and docs["rho_14"] == pytest.approx(0.25)
    wait(driver, lambda d: table(d, "#partners-table") == [["doc-02", f"{rho:.3f}"], ["bank", "0.250"],
                                                          ["doc-04", "0.250"]], "doc-01's partners")
    no_errors(driver)


def hits_in(driver: Any) -> list[tuple[str, float, str]]:
    return [(r[1], float(r[2]), r[3]) for r in table(driver, "#search-table")]


def test_search_by_record_by_vector_and_with_tunneling(server: ServerProcess, browser: Any, docs: dict[str, Any],
                                                       tmp_path: Path) -> None:
    driver = open_console(browser, server, "search")

    async def query(client: AsyncClient, vector: Any, **kw: Any) -> list[Any]:
        return await (await client.collection("docs")).query(vector, **kw)

    fill(driver, "#search-form", collection="docs", record="doc-05", top_k=5)
    submit(driver, "#search-form")
    expected = api(server, lambda c: query(c, docs["vectors"][5], top_k=5))
    wait(driver, lambda d: [h[0] for h in hits_in(d)] == [h.id for h in expected], "hits by record")
    assert [h[1] for h in hits_in(driver)] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert hits_in(driver)[0][0] == "doc-05" and {h[2] for h in hits_in(driver)} == {"plain search"}

    vector = [0.5, -1.0, 0.25, 2.0]
    driver.find_element("css selector", "#search-form [value=vector]").click()
    fill(driver, "#search-form", vector=str(vector), filter='{"lang": "de"}', top_k=4)
    submit(driver, "#search-form")
    expected = api(server, lambda c: query(c, vector, top_k=4, filter={"lang": "de"}))
    wait(driver, lambda d: [h[0] for h in hits_in(d)] == [h.id for h in expected], "hits by pasted vector")
    assert all(h.metadata["lang"] == "de" for h in expected) and len(expected) == 4

    # Superposed records score by the branches of one context when a context is given.
    finance = docs["bank"].branches[0].vector.tolist()
    fill(driver, "#search-form", vector=str(finance), filter="", context="finance", top_k=3)
    submit(driver, "#search-form")
    expected = api(server, lambda c: query(c, finance, top_k=3, context="finance"))
    wait(driver, lambda d: [h[0] for h in hits_in(d)] == [h.id for h in expected], "hits in one context")
    assert expected[0].id == "bank" and hits_in(driver)[0][1] == pytest.approx(expected[0].score, abs=1e-5)
    driver.find_element("css selector", "#search-form [name=context]").clear()

    fill(driver, "#search-form", vector=str(vector), top_k=10, tunneling=8, seed=3)
    submit(driver, "#search-form")
    tunneled = api(server, lambda c: query(c, vector, top_k=10, tunneling=8.0, seed=3))
    plain = {h.id for h in api(server, lambda c: query(c, vector, top_k=10))}
    wait(driver, lambda d: [h[0] for h in hits_in(d)] == [h.id for h in tunneled], "tunneling hits")
    regions = {h[0]: h[2] for h in hits_in(driver)}
    far = [h.id for h in tunneled if h.id not in plain]
    assert far, "this seed should enter a far region"
    assert regions == {h.id: "far region (tunneled)" if h.id in far else "near (in plain top_k)" for h in tunneled}
    assert f"{len(far)} from far regions" in driver.find_element("id", "search-summary").text
    screenshot(driver, tmp_path / "search.png")
    no_errors(driver)

    # A server refusal shows its code and message.
    fill(driver, "#search-form", vector="[1, 2]")
    submit(driver, "#search-form")
    wait(driver, lambda d: error_text(d).startswith("dimension_mismatch (HTTP 400):"), "the error")


def test_training_job_curve_grows_and_cancel(server: ServerProcess, browser: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(48, 2))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(np.int64)
    api(server, lambda c: c.import_dataset("halves", X, y))
    driver = open_console(browser, server, "training")
    wait(driver, lambda d: "halves" in d.find_element("id", "train-dataset").text, "the dataset choice")

    # A short run to the end: curve, table and checkpoints agree with the server's run record.
    fill(driver, "#train-form", dataset="halves", epochs=3, batch_size=16, run="short")
    submit(driver, "#train-form")
    wait(driver, lambda d: d.find_element("id", "watch-state").text == "succeeded", "the short run", timeout=120)
    record = next(d for d in api(server, lambda c: c.list_checkpoints("short")) if d["kind"] == "run")
    epochs = table(driver, "#epochs-table")
    assert [r[0] for r in epochs] == ["1", "2", "3"] and len(record["metrics"]["loss"]) == 3
    assert [float(r[1]) for r in epochs] == pytest.approx(record["metrics"]["loss"], rel=1e-3)
    assert [float(r[2]) for r in epochs] == pytest.approx(record["metrics"]["accuracy"], rel=1e-3)
    assert driver.find_element("id", "watch-chart").get_attribute("data-points") == "3"
    wait(driver, lambda d: any(r[0] == "short" for r in table(d, "#runs-table")), "the finished run")
    short = next(r for r in table(driver, "#runs-table") if r[0] == "short")
    assert short[5].split(", ") == record["checkpoints"] and len(record["checkpoints"]) == 3

    # A long run: watch the curve grow, then cancel it from the console.
    fill(driver, "#train-form", epochs=5000, batch_size=8, run="long")
    submit(driver, "#train-form")
    wait(driver, lambda d: d.find_element("id", "watch-title").text.startswith("Run long"), "the long run")
    seen: list[int] = []

    def grown(d: Any) -> bool:
        points = int(d.find_element("id", "watch-chart").get_attribute("data-points"))
        if not seen or points != seen[-1]:
            seen.append(points)
        return len([p for p in seen if p > 0]) >= 3

    wait(driver, grown, "the curve to grow", timeout=120)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # only ever grows
    assert len(table(driver, "#epochs-table")) >= seen[-1]
    screenshot(driver, tmp_path / "training.png")
    driver.find_element("id", "watch-cancel").click()
    wait(driver, lambda d: d.find_element("id", "watch-state").text == "cancelled", "the cancellation")
    jobs = api(server, lambda c: c.list_jobs())
    long_job = next(j for j in jobs if j.params.get("run") == "long")
    assert long_job.state == "cancelled" and long_job.error.code == "cancelled"
    done = next(d for d in api(server, lambda c: c.list_checkpoints("long")) if d["kind"] == "run")
    assert 3 <= done["epoch"] < 5000
    wait(driver, lambda d: any(r[0] == "long" and r[2] == str(done["epoch"]) for r in table(d, "#runs-table")),
         "the cancelled run's checkpoints")
    no_errors(driver)


def test_federated_rounds_plot_and_participants(server: ServerProcess, browser: Any, tmp_path: Path) -> None:
    from qstore.federated import Coordinator
    from qstore.federated.participant import LocalParticipant
    from qstore.training import VQC

    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(40, 2))
    y = (X[:, 0] > 0).astype(np.int64)

    async def federate(client: AsyncClient) -> list[Any]:
        # carol trains on this server's dataset "local", which does not exist: she is excluded.
        parts = [LocalParticipant((X[:20], y[:20]), name="alice"), LocalParticipant((X[20:], y[20:]), name="bob"),
                 LocalParticipant(client, name="carol")]
        coord = Coordinator(parts, dataset="local", rounds=3, min_participants=2, seed=0, db=client, run="fed-demo",
                            dp={"clip": 1.0, "noise_multiplier": 1.0}, batch_size=10)
        return await coord.run(VQC(n_qubits=2, layers=1, n_classes=2), validation=(X, y))

    history = api(server, federate)
    assert [h.status for h in history] == ["aggregated"] * 3
    driver = open_console(browser, server, "federated")
    wait(driver, lambda d: len(table(d, "#rounds-table")) == 3, "the rounds")
    rounds = table(driver, "#rounds-table")
    assert [r[0] for r in rounds] == ["1", "2", "3"]
    assert [float(r[1]) for r in rounds] == pytest.approx([h.accuracy for h in history], rel=1e-3)
    assert [float(r[3]) for r in rounds] == pytest.approx([h.epsilon for h in history], rel=1e-3)
    assert all(h.epsilon is not None and h.epsilon > 0 for h in history)
    assert history[0].epsilon < history[1].epsilon < history[2].epsilon  # privacy spent accumulates
    assert [r[4] for r in rounds] == ["40"] * 3
    assert [sorted(r[5].split(", ")) for r in rounds] == [["alice", "bob"]] * 3  # in the order they answered
    assert driver.find_element("id", "fed-chart").get_attribute("data-points") == "3"
    last = history[-1]
    people = {r[0]: r[1:] for r in table(driver, "#participants-table")}
    assert set(people) == {"alice", "bob", "carol"}
    for name in ("alice", "bob"):
        assert people[name][:2] == ["aggregated", "20"]
        assert float(people[name][2]) == pytest.approx(last.local[name]["accuracy"], rel=1e-3)
    assert people["carol"][0] == "excluded" and people["carol"][3] == last.excluded["carol"]
    assert people["carol"][3].startswith("not_found")
    screenshot(driver, tmp_path / "federated.png")
    no_errors(driver)


def test_metrics_view_counts_requests(server: ServerProcess, browser: Any, tmp_path: Path) -> None:
    driver = open_console(browser, server, "metrics")
    wait(driver, lambda d: any(r[0] == "list_collections" for r in table(d, "#requests-table")), "the request table")
    before = int(next(r for r in table(driver, "#requests-table") if r[0] == "count")[1]) \
        if any(r[0] == "count" for r in table(driver, "#requests-table")) else 0

    async def counts(client: AsyncClient) -> None:
        col = await client.collection("docs")
        for _ in range(5):
            await col.count()

    api(server, counts)
    wait(driver, lambda d: any(r[0] == "count" and int(r[1]) >= before + 5 and r[2] != "–"
                               for r in table(d, "#requests-table")), "the counted requests")
    row = next(r for r in table(driver, "#requests-table") if r[0] == "count")
    assert float(row[3]) > 0 and int(row[4]) == 0
    gauges = {(r[0], r[1]): r[2] for r in table(driver, "#gauges-table")}
    assert gauges[("qstore_records", "collection=docs")] in ("32", "32.0")
    screenshot(driver, tmp_path / "metrics.png")
    no_errors(driver)


def test_keyboard_alone_moves_between_views(server: ServerProcess, browser: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = open_console(browser, server, "collections")
    tab = driver.find_element("id", "tab-collections")
    tab.send_keys(Keys.ARROW_RIGHT)
    wait(driver, lambda d: d.switch_to.active_element.get_attribute("id") == "tab-records", "focus on Records")
    assert driver.find_element("id", "view-records").is_displayed()
    assert not driver.find_element("id", "view-collections").is_displayed()
    driver.switch_to.active_element.send_keys(Keys.END)
    wait(driver, lambda d: d.switch_to.active_element.get_attribute("id") == "tab-metrics", "focus on Metrics")
    assert driver.find_element("id", "tab-metrics").get_attribute("aria-selected") == "true"
    assert [t.get_attribute("tabindex") for t in driver.find_elements("css selector", "[role=tab]")].count("0") == 1
    # every form control has a label
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels.length"
        " && !e.getAttribute('aria-label')).map(e => e.id || e.name)")
    assert unlabelled == []


@pytest.mark.parametrize("key", [READER, WRITER])
def test_lesser_keys_hide_write_controls_and_the_server_refuses(server: ServerProcess, browser: Any,
                                                               docs: dict[str, Any], key: str,
                                                               tmp_path: Path) -> None:
    driver = open_console(browser, server, "collections", key=key)
    wait(driver, lambda d: any(r[0] == "docs" for r in table(d, "#collections-table")), "the listing")
    can_write = key == WRITER
    assert driver.find_element("id", "create-form").is_displayed() == can_write
    assert driver.find_elements("xpath", "//button[text()='Drop…']") == []  # dropping needs the admin scope
    driver.find_element("id", "tab-training").click()
    assert driver.find_element("id", "train-form").is_displayed() == can_write
    if can_write:
        return
    screenshot(driver, tmp_path / "training-read-only.png")
    # The server refuses what the hidden controls would send, and the console shows its answer.
    for key_, call in [(READER, lambda c: c.create_collection("nope", dim=2)),
                       (READER, lambda c: c.start_job("train", {"dataset": "halves"})),
                       (WRITER, lambda c: c.drop_collection("docs"))]:
        with pytest.raises(QStoreError) as refused:
            api(server, call, key=key_)
        assert refused.value.code == "forbidden"
    driver.find_element("id", "tab-collections").click()
    driver.execute_script("document.getElementById('create-form').hidden = false")
    fill(driver, "#create-form", name="nope", dim=2)
    submit(driver, "#create-form")
    wait(driver, lambda d: error_text(d).startswith("forbidden (HTTP 403):"), "the refusal")
    assert "write scope" in error_text(driver)
    assert "nope" not in api(server, lambda c: c.list_collections())


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """A plain GET that does not follow redirects: status, headers, body."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_console_files_ship_as_package_data_and_load_nothing_from_elsewhere(server: ServerProcess) -> None:
    # Every file under ui/ is matched by the package-data globs, the way setuptools expands them
    # (glob relative to the package), so a non-editable install serves the same console.
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = meta["tool"]["setuptools"]["package-data"]["qstore_server"]
    package = STATIC.parent
    packaged = {p for pattern in patterns for p in glob.glob(pattern, root_dir=package)}
    files = {p.relative_to(package).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert files and files <= packaged, files - packaged
    assert {"ui/index.html", "ui/app.js", "ui/vendor/uPlot.iife.min.js", "ui/vendor/uPlot.LICENSE.txt"} <= files

    # Served without a key (a keyed server), under a policy that allows this origin only.
    status, headers, body = get(f"{server.url}/ui/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    page = body.decode()
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(not re.match(r"[a-z]+://|//", ref) for ref in refs), refs
    for ref in refs:
        if not ref.startswith(("#", "data:")):
            status, headers, data = get(f"{server.url}/ui/{ref}")
            assert status == 200 and data == (STATIC / ref).read_bytes(), ref
    assert get(f"{server.url}/ui")[:2][0] == 308 and get(f"{server.url}/ui")[1]["Location"] == "/ui/"
    for path in ("/ui/../pyproject.toml", "/ui/%2e%2e/console.py", "/ui/nothing.js", "/ui/vendor"):
        status, _, body = get(server.url + path)
        assert status == 404 and b'"not_found"' in body, path
    assert get(f"{server.url}/v1/collections")[0] == 401  # the protocol still needs a key
