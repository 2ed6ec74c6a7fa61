"""GET /openapi.json: valid OpenAPI 3.1 naming every route of the app, and the app on a real waitress server fuzzed
against it with schemathesis (no 5xx, every response as described, every error JSON).

``POSE_FAST_SCHEMATHESIS_EXAMPLES`` sets the generated cases for the whole fuzz run, shared out between the
operations: 200 by default (about 400 requests with those below, some 15 s), thousands for a long run
(``POSE_FAST_SCHEMATHESIS_EXAMPLES=5000``: about 4,000 requests, 1 to 2 minutes). Schemathesis' examples and coverage
phases add their own cases on top: the documented examples, boundary values, the methods the app does not answer.
"""
from __future__ import annotations

import json
import os
import re
import sys

import pytest

if sys.version_info < (3, 11):
    pytest.skip("schemathesis 4 needs Python 3.11 or later", allow_module_level=True)

import jsonschema_rs  # noqa: E402 - schemathesis' own validator
import requests  # noqa: E402
import schemathesis  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from pose_fast.events import EventStore  # noqa: E402
from pose_fast.webapp.openapi import build_document  # noqa: E402

T0 = 1_764_050_400.0  # 2025-11-25T06:00:00Z, as the documented examples of since/until
EVENTS = 237  # 3 pages of 100: the last page is short
EVENT_SOURCES = ("camera 0", "store-aisle.mp4")  # the documented examples of /detections?source=
TOTAL_EXAMPLES = int(os.environ.get("POSE_FAST_SCHEMATHESIS_EXAMPLES", "200"))

#: Left out of the fuzzing: GET /video_feed answers an endless MJPEG body (it ends only when the client leaves), so
#: no response can be read whole and checked; its HEAD, which gives the same status and headers without a stream,
#: is fuzzed instead, and tests/test_webapp.py reads the stream itself.
NOT_FUZZED = {("GET", "/video_feed")}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
FUZZED_OPERATIONS = [(method.upper(), path) for path, item in build_document()["paths"].items() for method in item
                     if method in HTTP_METHODS and (method.upper(), path) not in NOT_FUZZED]
#: Hypothesis examples per operation: the run's budget shared out.
PER_OPERATION = max(1, TOTAL_EXAMPLES // len(FUZZED_OPERATIONS))


def _flask_path(rule: str) -> str:
    """``/static/<path:filename>`` -> ``/static/{filename}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def _media_type(response_headers) -> str:
    value = response_headers.get("content-type") or [""]
    value = value[0] if isinstance(value, list) else value
    return value.split(";")[0].strip().lower()


def errors_are_json(ctx, response, case):
    """Every 4xx and 5xx is ``{"error": "<one line>", "status": <its code>, ...}`` as application/json (a HEAD
    answer has only the header)."""
    if response.status_code < 400:
        return None
    media_type = _media_type(response.headers)
    assert media_type == "application/json", (
        f"{response.status_code} answered {media_type or 'no Content-Type'}, not JSON: {response.content[:200]!r}")
    if response.request.method == "HEAD":
        assert not response.content
        return None
    body = json.loads(response.content)
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"] and "\n" not in body["error"], body
    assert body.get("status") == response.status_code, body
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, unsupported_method, allow_header_conformance,
          errors_are_json]


def _fill(path) -> None:
    with EventStore(path) as store:
        for i in range(EVENTS):
            store.add("enter" if i % 2 == 0 else "exit", i // 2, i, T0 + i, i % 3, EVENT_SOURCES[i % 5 == 0], "CPU")


@pytest.fixture()
def fuzzed_server(live_server, tmp_path):
    """(base URL, app): the app on waitress with an events database holding :data:`EVENTS` events, the demo video
    and no camera (a camera that does not open would make every ``source=camera`` a 503, which the fuzz run counts
    as a failure); the demo plays at its own rate and a stream lives on 5 s after a snapshot, so the snapshots of a
    run share one stream instead of compiling the model again each."""
    db = tmp_path / "fuzz-events.sqlite3"
    _fill(db)
    base, _, app = live_server(DATABASE=str(db), CAMERA=None, REALTIME=True, STREAM_GRACE=5.0)
    return base, app


@pytest.fixture()
def api_schema(fuzzed_server):
    base, _ = fuzzed_server
    config = schemathesis.Config.from_dict({
        "generation": {"max-examples": PER_OPERATION, "mode": "all"},
        "request-timeout": 60,
        "suppress-health-check": ["too_slow", "filter_too_much"],  # a snapshot may take a second
    })
    return schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)


# An include filter, not an exclude: schemathesis leaves out the operation that served the schema (GET /openapi.json)
# unless a filter selects it.
schema = schemathesis.pytest.from_fixture("api_schema").include(
    lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) not in NOT_FUZZED)


@schema.parametrize()
def test_app_answers_as_described(case):
    """Schemathesis' generated and boundary requests to every operation: no 5xx, the status, Content-Type, headers
    and JSON bodies as the document says, invalid parameters rejected with a 4xx, other methods a 405 with
    ``Allow``, and every error JSON."""
    case.call_and_validate(checks=CHECKS)


# -- the document itself ---------------------------------------------------------------------------------------------
@pytest.fixture()
def served(live_server):
    """(base URL, app, the document it serves)."""
    base, _, app = live_server()
    response = requests.get(f"{base}/openapi.json", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    return base, app, response.json()


def test_openapi_json_is_valid_openapi_31(served):
    _, _, document = served
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema schemathesis bundles
    assert document == build_document()


def test_every_route_and_method_is_described(served):
    _, app, document = served
    paths = document["paths"]
    routes = {_flask_path(rule.rule): rule for rule in app.url_map.iter_rules()}
    assert set(routes) == set(paths), "describe new endpoints in webapp/openapi.py (and drop removed ones)"
    for path, rule in routes.items():
        # every GET answers HEAD and OPTIONS too (Flask); only /video_feed's HEAD differs enough to be described
        described = {key for key in paths[path] if key in HTTP_METHODS}
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        assert methods <= described, f"{path}: {sorted(methods - described)} not described"
        assert described <= {m.lower() for m in rule.methods}, f"{path}: describes methods it does not have"
        variables = set(re.findall(r"{([^}]+)}", path))
        for method in described:
            operation = paths[path][method]
            params = [document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                      for p in operation.get("parameters", [])]
            assert {p["name"] for p in params if p["in"] == "path"} == variables, (method, path)
    assert "head" in paths["/video_feed"]


def test_other_methods_are_json_405s_as_described(served):
    base, _, document = served
    validator = jsonschema_rs.validator_for(
        {**document, "$ref": "#/components/responses/MethodNotAllowed/content/application~1json/schema"})
    for path in document["paths"]:
        url = base + path.replace("{filename}", "app.js").replace("{event_id}", "1")
        response = requests.post(url, timeout=30)
        assert response.status_code == 405, path
        assert response.headers["Content-Type"] == "application/json"
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}
        validator.validate(response.json())


def test_bad_host_is_a_described_json_400(served):
    base, _, document = served
    validator = jsonschema_rs.validator_for(
        {**document, "$ref": "#/components/responses/BadRequest/content/application~1json/schema"})
    response = requests.get(f"{base}/detections", headers={"Host": "rebound.example"}, timeout=30)
    assert response.status_code == 400
    validator.validate(response.json())
