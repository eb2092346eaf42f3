"""Class mode: the teacher behind an HTTP API (FastAPI on uvicorn), per-learner budgets, a hidden-split leaderboard.

FastAPI because it is the maintained ASGI stack the Jupyter world already ships beside (Starlette underneath), with
request parsing and threadpool offloading built in; uvicorn is its reference server. The teacher's forward runs in
the threadpool under one lock (the CPU's threads serve one batch at a time); SQLite (:mod:`labkit.course.store`)
holds every spend before the answer leaves. ``docs/course.md`` is the instructor's guide.
"""
from __future__ import annotations

import html
import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import canonical_name, dataset_info, load_dataset
from labkit.core.errors import InvalidQueryError, LabkitError
from labkit.core.metrics import accuracy, agreement
from labkit.core.models import model_for
from labkit.core.remote import NPY, REQUEST_IMAGES, decode_images, encode_array
from labkit.core.teachers import default_teacher_arch, get_teacher
from labkit.course.image_folder import load_image_folder
from labkit.course.store import CourseStore, Learner

#: the largest student state dict a submission may send
MAX_SUBMISSION_BYTES = 20 * 2 ** 20
#: architectures a learner may submit: the lab's image classifiers (the leaderboard names each one)
STUDENT_ARCHS = ("lenet5-half", "lenet5", "lenet5-db3-half", "lenet5-db3", "ideal-cnn", "alexnet-half", "alexnet")


@dataclass
class ServedTeacher:
    """The teacher's two boxes (decision, score), the split it grades on, and what learners may know of it."""

    dataset: str
    arch: str
    test_acc: float
    model: nn.Module
    decision: BlackBox
    score: BlackBox
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    split: str
    lock: threading.Lock


def load_served_teacher(dataset: str, teacher_arch: str | None = None, eval_folder: str | Path | None = None
                        ) -> ServedTeacher:
    """The lab's cached teacher for ``dataset`` on the CPU, and the hidden split: the data set's test split, or an
    instructor's folder of labelled images (``<folder>/<class name or index>/*.png``)."""
    dataset = canonical_name(dataset)
    info = dataset_info(dataset)
    arch = teacher_arch or default_teacher_arch(dataset)
    teacher = get_teacher(dataset, arch, device="cpu", progress=False)
    shape, c = info.image_shape, info.num_classes
    if eval_folder is not None:
        x, y = load_image_folder(eval_folder, info)
        split = f"private folder ({len(y):,} images)"
    else:
        test = load_dataset(dataset, "test", device="cpu")
        x, y, split = test.x, test.y, f"{dataset} test split ({len(test.y):,} images)"
    boxes = [BlackBox(teacher.model, access=a, input_shape=shape, num_classes=c, device="cpu", name=arch)
             for a in ("decision", "score")]
    return ServedTeacher(dataset, arch, teacher.test_acc, teacher.model, boxes[0], boxes[1], x, y, split,
                         threading.Lock())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(store: CourseStore, served: ServedTeacher, max_images: int = REQUEST_IMAGES,
               max_submission_bytes: int = MAX_SUBMISSION_BYTES) -> FastAPI:
    """The course server's app: ``/v1/me``, ``/v1/query``, ``/v1/submissions``, ``/v1/leaderboard``, and the
    HTML pages ``/`` (leaderboard) and ``/learner`` (one learner's page)."""
    app = FastAPI(title="labkit course server", docs_url=None, redoc_url=None)
    info = dataset_info(served.dataset)
    image_bytes = math.prod(info.image_shape) * 4

    def learner_of(request: Request) -> Learner | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.query_params.get("token", "")
        return store.learner(token) if token else None

    def unknown() -> JSONResponse:
        return _error(401, "Unknown or missing token: send 'Authorization: Bearer <token>' with the token your "
                           "instructor gave you (LABKIT_TOKEN).")

    def me(learner: Learner) -> dict[str, Any]:
        return {"name": learner.name, "access": learner.access, "budget": learner.budget, "spent": learner.spent,
                "remaining": learner.remaining, "calls": learner.calls,
                "spent_by_phase": store.spent_by_phase(learner.id), "dataset": served.dataset,
                "input_shape": list(info.image_shape), "num_classes": info.num_classes,
                "teacher_arch": served.arch, "teacher_acc": served.test_acc, "max_images": max_images}

    @app.get("/v1/me")
    def get_me(request: Request) -> Response:
        learner = learner_of(request)
        return JSONResponse(me(learner)) if learner else unknown()

    @app.post("/v1/query")
    async def query(request: Request, answer: str = "decision", phase: str = "default") -> Response:
        learner = learner_of(request)
        if learner is None:
            return unknown()
        if answer not in ("decision", "score"):
            return _error(400, f"answer must be 'decision' or 'score', got {answer!r}")
        if answer == "score" and learner.access != "score":
            return _error(403, "This token has decision access: the server answers class ids only. Ask for "
                               "answer=decision, or ask your instructor for a score token.")
        size = int(request.headers.get("content-length") or 0)
        if size > max_images * image_bytes + 4096:
            return _error(413, f"A request holds at most {max_images:,} images; split the batch (RemoteBlackBox "
                               "does). Nothing was counted.")
        body = await request.body()
        try:
            x = decode_images(body)
            if x.shape[0] > max_images:
                raise InvalidQueryError(f"A request holds at most {max_images:,} images, got {x.shape[0]:,}; "
                                        "split the batch.")
            served.decision._validate(x)
        except (ValueError, InvalidQueryError) as exc:
            return _error(400, f"Malformed batch: {exc} Send an .npy array of shape (N, "
                               f"{', '.join(map(str, info.image_shape))}), uint8, float16 or float32 in [0, 1]. "
                               "Nothing was counted.")
        n = int(x.shape[0])
        after = store.spend(learner.id, n, phase)
        if after is None:
            return _error(402, f"Query budget exhausted: {learner.spent:,} of {learner.budget:,} queries spent, and "
                               f"this call asks for {n:,} more. Nothing was answered or counted; ask your instructor "
                               "for a larger budget.")
        box = served.score if answer == "score" else served.decision

        def compute() -> np.ndarray:
            with served.lock:
                out = box(x, phase=phase).cpu()
            return out.float().numpy() if answer == "score" else out.to(torch.uint8).numpy()

        try:
            result = await run_in_threadpool(compute)
        except Exception as exc:  # the server's own failure: give the queries back
            store.refund(learner.id, n, phase)
            return _error(500, f"The teacher failed on this batch ({type(exc).__name__}); nothing was counted.")
        return Response(encode_array(result), media_type=NPY,
                        headers={"X-Labkit-Spent": str(after.spent), "X-Labkit-Remaining": str(after.remaining)})

    @app.post("/v1/submissions")
    async def submissions(request: Request, arch: str = "") -> Response:
        learner = learner_of(request)
        if learner is None:
            return unknown()
        if int(request.headers.get("content-length") or 0) > max_submission_bytes:
            return _error(413, f"A submission holds at most {max_submission_bytes // 2 ** 20} MiB: submit the "
                               "student's state dict only. Nothing was recorded.")
        body = await request.body()
        if len(body) > max_submission_bytes:
            return _error(413, "Submission too large. Nothing was recorded.")
        try:
            result = await run_in_threadpool(evaluate_submission, served, body, arch)
        except LabkitError as exc:
            return _error(422, f"{exc} Nothing was recorded.")
        sid = store.add_submission(learner, arch, result["accuracy"], result["agreement"], served.split)
        return JSONResponse({"id": sid, "learner": learner.name, "arch": arch, **result,
                             "queries": store.learner_spent(learner.id), "access": learner.access,
                             "split": served.split})

    @app.get("/v1/leaderboard")
    def leaderboard_json() -> Response:
        return JSONResponse({"split": served.split, "submissions": store.submissions()})

    @app.get("/", response_class=HTMLResponse)
    @app.get("/leaderboard", response_class=HTMLResponse)
    def leaderboard_page() -> HTMLResponse:
        return HTMLResponse(leaderboard_html(store.submissions(), served))

    @app.get("/learner", response_class=HTMLResponse)
    def learner_page(request: Request) -> Response:
        learner = learner_of(request)
        if learner is None:
            return HTMLResponse("<h1>Unknown token</h1><p>Open /learner?token=YOUR_TOKEN.</p>", status_code=401)
        return HTMLResponse(learner_html(me(learner), store.submissions(learner.id)))

    return app


def evaluate_submission(served: ServedTeacher, body: bytes, arch: str) -> dict[str, float]:
    """Load a submitted state dict into ``arch`` and grade it on the hidden split. Raises LabkitError (nothing
    recorded) for an unknown architecture, bytes that are not a state dict, wrong or non-finite weights."""
    if arch not in STUDENT_ARCHS:
        raise LabkitError(f"Unknown student architecture {arch!r}; submit one of {', '.join(STUDENT_ARCHS)}.")
    try:
        state = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LabkitError(f"The submission is not a saved state dict ({type(exc).__name__}); send "
                          "torch.save(student.state_dict()) (labkit.submit does).") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LabkitError("The submission is not a state dict of tensors; send torch.save(student.state_dict()).")
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise LabkitError("The submitted weights hold NaN or infinite values; train again (or load a finite "
                          "checkpoint) before submitting.")
    model = model_for(arch, dataset_info(served.dataset))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise LabkitError(f"The weights do not fit architecture {arch!r} ({first}); pass the student's real "
                          "architecture as arch=.") from exc
    model.eval()
    with served.lock:
        acc = accuracy(model, served.eval_x, served.eval_y)
        agree = agreement(model, served.model, served.eval_x)
    return {"accuracy": float(acc), "agreement": float(agree)}


def _svg_scatter(rows: list[dict[str, Any]]) -> str:
    """Accuracy against queries (log axis), one dot per submission, as inline SVG (no script needed)."""
    w, h, pad = 640, 360, 48
    if not rows:
        return f'<svg width="{w}" height="{h}" role="img"><text x="{pad}" y="{h // 2}">no submissions yet</text></svg>'
    qs = [math.log10(max(r["queries"], 1)) for r in rows]
    q_lo, q_hi = min(qs + [0.0]), max(qs + [1.0])
    dots = []
    for r, q in zip(rows, qs):
        x = pad + (w - 2 * pad) * (q - q_lo) / max(q_hi - q_lo, 1e-9)
        y = h - pad - (h - 2 * pad) * r["accuracy"]
        color = "#1f77b4" if r["access"] == "decision" else "#d62728"
        label = html.escape(f"{r['learner']}: {100 * r['accuracy']:.2f}% at {r['queries']:,} queries ({r['access']})")
        dots.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{label}</title>'
                    "</circle>")
    axes = (f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>'
            f'<text x="{w // 2}" y="{h - 10}" text-anchor="middle">teacher queries (log scale, '
            f'10^{q_lo:.0f} to 10^{q_hi:.1f})</text>'
            f'<text x="14" y="{h // 2}" transform="rotate(-90 14 {h // 2})" text-anchor="middle">accuracy</text>')
    return f'<svg width="{w}" height="{h}" role="img" aria-label="accuracy against queries">{axes}{"".join(dots)}</svg>'


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}}td:first-child,th:first-child{{text-align:left}}
</style></head><body>{body}</body></html>"""


def leaderboard_html(rows: list[dict[str, Any]], served: ServedTeacher) -> str:
    """The class leaderboard: every learner's best submission, and the accuracy-against-queries figure."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["learner"] not in best or r["accuracy"] > best[r["learner"]]["accuracy"]:
            best[r["learner"]] = r
    ranked = sorted(best.values(), key=lambda r: (-r["accuracy"], r["queries"]))
    lines = "".join(f'<tr class="entry"><td>{html.escape(r["learner"])}</td><td>{100 * r["accuracy"]:.2f} %</td>'
                    f'<td>{100 * r["agreement"]:.2f} %</td><td>{r["queries"]:,}</td><td>{r["access"]}</td>'
                    f'<td>{html.escape(r["arch"])}</td></tr>' for r in ranked)
    body = (f"<h1>Class leaderboard</h1><p>Teacher {html.escape(served.arch)} on {html.escape(served.dataset)}; "
            f"students graded on {html.escape(served.split)}, which no learner is served. {len(rows)} "
            "submission(s); each learner's best is listed. Blue: decision access, red: score access.</p>"
            f"{_svg_scatter(rows)}<table><tr><th>learner</th><th>accuracy</th><th>agreement</th>"
            f"<th>queries spent</th><th>access</th><th>student</th></tr>{lines}</table>")
    return PAGE.format(title="Class leaderboard", body=body)


def learner_html(me: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One learner's page: budget, spent per phase, and their submissions."""
    phases = "".join(f"<tr><td>{html.escape(p)}</td><td>{q:,}</td></tr>" for p, q in me["spent_by_phase"].items())
    subs = "".join(f'<tr class="entry"><td>{r["id"]}</td><td>{100 * r["accuracy"]:.2f} %</td>'
                   f'<td>{100 * r["agreement"]:.2f} %</td><td>{r["queries"]:,}</td><td>{html.escape(r["arch"])}</td>'
                   "</tr>" for r in rows)
    body = (f"<h1>{html.escape(me['name'])}</h1><p>{me['access']} access; {me['spent']:,} of {me['budget']:,} "
            f"queries spent ({me['remaining']:,} left) in {me['calls']:,} calls.</p><h2>Spent per phase</h2>"
            f"<table><tr><th>phase</th><th>queries</th></tr>{phases}</table><h2>Submissions</h2>"
            f"<table><tr><th>#</th><th>accuracy</th><th>agreement</th><th>queries</th><th>student</th></tr>{subs}"
            "</table>")
    return PAGE.format(title=me["name"], body=body)
