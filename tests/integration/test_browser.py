"""A real web client in a real browser: Converse.js (npm, into build/converse) on a local
page, in headless Chromium driven by Selenium, logs in to xmppd over WebSocket (and over
BOSH), sees bob
(a slixmpp client on TCP) online in its roster, and messages go both ways; the test reads
the page's DOM. A screenshot is kept in the test's temp dir (and in test-artifacts/ if that
exists).

Needs Debian's chromium and chromium-driver (``.ci/run`` installs them) and npm; without
them the test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORD, login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
CONVERSE_VERSION = "14.0.0"
CONVERSE = ROOT / "build" / "converse"
DIST = CONVERSE / "node_modules" / "converse.js" / "dist"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>xmppd web client test</title>
<link rel="stylesheet" href="dist/converse.min.css">
<script type="module" src="dist/converse.min.js"></script></head>
<body><script type="module">
converse.initialize({{
  {connection},
  assets_path: "dist/",
  view_mode: "fullscreen",
  auto_login: true,
  jid: "alice@localhost",
  password: "{password}",
  auto_reconnect: false,
  play_sounds: false,
  show_desktop_notifications: false,
  allow_non_roster_messaging: true,
  loglevel: "info"
}});
</script></body></html>
"""


def converse_dist() -> Path:
    """Converse.js, installed with npm into build/converse the first time."""
    if not (DIST / "converse.min.js").exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install Converse.js for the browser test"
        CONVERSE.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--prefix", str(CONVERSE), f"converse.js@{CONVERSE_VERSION}"],
                       check=True, timeout=600)
    return DIST


@pytest.fixture
def page(tmp_path):
    """A local web server for the page; yields its origin and the directory it serves."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "dist").symlink_to(converse_dist())
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", site
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path, page):
    """xmppd with WebSocket and BOSH on a plain HTTP listener (loopback) and on an HTTPS one
    that clients are told is https://localhost (host-meta names it: XEP-0156 discovery)."""
    origin, _site = page
    port, https_port = free_port(), free_port()
    proc = XmppdProcess(tmp_path / "xmppd", extra=f"""
[http]
listen = ["tcp:{port}:interface=127.0.0.1"]
https = ["tcp:{https_port}:interface=127.0.0.1"]
external_url = "https://localhost"
cors_origins = ["{origin}"]

[plugins]
enabled = ["disco", "ping", "version", "roster", "presence", "offline", "carbons", "csi",
           "blocking", "vcard", "private", "pep", "smacks", "websocket", "bosh"]
""")
    proc.http_port, proc.https_port = port, https_port
    yield from serve(proc)


@pytest.fixture
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "apt-get install chromium chromium-driver (see .ci/run)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Converse.js discovers the endpoints at https://localhost/.well-known/host-meta (port
    # 443): Chromium's resolver takes localhost:443 to the test's HTTPS listener, and accepts
    # its self-signed certificate.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--ignore-certificate-errors",
                     f"--host-resolver-rules=MAP localhost:443 127.0.0.1:{server.https_port}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


async def befriend(proc: XmppdProcess):
    """alice and bob subscribed to each other (slixmpp accepts subscriptions by itself);
    returns bob, online with an available presence."""
    alice = await login(proc, "alice@localhost")
    bob = await login(proc, "bob@localhost")
    bob.send_presence()
    alice.send_presence()
    alice.send_presence(pto="bob@localhost", ptype="subscribe")
    for _ in range(100):
        await alice.get_roster()
        await bob.get_roster()
        if (alice.client_roster["bob@localhost"]["subscription"] == "both"
                and bob.client_roster["alice@localhost"]["subscription"] == "both"):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("alice and bob did not become contacts")
    await logout(alice)
    return bob


def wait_for(driver, script: str, timeout: float = 30.0):
    """Poll a JavaScript expression until it is truthy; its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: d.execute_script(f"return ({script});"))


@pytest.mark.parametrize("transport", ["websocket", "bosh", "discovered"])
def test_converse(server, page, browser, tmp_path, transport):
    """Over each transport given to Converse.js, and with nothing given: it finds the
    WebSocket endpoint through host-meta (XEP-0156) and uses it."""
    origin, site = page
    if transport == "websocket":
        connection = (f'websocket_url: "ws://127.0.0.1:{server.http_port}/xmpp-websocket",\n'
                      f'  discover_connection_methods: false')
    elif transport == "bosh":
        connection = (f'bosh_service_url: "http://127.0.0.1:{server.http_port}/http-bind",\n'
                      f'  discover_connection_methods: false')
    else:
        connection = "discover_connection_methods: true"
    (site / "index.html").write_text(PAGE.format(connection=connection, password=PASSWORD))

    async def scenario():
        bob = await befriend(server)
        got = asyncio.get_running_loop().create_future()
        bob.add_event_handler("message",
                              lambda msg: msg["body"] and not got.done() and got.set_result(msg))
        try:
            await asyncio.to_thread(browser.get, origin + "/index.html")
            # bob is an online contact in alice's roster
            await asyncio.to_thread(wait_for, browser, """
                Array.from(document.querySelectorAll('li.current-xmpp-contact'))
                  .filter(li => li.textContent.includes('bob'))
                  .map(li => li.dataset.status)[0] === 'online'""")
            await asyncio.to_thread(browser.execute_script, """
                document.querySelector("a.open-chat[data-jid='bob@localhost']").click()""")
            await asyncio.to_thread(wait_for, browser,
                                    "document.querySelector('textarea.chat-textarea')")
            await asyncio.to_thread(_type_message, browser, "hello from a browser")
            message = await asyncio.wait_for(got, 30)
            assert message["body"] == "hello from a browser"
            assert str(message["from"]).startswith("alice@localhost/")
            bob.send_message(mto="alice@localhost", mbody="hello, Converse", mtype="chat")
            await asyncio.to_thread(wait_for, browser, """
                Array.from(document.querySelectorAll('.chat-msg__text'))
                  .some(el => el.textContent.includes('hello, Converse'))""")
        finally:
            await asyncio.to_thread(_screenshot, browser, tmp_path, transport)
            await logout(bob)

    asyncio.run(scenario())


def _type_message(driver, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    area = driver.find_element(By.CSS_SELECTOR, "textarea.chat-textarea")
    area.send_keys(text)
    area.send_keys(Keys.ENTER)


def _screenshot(driver, tmp_path: Path, transport: str) -> None:
    shot = tmp_path / f"converse-{transport}.png"
    driver.save_screenshot(str(shot))
    console = "\n".join(f"{entry['level']} {entry['message']}"
                         for entry in driver.get_log("browser"))
    (tmp_path / "console.log").write_text(console)
    print("browser console:\n" + console)
    artifacts = ROOT / "test-artifacts"
    if artifacts.is_dir():
        shutil.copy(shot, artifacts / shot.name)
