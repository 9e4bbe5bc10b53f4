"""End to end: the page in headless Chromium (Playwright) against uvicorn on 127.0.0.1 with a tiny model.

Needs the `playwright` Python package and a Chromium at /usr/bin/chromium (Debian: `apt-get install -y
chromium`); Playwright's own browser download is not used. Skips with the reason when either is absent.
"""
from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from predict_helpers import phantom, tiny_checkpoint

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LEAD_COPY = Path("/tmp/tumorlens_web.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path_factory):
    uvicorn = pytest.importorskip("uvicorn")
    from tumorlens.predict import Predictor
    from tumorlens.serve import create_app

    torch.set_num_threads(1)
    p = Predictor(tiny_checkpoint(tmp_path_factory.mktemp("ck")))
    p.ood.threshold = float("inf")  # the tiny model's feature check refuses some fresh phantoms by chance
    p.lookalike = None  # and so may its look-alike detector
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(p), host="127.0.0.1", port=port, access_log=False,
                                        log_level="warning", server_header=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if not t.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_upload_shows_probabilities_and_heatmap(server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install it with: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                                 "(pip install playwright)")
    img = tmp_path / "phantom_glioma.png"
    Image.fromarray(phantom("glioma", 3, 384)).save(img)
    # a name the server shortens (after the last backslash): the card keeps the browser's name
    odd = tmp_path / ("left\\" + "x" * 130 + "_slice001.png")
    Image.fromarray(phantom("meningioma", 4, 256)).save(odd)
    txt = tmp_path / "notes.txt"
    txt.write_text("not an image\n" * 10)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 415" not in m.text
                    else None)  # the 415 is the text file's, expected
            page.goto(server + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.includes('sha256')")

            page.keyboard.press("Tab")  # the skip link, then the drop zone's file input
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.id") == "files"
            assert page.locator("#dropzone").evaluate("e => getComputedStyle(e).outlineStyle") == "solid"

            page.set_input_files("#files", [str(img), str(txt), str(odd)])
            first = page.locator(".card").nth(0)
            first.locator(".bar-row").nth(3).wait_for(timeout=30_000)
            page.wait_for_function("""() => { const h = document.querySelector('.card .heat');
                return h && h.complete && h.naturalWidth > 0 }""", timeout=30_000)
            assert first.locator(".badge").inner_text().lower() in ("ok", "uncertain")
            assert first.locator(".card-title").inner_text() == "phantom_glioma.png"
            bars = first.locator(".bar-row").all_inner_texts()
            assert [b.split()[0] for b in bars] == ["glioma", "meningioma", "notumor", "pituitary"]
            assert all("%" in b for b in bars)
            assert first.locator(".heat").is_visible() and first.locator(".original").is_visible()
            assert first.locator(".heat").evaluate("e => e.naturalWidth") == 384
            assert first.locator(".heat-caption").inner_text().startswith("Heatmap overlay (gated map for ")

            # the opacity slider: keyboard operable, labelled, pure CSS opacity on the heatmap layer
            slider = first.locator(".opacity-range")
            assert first.locator(f"label[for='{slider.get_attribute('id')}']").count() == 1
            slider.focus()
            page.keyboard.press("Home")
            for _ in range(6):
                page.keyboard.press("ArrowRight")
            assert slider.input_value() == "30"
            assert first.locator(".heat").evaluate("e => getComputedStyle(e).opacity") == "0.3"
            assert first.locator(".opacity-out").inner_text() == "30 %"

            second = page.locator(".card").nth(1)
            second.locator(".badge", has_text="error").wait_for(timeout=30_000)
            assert "not a supported image" in second.locator(".reason").inner_text()
            third = page.locator(".card").nth(2)
            third.locator(".bar-row").nth(3).wait_for(timeout=30_000)
            assert third.locator(".card-title").inner_text() == odd.name
            # the status sums the outcomes up; "Done" alone read as success when files had failed
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Finished')")
            status = page.locator("#status").inner_text()
            assert status.startswith("Finished 3 file(s): ") and "1 failed" in status
            # a second batch is summed up on its own: the first batch's failure stays on the page, not in the count
            page.set_input_files("#files", [str(img)])
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Finished 1 file')")
            again = page.locator("#status").inner_text()
            assert "failed" not in again and again.count(" ok") + again.count("uncertain") == 1, again

            disclaimer = page.locator("#disclaimer")
            assert disclaimer.is_visible() and "Research use only - not a medical device" in disclaimer.inner_text()
            slider.focus()  # show the focus style in the screenshot
            shot = tmp_path / "tumorlens_web.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    try:
        shutil.copyfile(shot, LEAD_COPY)
    except OSError:
        pass
    assert requests and all(u.startswith(server + "/") or u.startswith("data:") for u in requests), requests
    assert not errors, errors
