"""The web console (issue 13, SPEC B4/B7) in a real browser against a real lab.

Headless Chromium (Debian's ``chromium``, README Setup) driven by Playwright's Python package with
``executable_path``: no browser download. The lab is the guide's reference lab with a restore copy
rate, so a restore lasts long enough for its progress bar. The tests run in file order on one page,
each from where the one before left it: log in, see the tree and the SRA gauge, P3's snapshot steps
from the console with each event appearing live, a restore to 100%, a product-fault icon, and the
refusals (no token, a wrong token, a cross-site POST). Screenshots go to the module's tmp folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, run_ok

from snaplab.deploy.folder import default_lab_file

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RESTORE_RATE = 2  # MiB/s: the 3 MiB written after the snapshot take about 1.5 s to restore
WAIT_MS = 15_000

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (README Setup installs Debian's chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(120)


class Console:
    """The module's lab and the browser page on its console."""

    def __init__(self, run: LabRun, ctx: Any, shots: Path) -> None:
        self.run = run
        self.ctx = ctx
        self.shots = shots
        out = run("console")
        assert out.returncode == 0, out.stdout + out.stderr
        self.url = re.search(r"^console: (\S+)$", out.stdout, re.M)[1]
        self.token = re.search(r"^token: +(\S+)$", out.stdout, re.M)[1]
        self.origin = self.url.rstrip("/")
        self.page = ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def cmd(self, host: str, line: str) -> None:
        run_ok(self.run, host, line)

    def shot(self, name: str, top: str | None = None) -> Path:
        """A screenshot of the viewport, scrolled to ``top`` (a selector), else to the page's top."""
        if top:
            self.page.evaluate("s => document.querySelector(s).scrollIntoView()", top)  # no handle: redraws
        else:
            self.page.evaluate("window.scrollTo(0, 0)")
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def confirm(self) -> str:
        """OK in the confirmation dialog; returns its text (question and warning)."""
        self.page.wait_for_selector("#confirm[open]", timeout=WAIT_MS)
        text = self.page.inner_text("#confirm")
        self.page.click("#confirm-ok")
        return text

    def rows(self) -> list[dict[str, str]]:
        """The event log's rows as the page shows them, read in one go."""
        keys = ["seq", "time", "source", "class", "operation", "id", "text"]
        cells = self.page.evaluate(
            "[...document.querySelectorAll('#events tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
        )
        return [dict(zip(keys, row, strict=True)) for row in cells]

    def last_seq(self) -> int:
        return max((int(r["seq"]) for r in self.rows()), default=0)

    def live_event(self, after: int, msg_id: str) -> dict[str, str]:
        """The first event row newer than ``after`` with ``msg_id``, as it appears in the page."""
        self.page.wait_for_function(
            "([after, id]) => [...document.querySelectorAll('#events tbody tr')].some("
            "r => +r.dataset.seq > after && r.cells[5].textContent === id)",
            arg=[after, msg_id],
            timeout=WAIT_MS,
        )
        return min((r for r in self.rows() if int(r["seq"]) > after and r["id"] == msg_id), key=lambda r: int(r["seq"]))

    def gen_row(self, bv: str, relgen: str) -> Any:
        """The row of a generation, as a locator: found again at each action (the page redraws the tree)."""
        return self.page.locator(f'#tree [data-bv="{bv}"] tr[data-relgen="{relgen}"]')

    def op(self, bv: str, relgen: str, button: str, msg_id: str) -> dict[str, str]:
        """Click an operation of a generation, confirm it, and wait for its event to appear live."""
        before = self.last_seq()
        self.gen_row(bv, relgen).locator(f"button.{button}").click()
        self.confirm()
        return self.live_event(before, msg_id)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    run = LabRun(root)
    text = default_lab_file().read_text()
    text = text.replace('product_id = "S2800"', f'product_id = "S2800"\nrestore_rate = {RESTORE_RATE}', 1)
    assert "restore_rate" in text, "the reference lab's product_id line changed; update this test"
    lab_file = run.write("console_lab.toml", text)
    shots = root / "screenshots"
    shots.mkdir()
    profile = root / "chromium-profile"  # a fresh profile: nothing of another run
    pw = ctx = None
    try:
        up = run("lab", "up", str(lab_file), timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        pw = sync_api.sync_playwright().start()
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            ignore_https_errors=True, viewport={"width": 1280, "height": 900},
            bypass_csp=True,  # the tests' own wait_for_function predicates are evaluated strings
        )
        c = Console(run, ctx, shots)
        yield c
        assert not c.errors, c.errors  # no script error in the page during the whole module
    finally:
        try:
            if ctx is not None:
                ctx.close()
            if pw is not None:
                pw.stop()
        finally:
            run.teardown()
            shutil.rmtree(profile, ignore_errors=True)


def test_refused_without_token_and_with_a_wrong_token(console: Console) -> None:
    r = console.ctx.request.get(console.url + "api/state")  # no session cookie
    assert r.status == 401 and r.json()["msg_id"] == "iSM31351"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    page = console.page
    page.goto(console.url)
    page.wait_for_selector("#login:not([hidden])", timeout=WAIT_MS)
    assert page.is_hidden("#main")
    page.click("#login-button")  # no token
    page.wait_for_selector("#login-error:has-text('iSM31350')", timeout=WAIT_MS)
    page.fill("#token", "not-the-token")
    page.click("#login-button")
    page.wait_for_function(
        "document.querySelector('#login-error').textContent.includes('token is wrong')", timeout=WAIT_MS
    )
    assert page.is_hidden("#main") and not console.ctx.cookies()
    console.shot("refused")


def test_login_shows_arrays_tree_gauge_and_hosts(console: Console) -> None:
    page = console.page
    page.fill("#token", console.token)
    page.click("#login-button")
    page.wait_for_selector('#tree [data-bv="bv001"] tr[data-sv="sv001_07"]', timeout=WAIT_MS)
    cookie = next(c for c in console.ctx.cookies() if c["name"] == "snaplab_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    array = page.locator('#arrays [data-array="Tokyo_Customer_DataBase"]')
    assert array.locator("[data-icon=ok]").count() == 1 and "ready" in array.inner_text()
    assert "DynamicSnapVolume: licensed" in array.inner_text()
    gauge = page.locator('[role=meter][aria-label="SRA of Pool0001"]')
    assert 0 <= float(gauge.get_attribute("data-percent")) < 80
    assert gauge.locator(".mark").count() == 1  # the warning threshold
    hosts = page.inner_text("#hosts")
    assert "business01" in hosts and "DBCLUSTER (active)" in hosts and "backup01" in hosts
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    console.shot("main")


def test_p3_snapshot_steps_from_the_console_each_event_live(console: Console) -> None:
    """2.2.1: the business server unmounts G:, the console makes the snapshot, guards it, links and
    unlinks lv001 (the backup in between is the backup server's) and cancels the guard."""
    page = console.page
    console.cmd("business01", "iSMrc_flush -drv G:")
    console.cmd("business01", "iSMrc_umount -drv G:")
    before = console.last_seq()
    page.click('#tree [data-bv="bv001"] button.op-cyclic')
    dialog = console.confirm()
    assert "asynchronously to business" in dialog
    ev = console.live_event(before, "iSM19010")
    assert ev["source"] == "admin" and ev["operation"] == "iSMsc_create" and "-cyclic" in ev["text"]
    console.cmd("business01", "iSMrc_mount -drv G:")
    page.wait_for_function(
        "[...document.querySelectorAll('#tree [data-bv=\"bv001\"] tr.live')].length >= 1", timeout=WAIT_MS
    )
    console.op("bv001", "-1", "op-guard", "iSM19014")
    page.wait_for_function(
        "[...document.querySelectorAll('#tree [data-bv=\"bv001\"] tr.live')].some(r => r.cells[4].textContent === 'guard')",
        timeout=WAIT_MS,
    )
    console.op("bv001", "-1", "op-link", "iSM20020")
    page.wait_for_function(
        "[...document.querySelectorAll('#tree [data-bv=\"bv001\"] tr.live')].some(r => r.cells[5].textContent === 'link lv001')",
        timeout=WAIT_MS,
    )
    console.shot("linked", '#tree [data-bv="bv001"]')
    console.op("bv001", "-1", "op-unlink", "iSM20030")
    console.op("bv001", "-1", "op-unguard", "iSM19014")
    with console.run.folder.joinpath("runtime.json").open() as f:
        assert json.load(f)["manager"]["console"] == console.url


def test_restore_shows_progress_to_100_percent(console: Console) -> None:
    page = console.page
    folder = console.run("path", "business01", "G:")
    assert folder.returncode == 0, folder.stderr
    (Path(folder.stdout.strip()) / "after_snapshot.bin").write_bytes(os.urandom(3 << 20))  # not compressible
    console.cmd("business01", "iSMrc_flush -drv G:")
    console.cmd("business01", "iSMrc_umount -drv G:")
    before = console.last_seq()
    console.gen_row("bv001", "-1").locator("button.op-restore").click()
    assert "asynchronously to business" in console.confirm()
    figures = set()
    deadline = time.monotonic() + 60
    shot = None
    while page.get_attribute("#progress", "data-done") != "yes":
        assert time.monotonic() < deadline, "the restore did not finish"
        figure = page.inner_text("#progress-figure")
        figures.add(figure)
        if shot is None and figure not in ("0%", "100%", ""):
            shot = console.shot("restoring")  # the bar midway
        time.sleep(0.1)
    assert page.inner_text("#progress-figure") == "100%"
    assert page.get_attribute("#progress-fill", "style").replace(" ", "") == "width:100%;"
    assert any(f not in ("0%", "100%") for f in figures), figures  # it moved: fed by the array
    console.live_event(before, "iSM19012")
    console.shot("restored")
    console.cmd("business01", "iSMrc_mount -drv G:")


def test_product_fault_icon_after_a_fault_inject(console: Console) -> None:
    page = console.page
    array = '#arrays [data-array="Tokyo_Customer_DataBase"]'
    page.select_option("#fault-kind", "licence")
    page.fill("#fault-target", "DynamicSnapVolume")
    before = console.last_seq()
    page.click("#fault-inject")
    console.confirm()
    page.wait_for_selector(f"{array} [data-icon=fault]", timeout=WAIT_MS)
    assert "product fault" in page.inner_text(array)
    ev = console.live_event(before, "iSM31072")
    assert "licence:DynamicSnapVolume" in ev["text"]
    console.shot("product_fault", array)
    page.click("#fault-clear")
    console.confirm()
    page.wait_for_selector(f"{array} [data-icon=ok]", timeout=WAIT_MS)


def test_cross_site_post_is_refused(console: Console) -> None:
    """A page of another site posts an operation to the console: refused, nothing done."""
    before = console.last_seq()
    evil = console.ctx.new_page()
    body = (
        f'<form id="f" method="post" action="{console.url}api/op" enctype="text/plain">'
        '<input name=\'{"op":"create","bv":"bv001","cyclic":true,"x":"\' value=\'"}\'></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    evil.route("https://evil.example/**", lambda route: route.fulfill(status=200, content_type="text/html", body=body))
    try:
        evil.goto("https://evil.example/attack", wait_until="commit")
        evil.wait_for_url(f"{console.url}api/op", timeout=WAIT_MS, wait_until="commit")
        refusal = json.loads(evil.inner_text("body"))
    finally:
        evil.close()
    assert refusal["msg_id"] == "iSM31352", refusal  # the Origin check, before anything else
    # With the session cookie but another Origin, or the right Origin but no CSRF token: refused too.
    csrf = console.page.evaluate("fetch('/api/session').then(r => r.json()).then(j => j.csrf)")
    op = {"op": "create", "bv": "bv001", "cyclic": True}
    r = console.ctx.request.post(console.url + "api/op", data=op,
                                 headers={"Origin": "https://evil.example", "X-CSRF-Token": csrf})
    assert r.status == 403 and r.json()["msg_id"] == "iSM31352"
    r = console.ctx.request.post(console.url + "api/op", data=op, headers={"Origin": console.origin})
    assert r.status == 403 and "CSRF" in r.json()["text"]
    time.sleep(0.2)
    assert console.last_seq() == before  # no operation reached the manager


def test_admin_client_certificate_logs_in_and_a_host_certificate_does_not(console: Console) -> None:
    import http.client
    import ssl

    pki = console.run.folder / "pki"
    host, port = console.origin.removeprefix("https://").rsplit(":", 1)

    def login(principal: str) -> tuple[int, dict]:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / f"{principal}.crt"), str(pki / f"{principal}.key"))
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
        try:
            conn.request("POST", "/api/login", body=b"{}", headers={"Origin": console.origin})
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    status, body = login("admin")
    assert status == 200 and body["csrf"]
    # Another name for this address (a DNS-rebinding page's): refused whatever it asks.
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": f"rebind.example:{port}"})
        r = conn.getresponse()
        assert r.status == 421 and json.loads(r.read())["msg_id"] == "iSM31352"
    finally:
        conn.close()
    status, body = login("business01")
    assert status == 401 and body["msg_id"] == "iSM31350"


def test_bad_requests_and_refused_operations_get_ism_messages(console: Console) -> None:
    csrf = console.page.evaluate("fetch('/api/session').then(r => r.json()).then(j => j.csrf)")
    headers = {"Origin": console.origin, "X-CSRF-Token": csrf}
    post = console.ctx.request.post
    for bad in ({"op": "format"}, {"op": "delete", "bv": "bv001"}, {"op": "create", "bv": 7, "cyclic": True},
                {"op": "link", "lv": "lv001", "sv": "sv001_01", "mode": "xx"}):
        r = post(console.url + "api/op", data=bad, headers=headers)
        assert r.status == 400 and r.json()["msg_id"] == "iSM31353", (bad, r.text())
    r = post(console.url + "api/op", data="not json", headers={**headers, "Content-Type": "application/json"})
    assert r.status == 400 and r.json()["msg_id"] == "iSM31353"
    before = console.last_seq()
    r = post(console.url + "api/op", data={"op": "delete", "bv": "bv001", "sv": "no_such_sv"}, headers=headers)
    assert r.status in (404, 409) and re.fullmatch(r"iSM\d{5}", r.json()["msg_id"]), r.text()
    ev = console.live_event(before, r.json()["msg_id"])  # logged like any refusal, and shown live
    assert ev["class"] == "ERROR" and ev["source"] == "admin"
    # the page shows the array's refusal of its own operation: restoring a linked generation
    console.gen_row("bv001", "-1").locator("button.op-link").click()
    console.confirm()
    console.live_event(before, "iSM20020")
    console.page.wait_for_function(
        "[...document.querySelectorAll('#tree [data-bv=\"bv001\"] tr.live')].some(r => r.cells[5].textContent === 'link lv001')",
        timeout=WAIT_MS,
    )
    console.gen_row("bv001", "-1").locator("button.op-restore").click()
    console.confirm()
    console.page.wait_for_selector("#op-error:has-text('iSM')", timeout=WAIT_MS)
    assert re.search(r"iSM\d{5}: ", console.page.inner_text("#op-error"))
    console.gen_row("bv001", "-1").locator("button.op-unlink").click()
    console.confirm()
    console.live_event(before, "iSM20030")


def test_a_stopped_server_shows_as_down(console: Console) -> None:
    row = '#hosts tr[data-host="test01"] td:last-child'
    stop = console.run("host", "stop", "test01")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    console.page.wait_for_selector(f"{row}:has-text('down (stopped)')", timeout=WAIT_MS)
    start = console.run("host", "start", "test01")
    assert start.returncode == 0, start.stdout + start.stderr
    console.page.wait_for_selector(f"{row}:text-is('reachable')", timeout=WAIT_MS)


def test_event_log_filters(console: Console) -> None:
    page = console.page
    assert {r["class"] for r in console.rows()} >= {"INFO", "ERROR"}
    page.select_option("#f-class", "ERROR")
    assert console.rows() and {r["class"] for r in console.rows()} == {"ERROR"}
    page.select_option("#f-class", "")
    page.fill("#f-id", "iSM19010")
    assert console.rows() and {r["id"] for r in console.rows()} == {"iSM19010"}
    page.fill("#f-id", "")
    page.select_option("#f-host", "business01")
    assert console.rows() and {r["source"] for r in console.rows()} == {"business01"}
    page.select_option("#f-host", "")
    page.select_option("#f-array", "Tokyo_Customer_DataBase")
    rows = console.rows()
    assert rows and all("Tokyo_Customer_DataBase" in r["text"] or r["source"] == "Tokyo_Customer_DataBase" for r in rows)
    page.select_option("#f-array", "")
    assert len(console.rows()) > len(rows)
