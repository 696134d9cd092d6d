"""Flask and Django applications on deferthreads.wsgi, end to end over real sockets with http.client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_wsgi_support import Served


def flaskApp() -> Any:
    from flask import Flask, Response, abort, jsonify, request, stream_with_context

    app = Flask("wsgi-test")

    @app.get("/hello/<name>")
    def hello(name: str) -> Any:
        return jsonify(hello=name, q=request.args.get("q"))

    @app.post("/echo")
    def echo() -> Any:
        return jsonify(json=request.get_json(), length=request.content_length)

    @app.post("/form")
    def form() -> Any:
        upload = request.files["f"]
        return jsonify(field=request.form["field"], upload=upload.read().decode())

    @app.get("/stream")
    def stream() -> Any:
        def generate() -> Iterator[str]:
            for i in range(5):
                yield f"{i},"

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @app.get("/missing")
    def missing() -> Any:
        abort(404)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    return app


@pytest.fixture(scope="module")
def flask() -> Iterator[Served]:
    s = Served(flaskApp().wsgi_app)
    yield s
    s.stop()


def test_flaskJsonRouteWithQuery(flask: Served) -> None:
    """A Flask route with a path parameter and a query string answers JSON."""
    status, headers, body = flask.get("/hello/w%C3%B6rld?q=1")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"hello": "w\u00f6rld", "q": "1"}


def test_flaskReadsAJsonBody(flask: Served) -> None:
    """request.get_json() reads the body through wsgi.input."""
    status, _, body = flask.get("/echo", method="POST", body=b'{"a": [1, 2]}',
                                headers={"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"json": {"a": [1, 2]}, "length": 13}


def test_flaskParsesAMultipartUpload(flask: Served) -> None:
    """A multipart form with a file larger than the prefetch bound streams through wsgi.input."""
    upload = "x" * 200_000
    boundary = "----wsgitest"
    payload = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n"
        f"Content-Type: text/plain\r\n\r\n{upload}\r\n--{boundary}--\r\n"
    ).encode()
    status, _, body = flask.get("/form", method="POST", body=payload,
                                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and json.loads(body) == {"field": "value", "upload": upload}


def test_flaskStreamsAGenerator(flask: Served) -> None:
    """A streamed Flask response arrives chunked and whole."""
    status, headers, body = flask.get("/stream")
    assert status == 200 and body == b"0,1,2,3,4," and headers.get("transfer-encoding") == "chunked"


def test_flaskErrorsAreItsOwnPages(flask: Served) -> None:
    """abort(404) is Flask's 404 page; an exception in a view is Flask's 500 page."""
    assert flask.get("/missing")[0] == 404
    assert flask.get("/boom")[0] == 500
    assert flask.get("/hello/again")[0] == 200


def test_flaskHeadHasNoBodyButTheLength(flask: Served) -> None:
    """HEAD on a Flask route: the GET's Content-Length, no body."""
    _, getHeaders, getBody = flask.get("/hello/x")
    status, headers, body = flask.get("/hello/x", method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-length"] == getHeaders["content-length"] == str(len(getBody))


def test_flaskKeepAliveServesManyRequestsOnOneConnection(flask: Served) -> None:
    """Fifty requests on one keep-alive connection, each answered."""
    conn = flask.client()
    try:
        for i in range(50):
            conn.request("GET", f"/hello/{i}")
            response = conn.getresponse()
            assert json.loads(response.read())["hello"] == str(i)
    finally:
        conn.close()


def djangoApp() -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="wsgi-tests-only",
            MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
            DATABASES={},
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _djangoViews() -> list[Any]:
    from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import path

    def hello(request: Any, name: str) -> Any:
        return JsonResponse({"hello": name, "method": request.method, "q": request.GET.get("q")})

    def post(request: Any) -> Any:
        return JsonResponse({"body": request.body.decode(), "type": request.content_type})

    def stream(request: Any) -> Any:
        return StreamingHttpResponse((f"{i};" for i in range(3)), content_type="text/plain")

    def teapot(request: Any) -> Any:
        return HttpResponse("short and stout", status=418)

    return [
        path("hello/<str:name>", hello),
        path("post", post),
        path("stream", stream),
        path("teapot", teapot),
    ]


urlpatterns: list[Any] = []


@pytest.fixture(scope="module")
def djangoServed() -> Iterator[Served]:
    app = djangoApp()
    urlpatterns[:] = _djangoViews()
    s = Served(app)
    yield s
    s.stop()


def test_djangoJsonView(djangoServed: Served) -> None:
    """A Django view with a path converter and a query string answers JSON."""
    status, headers, body = djangoServed.get("/hello/django?q=2")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"hello": "django", "method": "GET", "q": "2"}


def test_djangoReadsThePostBody(djangoServed: Served) -> None:
    """request.body holds the posted bytes."""
    status, _, body = djangoServed.get("/post", method="POST", body=b"a=1&b=2",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    assert json.loads(body) == {"body": "a=1&b=2", "type": "application/x-www-form-urlencoded"}


def test_djangoStreamingResponse(djangoServed: Served) -> None:
    """StreamingHttpResponse arrives whole."""
    assert djangoServed.get("/stream")[2] == b"0;1;2;"


def test_djangoStatusAndNotFound(djangoServed: Served) -> None:
    """A custom status passes through; an unknown URL is Django's 404."""
    assert djangoServed.get("/teapot")[:3:2] == (418, b"short and stout")
    assert djangoServed.get("/nowhere")[0] == 404
