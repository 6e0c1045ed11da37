"""One JSON log pipeline: the hub's lines, unhandled errors and gunicorn's own lines are JSON objects."""

from __future__ import annotations

import contextlib
import io
import logging

import orjson
import pytest
import requests

from hub import logs
from tests.live import serve_command

SECRET = "s3cr3t-key-value-never-logged"


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logs.handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_an_unhandled_error_is_one_json_line_with_the_request_id(make_app, captured):
    app = make_app()

    def boom():
        raise RuntimeError("the database helper broke")

    app.add_url_rule("/taxii2/boom/", "boom", boom)
    response = app.test_client().get(
        "/taxii2/boom/", headers={"X-Request-ID": "req-42", "Authorization": f"Bearer {SECRET}"}
    )
    assert response.status_code == 500 and response.headers["X-Request-ID"] == "req-42"
    assert "the database helper broke" not in response.get_data(as_text=True)
    lines = [orjson.loads(line) for line in captured.getvalue().splitlines() if line.strip()]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert errors, lines
    error = errors[0]
    assert error["request_id"] == "req-42" and error["logger"] == "hub.taxii"
    assert error["ts"].endswith("Z") and "unhandled error on GET /taxii2/boom/" in error["message"]
    assert "RuntimeError: the database helper broke" in error["exc_info"]
    assert SECRET not in captured.getvalue()


def test_a_line_outside_a_request_has_no_request_fields(captured):
    logging.getLogger("hub.retention").warning("source %s failed", "cisa-ais")
    (line,) = [orjson.loads(x) for x in captured.getvalue().splitlines()]
    assert line["message"] == "source cisa-ais failed" and line["level"] == "WARNING" and "request_id" not in line


@pytest.mark.slow
def test_gunicorn_and_the_hub_write_json_lines(settings, tmp_path):
    with contextlib.contextmanager(serve_command)(settings, tmp_path) as base:
        assert requests.get(f"{base}/taxii2/", headers={"Authorization": f"Bearer {SECRET}"}, timeout=10).status_code
    text = (tmp_path / "server.log").read_text()
    assert SECRET not in text
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("serving on ")]
    parsed = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "message"} <= set(parsed[0])
    assert any(p["logger"] == "gunicorn.error" and "Booting worker" in p["message"] for p in parsed), parsed
