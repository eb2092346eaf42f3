"""Class mode (issue 31): the teacher served over HTTP by a real server process, per-learner budgets in SQLite.

The server runs as ``python -m labkit serve`` on loopback; learners are created in its SQLite file. The tests check
that a served box answers and counts exactly as the in-process one (so runs give the same records), that budgets
hold under concurrent calls, that a SIGKILL loses no spent query or submission, and that bad input is refused with
a clear error and no state change.
"""
from __future__ import annotations

import io
import json
import os
import statistics
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from labkit import AccessDenied, BlackBox, InvalidQueryError, QueryBudgetExceeded, run_method  # noqa: E402
from labkit.core import paths  # noqa: E402
from labkit.core.data import dataset_info, load_dataset  # noqa: E402
from labkit.core.models import model_for  # noqa: E402
from labkit.core.remote import (  # noqa: E402
    CourseClient,
    RemoteBlackBox,
    decode_images,
    encode_array,
    encode_images,
    submit,
)
from labkit.core.teachers import get_teacher  # noqa: E402
from labkit.course.store import CourseStore  # noqa: E402
from tests.course_support import CourseServer  # noqa: E402

INFO = dataset_info("fashion-mnist")


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CourseServer, CourseStore]]:
    folder = tmp_path_factory.mktemp("course")
    store = CourseStore(folder / "class.sqlite")
    server = CourseServer(folder / "class.sqlite", folder / "server.log").start()
    yield server, store
    server.stop()


def learner(store: CourseStore, access: str = "decision", budget: int = 10 ** 7) -> str:
    return store.add_learner(f"{access}-{uuid.uuid4().hex[:8]}", access, budget)


def mixed_batch(n: int = 96) -> torch.Tensor:
    """Real images (uint8-exact), float16-exact noise, and float32 noise: the three wire forms."""
    x = load_dataset("fashion-mnist", "test", device="cpu").x[:n // 3]
    g = torch.Generator().manual_seed(0)
    half = torch.rand((n // 3, 1, 28, 28), generator=g).half().float()
    full = torch.rand((n - 2 * (n // 3), 1, 28, 28), generator=g)
    return torch.cat([x, half, full])


def test_the_wire_form_is_compact_and_loses_nothing() -> None:
    x = mixed_batch()
    for part, itemsize in ((x[:32], 1), (x[32:64], 2), (x[64:], 4)):
        data = encode_images(part)
        assert len(data) < part.numel() * itemsize + 256  # uint8, float16, float32 as each allows
        assert torch.equal(decode_images(data), part)


def test_a_served_box_answers_and_counts_as_the_in_process_box(course: tuple[CourseServer, CourseStore]) -> None:
    server, store = course
    token = learner(store, "score")
    teacher = get_teacher("fashion-mnist", device="cpu", progress=False)
    x = mixed_batch()
    for access in ("decision", "score"):
        local = BlackBox(teacher.model, access=access, input_shape=INFO.image_shape, num_classes=INFO.num_classes,
                         device="cpu")
        remote = RemoteBlackBox(server.url, token, access=access)
        with local.phase("probe"), remote.phase("probe"):
            a, b = local(x), remote(x)
        assert a.dtype == b.dtype and torch.equal(a, b)
        assert local(x[:5], phase="more").shape == remote(x[:5], phase="more").shape
        assert remote.queries == local.queries == 101 and remote.queries_by_phase == local.queries_by_phase
        assert remote.calls == local.calls == 2
        with pytest.raises(AccessDenied, match="weights stay on the server"):
            _ = remote.module
    me = CourseClient(server.url, token).json("GET", "/v1/me")
    assert me["spent"] == 202 and me["spent_by_phase"] == {"probe": 192, "more": 10}


def test_a_decision_only_run_through_the_server_gives_the_same_record(course: tuple[CourseServer, CourseStore]
                                                                      ) -> None:
    server, store = course
    token = learner(store, "decision")
    here = run_method("db3kd", profile="smoke", seed=0, progress=False).record
    served = run_method("db3kd", profile="smoke", seed=0, progress=False, teacher_url=server.url, token=token).record
    assert served.queries == here.queries > 0 and served.queries_by_phase == here.queries_by_phase
    assert served.student_acc == here.student_acc and served.transfer_set_size == here.transfer_set_size
    assert served.agreement is None and here.agreement is not None  # the server measures it at submission
    assert CourseClient(server.url, token).json("GET", "/v1/me")["spent"] == here.queries


def test_notebook_01_runs_unchanged_through_the_server(course: tuple[CourseServer, CourseStore],
                                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The notebook's own box and its main run go through the server; the kd run spends what it spends in
    process, and prints the same accuracy."""
    server, store = course
    token = learner(store, "score")
    printed = _run_notebook("01_kd_fundamentals.ipynb", monkeypatch, server, token)
    assert "served at" in printed
    monkeypatch.delenv("LABKIT_TEACHER_URL")
    here = run_method("kd", profile="smoke", seed=0, progress=False, tau=4.0, alpha=0.1).record
    spent = CourseClient(server.url, token).json("GET", "/v1/me")["spent_by_phase"]
    for phase, n in here.queries_by_phase.items():
        assert spent[phase] == n
    kd_line = next(line for line in printed.splitlines() if line.split()[:2] == ["kd", "score"])
    assert f"{100 * here.student_acc:.2f}%" in kd_line


def _run_notebook(name: str, monkeypatch: pytest.MonkeyPatch, server: CourseServer, token: str) -> str:
    """Run a lab notebook (smoke) with the served teacher in its environment; everything it printed."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    monkeypatch.setenv("LABKIT_TEACHER_URL", server.url)
    monkeypatch.setenv("LABKIT_TOKEN", token)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(paths.REPO_ROOT / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(paths.REPO_ROOT / "notebooks")}}).execute()
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebook_00_opens_only_what_a_decision_token_allows(course: tuple[CourseServer, CourseStore],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Orientation in class mode: the teacher's card comes from the server, the score and white boxes are refused
    with their reasons, and every query the notebook counts is spent on the server (5 images, the 8-query box's
    5, and the 1,000 test images of the exercise's last line)."""
    server, store = course
    token = learner(store, "decision")
    printed = _run_notebook("00_orientation.ipynb", monkeypatch, server, token)
    assert "its weights stay on the server" in printed and "served at" in printed
    assert "score box refused: Your token has decision access" in printed
    assert "white box refused: A served teacher answers class ids or scores only" in printed
    me = CourseClient(server.url, token).json("GET", "/v1/me")
    assert me["spent"] == 5 + 5 + 1000, me


def test_served_teacher_of_another_data_set_and_white_box_runs(course: tuple[CourseServer, CourseStore],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A box for another data set's teacher is refused with the way out; a white-box run uses the lab's own
    teacher only when asked (``use_served=False``), and spends nothing on the server."""
    from labkit import ConfigError, teacher_box

    server, store = course
    token = learner(store, "score")
    monkeypatch.setenv("LABKIT_TEACHER_URL", server.url)
    monkeypatch.setenv("LABKIT_TOKEN", token)
    with pytest.raises(ConfigError, match="serves a fashion-mnist teacher, not toy2d-spirals-3. Use DATASET"):
        teacher_box("toy2d-spirals-3")
    with pytest.raises(AccessDenied, match="use_served=False"):
        run_method("zskd", profile="smoke", progress=False, impressions=40, iterations=2, epochs=1)
    local = run_method("kd-edge", profile="smoke", progress=False, epochs=1, use_served=False).record
    assert local.agreement is not None and local.queries > 0
    assert CourseClient(server.url, token).json("GET", "/v1/me")["spent"] == 0


def test_budgets_hold_when_concurrent_calls_race_for_the_last_queries(course: tuple[CourseServer, CourseStore]
                                                                       ) -> None:
    server, store = course
    token = learner(store, "decision", budget=1000)
    x = mixed_batch(64)
    first = RemoteBlackBox(server.url, token)
    first(torch.cat([x] * 15)[:936])  # 64 queries left
    outcomes: list[str] = []
    racers = [RemoteBlackBox(server.url, token) for _ in range(12)]  # each sees 64 left: only the server decides

    def call(box: RemoteBlackBox) -> None:
        try:
            box(x)
            outcomes.append("answered")
        except QueryBudgetExceeded as exc:
            assert "Nothing was answered" in str(exc)
            outcomes.append("refused")

    threads = [threading.Thread(target=call, args=(box,)) for box in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["answered"] + ["refused"] * 11
    me = CourseClient(server.url, token).json("GET", "/v1/me")
    assert me["spent"] == 1000 and me["remaining"] == 0


def _raw(server: CourseServer, token: str, body: bytes, answer: str = "decision") -> tuple[int, dict[str, str], bytes]:
    return CourseClient(server.url, token).request("POST", f"/v1/query?answer={answer}", body,
                                                   {"Content-Type": "application/x-npy"})


def _npy(arr: np.ndarray) -> bytes:
    return encode_array(arr)


def test_bad_queries_are_refused_clearly_and_change_nothing(course: tuple[CourseServer, CourseStore]) -> None:
    server, store = course
    token = learner(store, "decision", budget=500)
    good = RemoteBlackBox(server.url, token)
    good(mixed_batch(30))
    before = CourseClient(server.url, token).json("GET", "/v1/me")
    with pytest.raises(AccessDenied, match="Unknown or missing token"):
        RemoteBlackBox(server.url, "not-a-token")
    with pytest.raises(AccessDenied, match="decision access"):
        RemoteBlackBox(server.url, token, access="score")
    status, headers, body = _raw(server, token, encode_images(mixed_batch(6)), answer="score")
    assert status == 403 and b"class ids only" in body
    assert set(headers) & {"x-labkit-spent", "x-labkit-remaining"} == set()
    assert not any(ch.isdigit() for ch in json.loads(body)["error"])  # no number, so no score, in the refusal
    cases = {b"not an array": "Malformed batch", _npy(np.zeros((4, 28, 28), np.float32)): "Malformed batch",
             _npy(np.full((4, 1, 28, 28), np.nan, np.float32)): "NaN",
             _npy(np.full((4, 1, 28, 28), 2.0, np.float32)): "Values must lie in",
             _npy(np.zeros((4, 1, 28, 28), np.int32)): "uint8, float16 or float32",
             _npy(np.zeros((4097, 1, 28, 28), np.uint8)): "at most 4,096 images"}
    for payload, message in cases.items():
        status, _, body = _raw(server, token, payload)
        assert status in (400, 413) and message in json.loads(body)["error"], (status, body[:200])
    with pytest.raises(InvalidQueryError, match="Expected a batch"):
        good(torch.zeros(3, 28, 28))  # the box checks locally as the in-process one does
    with pytest.raises(QueryBudgetExceeded):
        RemoteBlackBox(server.url, token)(torch.zeros(471, 1, 28, 28))
    after = CourseClient(server.url, token).json("GET", "/v1/me")
    assert after == before and after["spent"] == 30


def _state_bytes(model: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def test_submissions_are_graded_on_the_hidden_split_and_bad_ones_are_refused(
        course: tuple[CourseServer, CourseStore]) -> None:
    server, store = course
    token = learner(store, "score", budget=100)
    RemoteBlackBox(server.url, token)(mixed_batch(12))
    torch.manual_seed(0)
    student = model_for("lenet5-half", INFO)
    result = submit(student, "lenet5-half", server.url, token)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["queries"] == 12 and result["access"] == "score"
    assert "test split" in result["split"]
    count = len(store.submissions())
    client = CourseClient(server.url, token)
    nan_student = model_for("lenet5-half", INFO)
    with torch.no_grad():
        next(nan_student.parameters()).fill_(float("nan"))
    bad = {("lenet5-half", _state_bytes(model_for("lenet5", INFO))): "do not fit architecture",
           ("resnet-9000", _state_bytes(student)): "Unknown student architecture",
           ("lenet5-half", _state_bytes(nan_student)): "NaN",
           ("lenet5-half", b"garbage"): "not a saved state dict",
           ("lenet5-half", b"0" * (21 * 2 ** 20)): "at most 20 MiB"}
    for (arch, payload), message in bad.items():
        status, _, body = client.request("POST", f"/v1/submissions?arch={arch}", payload)
        assert status in (413, 422) and message in json.loads(body)["error"], (status, body[:300])
    assert len(store.submissions()) == count


def test_thirty_learners_under_load_and_a_sigkill_lose_nothing(course: tuple[CourseServer, CourseStore],
                                                               tmp_path: Path) -> None:
    """30 concurrent learners × 100 calls of 64 images: every learner's spent equals what it sent; then the server
    is killed mid-load and restarted: no acknowledged query or submission is lost and no budget is reset."""
    server, store = course
    learners, calls, batch = 30, 100, 64
    tokens = [learner(store, "decision", budget=calls * batch) for _ in range(learners)]
    x = (torch.rand((batch, 1, 28, 28), generator=torch.Generator().manual_seed(1)) * 255).round() / 255
    body = encode_images(x)
    latencies: list[float] = []
    lock = threading.Lock()

    def learner_loop(token: str, n: int, sent: list[int]) -> None:
        client = CourseClient(server.url, token)
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                status, _, data = client.request("POST", "/v1/query?phase=load", body,
                                                 {"Content-Type": "application/x-npy"})
            except Exception:
                return  # the server was killed under this learner
            if status != 200:
                return
            with lock:
                latencies.append(time.perf_counter() - t0)
            sent.append(batch)

    sent = [[] for _ in tokens]  # type: list[list[int]]
    start = time.perf_counter()
    threads = [threading.Thread(target=learner_loop, args=(t, calls, s)) for t, s in zip(tokens, sent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for token, s in zip(tokens, sent):
        me = CourseClient(server.url, token).json("GET", "/v1/me")
        assert me["spent"] == sum(s) == calls * batch and me["remaining"] == 0
    lat = sorted(latencies)
    report = {"learners": learners, "calls": calls, "batch": batch, "wall_s": round(wall, 2),
              "p50_ms": round(1000 * statistics.median(lat), 2), "p99_ms": round(1000 * lat[int(0.99 * len(lat))], 2),
              "images_per_s": round(learners * calls * batch / wall), "cpu_count": os.cpu_count()}
    print("load:", report)
    (paths.artifacts_dir()).mkdir(parents=True, exist_ok=True)
    (paths.artifacts_dir() / "course_load.json").write_text(json.dumps(report, indent=1))

    # the kill: a second round (10 learners), with a submission on record, SIGKILLed mid-load
    tokens2 = [learner(store, "decision", budget=calls * batch) for _ in range(10)]
    submitted = submit(model_for("lenet5-half", INFO), "lenet5-half", server.url, tokens2[0])
    sent2 = [[] for _ in tokens2]  # type: list[list[int]]
    threads = [threading.Thread(target=learner_loop, args=(t, calls, s)) for t, s in zip(tokens2, sent2)]
    for t in threads:
        t.start()
    while sum(map(len, sent2)) < len(tokens2) * calls // 4:
        time.sleep(0.05)
    server.kill()
    for t in threads:
        t.join()
    server.start()
    for token, s in zip(tokens2, sent2):
        me = CourseClient(server.url, token).json("GET", "/v1/me")
        # every answered call is on record (a call cut off by the kill may be spent without its answer)
        assert sum(s) <= me["spent"] <= sum(s) + batch and me["budget"] == calls * batch
    assert any(r["id"] == submitted["id"] for r in store.submissions())
    with urllib.request.urlopen(f"{server.url}/v1/leaderboard") as resp:
        assert any(r["id"] == submitted["id"] for r in json.load(resp)["submissions"])


@pytest.mark.browser
def test_the_leaderboard_page_shows_a_new_submission_after_a_reload(course: tuple[CourseServer, CourseStore],
                                                                     tmp_path: Path) -> None:
    from tests import browser_support as bs

    reason = bs.browser_skip_reason()
    if reason:
        pytest.skip(reason)
    server, store = course
    token = learner(store, "decision", budget=10)
    torch.manual_seed(1)
    submit(model_for("lenet5-half", INFO), "lenet5-half", server.url, token)
    with bs.headless_chromium(tmp_path / "profile") as context:
        page = context.new_page()
        page.goto(f"{server.url}/")
        rows, dots = page.locator("tr.entry").count(), page.locator("circle.dot").count()
        assert rows >= 1 and dots == len(store.submissions())
        name = store.learners()[-1].name
        assert page.locator("tr.entry", has_text=name).count() == 1
        newcomer = learner(store, "score", budget=10)
        submit(model_for("lenet5-half", INFO), "lenet5-half", server.url, newcomer)
        assert page.locator("circle.dot").count() == dots  # a static page: nothing changes until the reload
        page.reload()
        assert page.locator("tr.entry").count() == rows + 1 and page.locator("circle.dot").count() == dots + 1
        page.goto(f"{server.url}/learner?token={newcomer}")
        assert page.locator("tr.entry").count() == 1 and "score access" in page.content()
