"""A teacher served over HTTP (class mode): :class:`RemoteBlackBox` is :class:`~labkit.core.blackbox.BlackBox`'s twin.

The box a learner holds keeps the same interface (phases, counts, budgets, errors) but holds no weights: every
batch goes to the course server (``python -m labkit serve``), which checks the learner's token, spends the
learner's budget atomically and answers class ids (decision tokens) or probabilities (score tokens). Batches
travel as ``.npy`` bytes in the most compact form that loses nothing (:func:`encode_images`): uint8 when every
pixel is a multiple of 1/255, float16 when that is exact, float32 otherwise; so a method gets the same answers
through the server as in process. ``LABKIT_TEACHER_URL`` and ``LABKIT_TOKEN`` make every run use the served teacher.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import threading
import urllib.parse
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.errors import AccessDenied, ConfigError, InvalidQueryError, LabkitError, QueryBudgetExceeded

#: the environment variables that point a notebook or a run at a served teacher
URL_ENV, TOKEN_ENV = "LABKIT_TEACHER_URL", "LABKIT_TOKEN"
#: images per HTTP request (a multiple of the box's CPU chunk, so server-side chunks match in-process ones)
REQUEST_IMAGES = 4096
NPY = "application/x-npy"


def served_teacher() -> tuple[str, str] | None:
    """``(url, token)`` from ``LABKIT_TEACHER_URL`` / ``LABKIT_TOKEN``, or None when no teacher is served."""
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise AccessDenied(f"{URL_ENV} is set but {TOKEN_ENV} is not: ask your instructor for your token.")
    return url, token


def encode_images(x: torch.Tensor) -> bytes:
    """``x`` (float, in [0, 1]) as ``.npy`` bytes: uint8, float16 or float32, the first that is exact."""
    xc = x.detach().float().cpu().contiguous()
    as_u8 = torch.round(xc * 255.0)
    if torch.equal(as_u8 / 255.0, xc):
        arr: np.ndarray = as_u8.to(torch.uint8).numpy()
    elif torch.equal(xc.half().float(), xc):
        arr = xc.half().numpy()
    else:
        arr = xc.numpy()
    return encode_array(arr)


def decode_images(data: bytes) -> torch.Tensor:
    """The float32 batch :func:`encode_images` sent (uint8 pixels are divided by 255). Raises ValueError on bytes
    that are not an ``.npy`` array of uint8, float16 or float32."""
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if arr.dtype == np.uint8:
        return torch.from_numpy(arr.copy()).float() / 255.0
    if arr.dtype in (np.float16, np.float32):
        return torch.from_numpy(arr.astype(np.float32, copy=True))
    raise ValueError(f"pixels must be uint8, float16 or float32, got {arr.dtype}")


def encode_array(arr: np.ndarray) -> bytes:
    """Any array as ``.npy`` bytes (the server's answers)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


class CourseClient:
    """One learner's HTTP connection to the course server (keep-alive, one connection per thread)."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        parts = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LabkitError(f"{url!r} is not a course server address; expected e.g. http://127.0.0.1:8000")
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request; retried once on a dropped keep-alive connection. Returns status, headers and body."""
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, self._prefix + path, body=body, headers=hdrs)
                resp = conn.getresponse()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt:
                    raise LabkitError(f"the course server at {self.url} did not answer ({exc}); is it running? "
                                      "Ask your instructor, or start one with `python -m labkit serve`.") from exc
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        """A request whose answer is JSON; a server error becomes the matching labkit exception."""
        status, hdrs, data = self.request(method, path, body, headers)
        if status >= 400:
            raise_for(status, data)
        return dict(json.loads(data))


def raise_for(status: int, data: bytes) -> None:
    """The labkit exception for a server error (its message is the server's, which says what to do)."""
    try:
        detail = json.loads(data).get("error", "")
    except ValueError:
        detail = data[:200].decode("utf-8", "replace")
    if status == 401 or status == 403:
        raise AccessDenied(detail)
    if status == 402:
        raise QueryBudgetExceeded.from_server(detail)
    if status in (400, 413, 415, 422):
        raise InvalidQueryError(detail)
    raise LabkitError(f"course server error {status}: {detail}")


class RemoteBlackBox(BlackBox):
    """The course server's teacher behind :class:`BlackBox`'s interface (same phases, counts, budget and errors).

    >>> box = RemoteBlackBox("http://127.0.0.1:8000", token)   # or labkit.teacher_box() with LABKIT_TEACHER_URL
    >>> labels = box(images)   # int64 class ids; counted here and spent on the server

    ``access`` defaults to the token's level; a score token may also ask for decisions. ``budget`` (optional) caps
    this box below what the learner has left on the server; the server's budget is enforced there either way.
    """

    def __init__(self, url: str, token: str, access: str | None = None, budget: int | None = None, *,
                 name: str | None = None, timeout: float = 120.0) -> None:
        self._client = CourseClient(url, token, timeout)
        me = self._client.json("GET", "/v1/me")
        level = str(me["access"])
        access = access or level
        if access == "white":
            raise AccessDenied("A served teacher answers class ids or scores only; white-box methods (ZSKD's "
                               "crafting) need the teacher's weights: run them on the lab's own teacher "
                               "(run_method(..., use_served=False), or unset LABKIT_TEACHER_URL).")
        if access == "score" and level != "score":
            raise AccessDenied("Your token has decision access: the server answers class ids only. Use a "
                               "decision-based method, or ask your instructor for a score token.")
        if access not in ("decision", "score"):
            raise InvalidQueryError(f"access must be 'decision' or 'score', got {access!r}")
        left = int(me["remaining"])
        self._init_counters(access=access, budget=left if budget is None else min(int(budget), left),
                            input_shape=tuple(me["input_shape"]), num_classes=int(me["num_classes"]),
                            device=torch.device("cpu"), value_range=(0.0, 1.0),
                            name=name or f"{me['teacher_arch']} teacher served at {self._client.url}")
        self.server_info: dict[str, Any] = me
        self._precision = "fp32"
        self._compiled = False

    @property
    def module(self) -> nn.Module:
        """Never: the weights stay on the server."""
        raise AccessDenied("The served teacher's weights stay on the server; a RemoteBlackBox answers queries only.")

    def __repr__(self) -> str:
        return f"RemoteBlackBox({self._client.url!r}, access={self._access!r}, queries={self._queries:,})"

    def _answer_batch(self, x: torch.Tensor, phase: str) -> torch.Tensor:
        parts = []
        for s in range(0, x.shape[0], REQUEST_IMAGES):
            status, _, data = self._client.request(
                "POST", f"/v1/query?answer={self._access}&phase={urllib.parse.quote(phase)}",
                encode_images(x[s:s + REQUEST_IMAGES]), {"Content-Type": NPY})
            if status >= 400:
                raise_for(status, data)
            parts.append(torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False).copy()))
        out = torch.cat(parts)
        return out.long().to(x.device) if self._access == "decision" else out.float().to(x.device)

    def spent(self) -> dict[str, Any]:
        """What the server has recorded for this learner: budget, spent, remaining and spent per phase."""
        return self._client.json("GET", "/v1/me")


def _check_served_dataset(me: dict[str, Any], dataset: str) -> None:
    """A clear error when the course server serves another data set's teacher than the one asked for."""
    from labkit.core.data import canonical_name

    if me["dataset"] != canonical_name(dataset):
        raise ConfigError(f"The course server ({URL_ENV}) serves a {me['dataset']} teacher, not {dataset}. Use "
                          f"DATASET = {me['dataset']!r}, or unset {URL_ENV} to use the lab's own {dataset} teacher.")


def teacher_box(dataset: str = "fashion-mnist", access: str = "decision", budget: int | None = None,
                device: torch.device | str | None = None) -> BlackBox:
    """The teacher's box: served (:class:`RemoteBlackBox`) when ``LABKIT_TEACHER_URL`` is set, else in process."""
    served = served_teacher()
    if served is not None:
        box = RemoteBlackBox(*served, access=access, budget=budget)
        _check_served_dataset(box.server_info, dataset)
        return box
    from labkit.core.data import dataset_info
    from labkit.core.teachers import get_teacher

    info = dataset_info(dataset)
    teacher = get_teacher(dataset, device=device, progress=False)
    return BlackBox(teacher.model, access=access, budget=budget, input_shape=info.image_shape,
                    num_classes=info.num_classes, device=device,
                    name=f"{teacher.spec.arch} teacher, {teacher.test_acc:.2%} test accuracy")


def teacher_card(dataset: str = "fashion-mnist", device: torch.device | str | None = None) -> dict[str, Any]:
    """What a learner may know about the teacher: architecture, test accuracy and where it answers from. In class
    mode it comes from the server (no weights are loaded); in process, from the lab's checkpoint."""
    served = served_teacher()
    if served is not None:
        me = CourseClient(*served).json("GET", "/v1/me")
        _check_served_dataset(me, dataset)
        return {"arch": me["teacher_arch"], "test_acc": float(me["teacher_acc"]), "parameters": None,
                "source": f"served at {served[0]} (class mode: the weights stay on the server)"}
    from labkit.core.models import count_parameters
    from labkit.core.teachers import get_teacher

    teacher = get_teacher(dataset, device=device, progress=False)
    return {"arch": teacher.spec.arch, "test_acc": teacher.test_acc, "parameters": count_parameters(teacher.model),
            "source": f"{teacher.source} from {teacher.path.name}"}


def access_boxes(dataset: str = "fashion-mnist", levels: tuple[str, ...] = ("decision", "score", "white"),
                 device: torch.device | str | None = None) -> tuple[dict[str, BlackBox], dict[str, str]]:
    """One box per access level that this learner may open, and for each level refused, why.

    In process every level opens. In class mode a decision token opens ``decision``, a score token ``decision``
    and ``score``; ``white`` never does (the weights stay on the server).
    """
    boxes: dict[str, BlackBox] = {}
    refused: dict[str, str] = {}
    for level in levels:
        try:
            boxes[level] = teacher_box(dataset, access=level, device=device)
        except AccessDenied as exc:
            refused[level] = str(exc)
    return boxes, refused


def submit(student: nn.Module, arch: str, url: str | None = None, token: str | None = None) -> dict[str, Any]:
    """Send a trained student (its state dict, of architecture ``arch``) to the class leaderboard.

    The server evaluates it on a split it never serves and records accuracy, agreement, your spent queries and
    access level. Returns that record. ``url``/``token`` default to ``LABKIT_TEACHER_URL``/``LABKIT_TOKEN``.
    """
    if url is None or token is None:
        served = served_teacher()
        if served is None:
            raise LabkitError(f"No course server: set {URL_ENV} and {TOKEN_ENV} (your instructor gives both), or "
                              "pass url= and token=.")
        url, token = url or served[0], token or served[1]
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in student.state_dict().items()}, buf)
    return CourseClient(url, token).json("POST", f"/v1/submissions?arch={urllib.parse.quote(arch)}",
                                         buf.getvalue(), {"Content-Type": "application/octet-stream"})
