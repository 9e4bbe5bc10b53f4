"""The web app and HTTP API (`tumorlens serve`): contract, refusals, model info, page, privacy."""
from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient  # noqa: E402

from predict_helpers import dicom_bytes, encode, phantom  # noqa: E402
from tumorlens.checkpoint import file_sha256  # noqa: E402
from tumorlens.config import DISCLAIMER, TumorlensError  # noqa: E402
from tumorlens.predict import Predictor  # noqa: E402
from tumorlens.serve import create_app, encode_png, safe_name  # noqa: E402

RECORD_KEYS = {"path", "status", "label", "probabilities", "confidence", "reason", "disclaimer"}
PNG_KEYS = {"overlay_png", "image_png", "heatmap_png"}
TEST_HOST = "testserver"  # the Host header TestClient sends; the app answers it only when told to
TRUNCATED = "malformed multipart/form-data body (it ends inside a part or without its closing boundary)"


@pytest.fixture(scope="module")
def client(ckpt):
    """An app on the checkpoint as it is (the same refusal settings as `tumorlens predict --model`)."""
    return TestClient(create_app(str(ckpt), allowed_hosts=[TEST_HOST]))


@pytest.fixture(scope="module")
def answering(ckpt):
    """An app whose feature-distance refusal is off, so fresh phantoms get answers (and heatmaps)."""
    p = Predictor(ckpt)
    p.ood.threshold = float("inf")
    p.lookalike = None
    return TestClient(create_app(p, allowed_hosts=[TEST_HOST]))


@pytest.fixture(scope="module")
def inputs():
    rgb = Image.fromarray(phantom("glioma", 0, 512)).convert("RGB")
    return {"a.jpg": encode(rgb, "JPEG", quality=92),
            "b.png": encode(phantom("pituitary", 1), "PNG"),
            "c.dcm": dicom_bytes(np.stack([phantom(i=i, size=128) for i in range(2)]).astype(np.uint16),
                                 wc=128.0, ww=256.0)}


def _files(named: dict[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (n, b, "application/octet-stream")) for n, b in named.items()]


# ---------------------------------------------------------------------------------------- contract
def test_records_match_the_predict_cli_json(client, ckpt, inputs, tmp_path, capsys):
    r = client.post("/api/predict", files=_files(inputs))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-research-use"] == DISCLAIMER
    api = r.json()
    assert isinstance(api, list) and len(api) == 4  # a.jpg, b.png, and one record per DICOM frame
    assert [d["path"] for d in api] == ["a.jpg", "b.png", "c.dcm", "c.dcm"]
    assert [d.get("frame") for d in api] == [None, None, 0, 1]
    for d in api:
        assert RECORD_KEYS <= set(d) <= RECORD_KEYS | {"frame", "slice"}
        assert d["disclaimer"] == DISCLAIMER  # in the body too, not only in the X-Research-Use header
        assert d["status"] in ("ok", "uncertain", "rejected", "error")
        assert not PNG_KEYS & set(d)

    from tumorlens.cli_predict import add_parsers

    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    p = argparse.ArgumentParser()
    add_parsers(p.add_subparsers(dest="command"))
    a = p.parse_args(["predict", *(str(tmp_path / n) for n in inputs), "--model", str(ckpt), "--format", "json"])
    capsys.readouterr()
    a.func(a)
    cli = json.loads(capsys.readouterr().out)
    for d in cli:
        d["path"] = Path(d["path"]).name
    assert api == cli


def test_one_file_and_the_order_of_many(answering, inputs):
    one = answering.post("/api/predict", files=_files({"b.png": inputs["b.png"]})).json()
    assert len(one) == 1 and one[0]["path"] == "b.png" and one[0]["status"] in ("ok", "uncertain")
    assert set(one[0]["probabilities"]) == {"glioma", "meningioma", "notumor", "pituitary"}
    assert abs(sum(one[0]["probabilities"].values()) - 1) < 1e-4
    many = answering.post("/api/predict", files=_files({"x.png": inputs["b.png"], "y.jpg": inputs["a.jpg"],
                                                        "z.png": inputs["b.png"]})).json()
    assert [d["path"] for d in many] == ["x.png", "y.jpg", "z.png"]
    assert many[0]["probabilities"] == many[2]["probabilities"] == one[0]["probabilities"]


def test_explain_adds_png_layers_that_decode(answering, inputs):
    r = answering.post("/api/predict?explain=true", files=_files({"a.jpg": inputs["a.jpg"],
                                                                  "c.dcm": inputs["c.dcm"]}))
    assert r.status_code == 200, r.text
    recs = r.json()
    assert len(recs) == 3
    for d, size in zip(recs, [(512, 512), (128, 128), (128, 128)]):
        assert d["status"] in ("ok", "uncertain")
        assert PNG_KEYS <= set(d)
        ims = {k: Image.open(io.BytesIO(base64.b64decode(d[k], validate=True))) for k in PNG_KEYS}
        assert {k: im.format for k, im in ims.items()} == dict.fromkeys(PNG_KEYS, "PNG")
        assert ims["image_png"].mode == "L" and ims["heatmap_png"].mode == "RGBA" and ims["overlay_png"].mode == "RGB"
        assert all(im.size == size for im in ims.values())
        alpha = np.asarray(ims["heatmap_png"])[..., 3]
        assert alpha.max() > 200 and alpha.min() < 50  # hot somewhere, transparent elsewhere
    gray = np.asarray(Image.open(io.BytesIO(base64.b64decode(recs[0]["image_png"]))), dtype=np.float32)
    assert np.corrcoef(gray.ravel(), phantom("glioma", 0, 512).astype(np.float32).ravel())[0, 1] > 0.95
    from tumorlens.explain import default_method

    method = default_method(answering.app.state.service.predictor.model)
    assert all(d["heatmap_method"] == method and d["heatmap_empty"] is False for d in recs)


def test_an_empty_heatmap_is_said_in_the_answer(answering, inputs, monkeypatch):
    """A map with no evidence would look like "nothing here" on the page; the record says it is empty."""
    import tumorlens.explain as ex

    monkeypatch.setattr(ex, "explain_slice", lambda model, x, box, shape, **kw: np.zeros(shape, np.float32))
    d = answering.post("/api/predict?explain=true", files=_files({"a.jpg": inputs["a.jpg"]})).json()[0]
    assert d["heatmap_empty"] is True and PNG_KEYS <= set(d)


def test_png_writer_round_trips():
    rng = np.random.default_rng(0)
    for shape in ((7, 5), (6, 9, 3), (4, 3, 4)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(a)))), a)


def test_every_png_of_an_answer_carries_the_disclaimer(answering, inputs):
    """The layers were bare pixels: an image saved from the page or taken from the API said nothing."""
    assert Image.open(io.BytesIO(encode_png(np.zeros((4, 4), np.uint8)))).text["Disclaimer"] == DISCLAIMER
    (rec,) = answering.post("/api/predict?explain=true", files=_files({"b.png": inputs["b.png"]})).json()
    for key in PNG_KEYS:
        assert Image.open(io.BytesIO(base64.b64decode(rec[key]))).text["Disclaimer"] == DISCLAIMER, key


def test_a_multipage_tiff_upload_is_answered_page_by_page(answering, inputs):
    """Only its first page was answered, with nothing said (the web-app audit)."""
    pages = [Image.open(io.BytesIO(inputs["b.png"])), Image.open(io.BytesIO(inputs["b.png"])).transpose(0)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    recs = answering.post("/api/predict", files=_files({"stack.tif": buf.getvalue()})).json()
    assert [(r["path"], r["frame"]) for r in recs] == [("stack.tif", 0), ("stack.tif", 1)]


def test_refusals_and_unknown_pages_carry_the_disclaimer(client):
    for r in (client.get("/no-such-page"), client.get("/api/predict"), client.post("/api/predict")):
        assert r.status_code in (404, 405, 415) and r.json()["disclaimer"] == DISCLAIMER, r.status_code


def test_an_upload_that_stalls_is_dropped_with_408(client, inputs, monkeypatch):
    """Clients that stopped sending halfway held their buffers for as long as they kept the connection."""
    import time

    import tumorlens.serve_http as serve_http

    monkeypatch.setattr(serve_http, "BODY_IDLE_S", 0.3)
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"b.png\"\r\n\r\n"
            ).encode()

    def stalling():
        yield head + inputs["b.png"][:100]
        time.sleep(1.5)
        yield inputs["b.png"][100:]

    r = client.post("/api/predict", content=stalling(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 408 and "stalled" in r.json()["detail"]
    # a client that keeps sending a little, each time under the idle limit, is held to the total limit
    monkeypatch.setattr(serve_http, "BODY_IDLE_S", 5.0)
    monkeypatch.setattr(serve_http, "BODY_TOTAL_S", 0.6)

    def trickling():
        yield head
        for b in inputs["b.png"][:8]:
            time.sleep(0.2)
            yield bytes([b])

    r = client.post("/api/predict", content=trickling(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 408 and "took longer than 0.6 s" in r.json()["detail"]


def test_rejected_and_broken_files_are_records_not_refusals(answering, inputs):
    noise = encode(np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8), "PNG")
    r = answering.post("/api/predict?explain=true",
                       files=_files({"noise.png": noise, "cut.png": inputs["b.png"][:300]}))
    assert r.status_code == 200
    noise_rec, cut_rec = r.json()
    assert noise_rec["status"] == "rejected" and noise_rec["reason"] and noise_rec["probabilities"] is None
    assert cut_rec["status"] == "error" and cut_rec["reason"].startswith("cut.png: ")
    assert not PNG_KEYS & (set(noise_rec) | set(cut_rec))


# ---------------------------------------------------------------------------------------- refusals
def test_upload_over_the_limit_is_413(ckpt, inputs):
    small = TestClient(create_app(str(ckpt), max_upload_mb=0.05, allowed_hosts=[TEST_HOST]))
    big = encode(np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8), "PNG")  # ~90 KB
    r = small.post("/api/predict", files=_files({"big.png": big}))
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()

    def chunks():  # no Content-Length: the limit is counted while the body streams
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    r = small.post("/api/predict", content=chunks(),
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert small.post("/api/predict", files=_files({"b.png": inputs["b.png"]})).status_code == 200


def test_too_many_files_is_413(ckpt, inputs):
    few = TestClient(create_app(str(ckpt), max_files=2, allowed_hosts=[TEST_HOST]))
    r = few.post("/api/predict", files=_files({f"{i}.png": inputs["b.png"] for i in range(3)}))
    assert r.status_code == 413 and "too many files" in r.json()["detail"]


def test_plain_form_fields_do_not_count_as_files(ckpt, inputs):
    few = TestClient(create_app(str(ckpt), max_files=2, allowed_hosts=[TEST_HOST]))
    fields = {f"note{i}": "text" for i in range(1000)}
    r = few.post("/api/predict", data=fields, files=_files({"b.png": inputs["b.png"]}))
    assert r.status_code == 200, r.text
    assert [d["path"] for d in r.json()] == ["b.png"]


def test_the_413_message_gives_bytes_and_says_the_limit_is_per_request(ckpt, inputs):
    small = TestClient(create_app(str(ckpt), max_upload_mb=0.05, allowed_hosts=[TEST_HOST]))
    big = encode(np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8), "PNG")
    r = small.post("/api/predict", files=_files({"big.png": big}))
    sent = int(r.request.headers["content-length"])
    assert r.status_code == 413
    assert r.json()["detail"] == (f"upload too large: {sent:,} bytes; the limit is 52,428 bytes (0.05 MiB) per "
                                  f"request, all files together")


def test_the_page_states_the_upload_limit_per_request_not_per_file(client):
    js = client.get("/static/app.js").text
    assert "MiB per request" in js and "per file" not in js


def _multipart(named: dict[str, bytes], boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{n}\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                    for n, data in named.items())
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_a_body_cut_short_is_400_never_an_answer_for_the_parts_before_the_cut(client, inputs):
    body, headers = _multipart({"a.png": inputs["b.png"], "b.png": inputs["b.png"]})
    assert client.post("/api/predict", content=body, headers=headers).status_code == 200
    no_end = body[:-len("--b0undary--\r\n")]  # every part complete, the closing boundary missing
    half = body[:len(body) - len(inputs["b.png"]) // 2]  # the last file cut in half
    in_headers = body[:len(body) - len(inputs["b.png"]) - 40]  # cut inside the last part's headers
    for cut in (no_end, half, in_headers):
        r = client.post("/api/predict", content=cut, headers=headers)
        assert (r.status_code, r.json()) == (400, {"detail": TRUNCATED, "disclaimer": DISCLAIMER})
    one, _ = _multipart({"a.png": inputs["b.png"]})
    r = client.post("/api/predict", content=one[:len(one) // 2], headers=headers)  # a single file cut short
    assert (r.status_code, r.json()) == (400, {"detail": TRUNCATED, "disclaimer": DISCLAIMER})
    # the closing boundary without its final line break, or followed by an epilogue, is complete
    for whole in (body[:-2], body + b"epilogue"):
        assert client.post("/api/predict", content=whole, headers=headers).status_code == 200


@pytest.mark.parametrize("name,data,status,words", [
    ("notes.txt", b"Patient notes: this is plain text, not an image.\n" * 20, 415, "not a supported image"),
    ("scan.png", b"just text pretending to be a PNG", 415, "not a supported image"),
    ("empty.png", b"", 422, "empty file"),
])
def test_a_single_unsupported_or_empty_file_is_refused_and_in_a_batch_gets_an_error_record(client, inputs, name,
                                                                                           data, status, words):
    r = client.post("/api/predict", files=_files({name: data}))
    assert r.status_code == status
    detail = r.json()["detail"]
    assert words in detail and detail.startswith(name)
    # beside a good file: the good one is answered, the bad one is an error record (as the CLI does in a folder)
    r = client.post("/api/predict", files=_files({"b.png": inputs["b.png"], name: data}))
    assert r.status_code == 200
    good, bad = r.json()
    assert good["path"] == "b.png" and good["status"] != "error"
    assert bad["path"] == name and bad["status"] == "error" and bad["label"] is None
    assert words in bad["reason"] and bad["reason"].startswith(name)


def test_requests_without_files(client):
    r = client.post("/api/predict", files=[("image", ("b.png", b"\x89PNG....", "image/png"))])
    assert r.status_code == 422 and "'files'" in r.json()["detail"]
    r = client.post("/api/predict", data={"files": "not a file"})  # urlencoded form
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.post("/api/predict", content=b"\x89PNG", headers={"content-type": "image/png"})
    assert r.status_code == 415
    r = client.post("/api/predict", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and r.json()["detail"].startswith("malformed multipart/form-data body")
    r = client.post("/api/predict", content=b"", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["detail"]


def test_file_names_are_sanitised_labels():
    assert safe_name("../../etc/passwd.png", 1) == "passwd.png"
    assert safe_name("C:\\Users\\x\\scan 1.dcm", 1) == "scan 1.dcm"
    assert safe_name("a\x00b\nc\u202e.png", 1) == "abc.png"
    assert safe_name("", 3) == "upload-3" and safe_name("...", 2) == "upload-2"
    long = safe_name("x" * 500 + ".nii.gz", 1)
    assert len(long) == 120 and long.endswith(".nii.gz")


# ------------------------------------------------------------------------------------ health, model
def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    d = r.json()
    assert d["status"] == "ok" and d["model_loaded"] is True and d["disclaimer"] == DISCLAIMER


def test_model_info(client, ckpt):
    r = client.get("/api/model")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    d = r.json()
    assert d["disclaimer"] == DISCLAIMER
    assert d["sha256"] == file_sha256(ckpt) == d["model"]["sha256"]
    assert d["classes"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert d["preprocessing"]["size"] == 64 and "crop" in d["preprocessing"]
    assert d["calibration"]["temperature"] > 0
    assert 0 <= d["abstention"]["threshold"] <= 1
    assert d["refusal"]["enabled"] is True and d["refusal"]["feature_distance"]["threshold"] > 0
    assert "means" not in d["refusal"]["feature_distance"]  # no feature statistics in the answer
    assert d["refusal"]["lookalike"]["threshold"] is not None and "w" not in d["refusal"]["lookalike"]
    assert "val_accuracy" in d["metrics"] and d["version"]
    assert d["limits"]["max_upload_mb"] == 20
    assert len(r.content) < 20_000


def test_docs_is_an_offline_note_pointing_to_openapi_json(client):
    for route in ("/docs", "/redoc"):
        r = client.get(route)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        d = r.json()
        assert d["openapi"] == "/openapi.json" and "/openapi.json" in d["note"] and d["disclaimer"] == DISCLAIMER
        assert not re.search(r"https?:|//|jsdelivr|unpkg", r.text, re.I)  # nothing that needs the network
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/health", "/api/model"} <= set(spec["paths"])
    assert "files" in json.dumps(spec["paths"]["/api/predict"]["post"]["requestBody"])


# -------------------------------------------------------------------------------------------- page
def test_page_is_self_contained_with_the_disclaimer(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "Research use only - not a medical device" in html
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(u.startswith(("/", "#")) and not u.startswith("//") for u in refs), refs
    assets = {u: client.get(u) for u in ("/static/app.js", "/static/app.css")}
    for u, a in assets.items():
        assert a.status_code == 200, u
    for text in [html] + [a.text for a in assets.values()]:
        assert not re.search(r"https?:|@import|url\(\s*['\"]?//", text, re.I)
    assert assets["/static/app.js"].headers["content-type"].startswith("text/javascript")
    assert 'type="file"' in html and "multiple" in html and 'for="files"' in html
    assert 'type="range"' in html
    assert client.get("/static/../serve.py").status_code == 404
    assert client.get("/static/index.html").status_code == 404  # only the fixed routes exist


# ------------------------------------------------------------------------------------------ privacy
def test_uploads_touch_no_disk_and_no_log(answering, inputs, tmp_path, monkeypatch, caplog):
    """Watching folders is not enough: Starlette's UploadFile rolls parts over 1 MB into an *unlinked*
    temporary file, invisible to a listing. So tempfile's constructors are made to fail as well (they
    would fail Starlette's form parser), and the folders are compared before and after."""
    private_tmp = tmp_path / "tmp"
    work = tmp_path / "cwd"
    private_tmp.mkdir()
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.chdir(work)

    def forbidden(*a, **k):
        raise AssertionError("a temporary file was opened during a request")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, forbidden)
    import starlette.formparsers as fp

    if hasattr(fp, "SpooledTemporaryFile"):
        monkeypatch.setattr(fp, "SpooledTemporaryFile", forbidden)
    big = dicom_bytes(phantom("meningioma", 2, 1024).astype(np.uint16) * 10, wc=1280.0, ww=2560.0)  # 2 MB
    assert len(big) > 2_000_000
    secret = "Doe_Jane_1970-01-01"
    caplog.set_level(logging.DEBUG)
    before = {p: sorted(os.listdir(p)) for p in (private_tmp, work, tempfile.gettempdir())}
    uploads = {f"{secret}.dcm": big, f"{secret}.png": inputs["b.png"], f"{secret}-cut.png": inputs["b.png"][:400]}
    r = answering.post("/api/predict?explain=true", files=_files(uploads))
    assert r.status_code == 200, r.text
    assert [d["status"] in ("ok", "uncertain") for d in r.json()] == [True, True, False]
    assert all(d["path"].startswith(secret) for d in r.json())
    assert {p: sorted(os.listdir(p)) for p in before} == before
    assert os.listdir(private_tmp) == [] and os.listdir(work) == []
    assert secret not in caplog.text


# --------------------------------------------------------------------------------------------- CLI
def test_serve_cli_warns_off_loopback(monkeypatch, capsys, ckpt):
    import tumorlens.cli_serve as cli_serve
    import tumorlens.serve as serve
    from tumorlens.cli_serve import add_parsers

    calls = []
    monkeypatch.setattr(serve, "run_server", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(cli_serve, "_check_port", lambda host, port: None)  # 0.0.0.0:8123 may be taken here
    p = argparse.ArgumentParser()
    add_parsers(p.add_subparsers(dest="command"))
    a = p.parse_args(["serve", "--model", str(ckpt)])
    assert (a.host, a.port, a.max_upload_mb) == ("127.0.0.1", 8000, 20.0)
    assert a.func(a) == 0
    err = capsys.readouterr().err
    assert "WARNING" not in err and DISCLAIMER in err
    a = p.parse_args(["serve", "--model", str(ckpt), "--host", "0.0.0.0", "--port", "8123", "--max-upload-mb", "5"])
    assert a.func(a) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "0.0.0.0" in err and "other machines" in err
    assert calls[-1] == ((str(ckpt),), {"host": "0.0.0.0", "port": 8123, "max_upload_mb": 5.0, "log_level": "warning",
                                        "allow_hosts": []})
    a = p.parse_args(["serve", "--model", str(ckpt), "--allow-host", "scanner.lan", "--allow-host", "10.0.0.2"])
    assert a.func(a) == 0
    assert calls[-1][1]["allow_hosts"] == ["scanner.lan", "10.0.0.2"]
    for bad in ("nan", "inf", "0", "-3"):  # nan and inf had passed `<= 0` and ended in a traceback
        a = p.parse_args(["serve", "--model", str(ckpt), "--max-upload-mb", bad])
        with pytest.raises(TumorlensError, match="--max-upload-mb must be a positive number"):
            a.func(a)
    assert serve.is_loopback("::1") and serve.is_loopback("localhost") and not serve.is_loopback("192.168.1.5")


def test_nifti_slices_and_the_slice_parameter(answering):
    from predict_helpers import nifti_bytes

    vol = np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(6)], -1)
    data = nifti_bytes(vol, gz=True)
    recs = answering.post("/api/predict", files=_files({"v.nii.gz": data})).json()
    assert len(recs) > 1 and all("slice" in d and d["path"] == "v.nii.gz" for d in recs)
    one = answering.post("/api/predict?explain=true&slice=3", files=_files({"v.nii.gz": data})).json()
    assert [d["slice"] for d in one] == [3] and PNG_KEYS <= set(one[0])
    assert answering.post("/api/predict?slice=-1", files=_files({"v.nii.gz": data})).status_code == 422


def test_slice_with_only_2d_uploads_is_logged_and_noted_in_a_header(answering, inputs, caplog):
    from predict_helpers import nifti_bytes

    caplog.set_level(logging.WARNING, logger="tumorlens.serve")
    plain = answering.post("/api/predict", files=_files({"b.png": inputs["b.png"]}))
    r = answering.post("/api/predict?slice=2", files=_files({"b.png": inputs["b.png"]}))
    assert r.status_code == 200 and r.json() == plain.json()  # the answer keeps its shape
    assert r.headers["x-tumorlens-note"] == "slice applies to NIfTI volumes only; ignored"
    assert "x-tumorlens-note" not in plain.headers
    assert "applies to NIfTI volumes only" in caplog.text and "b.png" not in caplog.text
    caplog.clear()
    vol = np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(6)], -1)
    r = answering.post("/api/predict?slice=2", files=_files({"b.png": inputs["b.png"],
                                                             "v.nii.gz": nifti_bytes(vol, gz=True)}))
    assert r.status_code == 200 and "x-tumorlens-note" not in r.headers and not caplog.text


@pytest.mark.parametrize("query,detail", [
    ("slice=abc", "slice: must be an integer, got 'abc'"),
    ("slice=1.5", "slice: must be an integer, got '1.5'"),
    ("explain=maybe", "explain: must be true or false, got 'maybe'"),
    ("slice=1&slice=2", "slice: given 2 times; give it once"),
    ("explain=true&explain=false", "explain: given 2 times; give it once"),
    ("slice=-1", "slice: must be 0 or more, got -1"),
    ("Explain=true", "'Explain': unknown query parameter; this endpoint takes explain and slice"),
    # a name is the client's text: quoted and cut as values are (it was echoed raw, newlines and 50 KB included)
    ("a%0Ab" + "k" * 60 + "=1", "'a\\nb" + "k" * 37 + "': unknown query parameter; this endpoint takes explain and slice"),
])
def test_bad_or_repeated_query_parameters_are_a_one_line_422(client, inputs, query, detail):
    r = client.post(f"/api/predict?{query}", files=_files({"b.png": inputs["b.png"]}))
    assert (r.status_code, r.json()) == (422, {"detail": detail, "disclaimer": DISCLAIMER})


def test_an_upper_case_nii_gz_upload_is_read_as_nifti(client):
    """The suffix pattern was case-sensitive: VOL.NII.GZ was passed on as '.GZ' and was 'not an image'."""
    from predict_helpers import nifti_bytes

    vol = np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(6)], -1)
    data = nifti_bytes(vol, gz=True)
    upper = client.post("/api/predict?slice=2", files=_files({"VOL.NII.GZ": data})).json()
    lower = client.post("/api/predict?slice=2", files=_files({"vol.nii.gz": data})).json()
    assert [r["status"] for r in upper] == [r["status"] for r in lower] and upper[0]["status"] != "error"
    assert upper[0]["probabilities"] == lower[0]["probabilities"] and upper[0]["path"] == "VOL.NII.GZ"


def test_a_text_file_named_dcm_is_an_error_record_saying_it_is_not_dicom(client, inputs):
    r = client.post("/api/predict", files=_files({"b.png": inputs["b.png"], "x.dcm": b"plain notes\n" * 30}))
    assert r.status_code == 200
    rec = r.json()[1]
    assert rec["status"] == "error" and rec["reason"].startswith("x.dcm: not a DICOM file")


def test_a_truncated_nifti_upload_gives_a_one_line_reason(client):
    from predict_helpers import nifti_bytes

    vol = np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(6)], -1)
    (rec,) = client.post("/api/predict", files=_files({"cut.nii": nifti_bytes(vol)[:400]})).json()
    assert rec["status"] == "error" and rec["reason"].startswith("cut.nii: corrupt or unreadable NIfTI")
    assert "\n" not in rec["reason"] and "  " not in rec["reason"]


# ------------------------------------------------------------------------------------- host check
@pytest.mark.parametrize("host,status", [
    ("localhost:8000", 200), ("127.0.0.1", 200), ("[::1]:8000", 200), ("LocalHost", 200), ("scanner.lan:80", 200),
    ("evil.example", 400), ("localhost.evil.example", 400), ("127.0.0.1.nip.io", 400), ("[::2]", 400), ("", 400),
])
def test_the_host_header_must_name_this_server(ckpt, host, status):
    c = TestClient(create_app(str(ckpt), allowed_hosts=["scanner.lan"]))
    for route in ("/", "/api/health"):
        r = c.get(route, headers={"host": host})
        assert r.status_code == status, (route, host, r.text)
        if status == 400:
            assert "not allowed" in r.json()["detail"] and "DNS rebinding" in r.json()["detail"]


def test_testclients_host_is_answered_only_when_allowed(ckpt):
    assert TestClient(create_app(str(ckpt))).get("/api/health").status_code == 400
    assert TestClient(create_app(str(ckpt), allowed_hosts=[TEST_HOST])).get("/api/health").status_code == 200


def test_run_server_answers_under_its_listening_address(ckpt, monkeypatch):
    import uvicorn

    from tumorlens import serve

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    serve.run_server(str(ckpt), host="192.168.1.5", allow_hosts=["scanner.lan"])
    c = TestClient(apps[0])
    for host, status in (("192.168.1.5:8000", 200), ("scanner.lan", 200), ("localhost", 200), ("testserver", 400)):
        assert c.get("/api/health", headers={"host": host}).status_code == status, host
    serve.run_server(str(ckpt), host="::1")
    assert TestClient(apps[1]).get("/api/health", headers={"host": "[::1]:8000"}).status_code == 200


def test_a_port_in_use_is_a_one_line_error_before_the_model_loads(monkeypatch, capsys, ckpt):
    """uvicorn's bind error came after 'loading the model, then serving on ...' had been printed."""
    import socket

    import tumorlens.serve as serve
    from tumorlens.cli_serve import add_parsers

    calls = []
    monkeypatch.setattr(serve, "run_server", lambda *a, **k: calls.append((a, k)))
    p = argparse.ArgumentParser()
    add_parsers(p.add_subparsers(dest="command"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        a = p.parse_args(["serve", "--model", str(ckpt), "--port", str(port)])
        with pytest.raises(TumorlensError, match=f"cannot listen on 127.0.0.1:{port} .*choose another --port"):
            a.func(a)
    assert not calls and "serving on" not in capsys.readouterr().err
