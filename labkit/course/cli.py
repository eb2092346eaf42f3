"""``python -m labkit serve`` and ``python -m labkit course ...``: the course server, learners, assignments."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from labkit.core.errors import LabkitError

DEFAULT_DB = "course/class.sqlite"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from labkit.course.server import create_app, load_served_teacher
    from labkit.course.store import CourseStore

    store = CourseStore(args.db)
    served = load_served_teacher(args.teacher, args.teacher_arch, args.eval_folder)
    print(f"serving {served.arch} ({served.dataset}) on http://{args.host}:{args.port}; grading on {served.split}; "
          f"{len(store.learners())} learner(s) in {args.db}", flush=True)
    uvicorn.run(create_app(store, served), host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)
    return 0


def _add_learners(args: argparse.Namespace) -> int:
    from labkit.course.store import CourseStore

    store = CourseStore(args.db)
    names = args.names or [f"{args.prefix}{i:02d}" for i in range(1, args.count + 1)]
    rows = [(n, store.add_learner(n, args.access, args.budget)) for n in names]
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "token", "access", "budget"])
            w.writerows((n, t, args.access, args.budget) for n, t in rows)
        print(f"{len(rows)} learner(s) added; their tokens are in {args.out} (shown only once: keep that file)")
    else:
        for n, t in rows:
            print(f"{n}\t{t}")
    return 0


def _learners(args: argparse.Namespace) -> int:
    from labkit.course.store import CourseStore

    for le in CourseStore(args.db).learners():
        print(f"{le.name:<16} {le.access:<9} {le.spent:>12,} / {le.budget:<12,} {le.calls:>8,} calls")
    return 0


def _build(args: argparse.Namespace) -> int:
    from labkit.course.assignments import build

    notebooks = [Path(n) for n in args.notebooks] if args.notebooks else None
    root = build(args.out, notebooks)
    print(f"nbgrader course in {root}: full notebooks in source/, student versions in release/")
    return 0


def _extensions(args: argparse.Namespace) -> int:
    from labkit.course.extensions import instructor_extensions_enabled, set_instructor_extensions

    if args.state != "status":
        set_instructor_extensions(args.state == "on", args.prefix)
    for name, on in instructor_extensions_enabled(args.prefix).items():
        print(f"{name:<48} {'on' if on else 'off'}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``serve`` and ``course`` commands."""
    p = sub.add_parser("serve", help="serve a teacher to a class over HTTP (per-learner tokens and budgets)",
                       description="Start the course server: the teacher behind /v1/query, submissions graded on a "
                                   "split no learner is served, the leaderboard at /. docs/course.md is the guide.")
    p.add_argument("--teacher", default="fashion-mnist", help="data set whose lab teacher is served")
    p.add_argument("--teacher-arch", default=None, help="teacher architecture (default: the data set's)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"the class's SQLite file (default {DEFAULT_DB})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; see docs/course.md "
                                                       "for a reverse proxy with TLS)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--eval-folder", default=None, help="grade on this folder of labelled images (<class>/*.png) "
                                                       "instead of the data set's test split")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=_serve)
    p = sub.add_parser("course", help="the course kit: learners and nbgrader assignments")
    csub = p.add_subparsers(dest="course_command", required=True)
    q = csub.add_parser("add-learners", help="create learners with tokens, an access level and a budget")
    q.add_argument("names", nargs="*", help="learner names (or --count)")
    q.add_argument("--count", type=int, default=0, help="create this many learners named <prefix>01, ...")
    q.add_argument("--prefix", default="learner")
    q.add_argument("--access", choices=("decision", "score"), default="decision")
    q.add_argument("--budget", type=int, required=True, help="queries each learner may spend")
    q.add_argument("--db", default=DEFAULT_DB)
    q.add_argument("--out", default=None, help="write name,token,access,budget to this CSV instead of printing")
    q.set_defaults(func=_add_learners)
    q = csub.add_parser("learners", help="list learners, their access, spent queries and budgets")
    q.add_argument("--db", default=DEFAULT_DB)
    q.set_defaults(func=_learners)
    q = csub.add_parser("build", help="nbgrader course: source/ (full notebooks) and release/ (student versions)")
    q.add_argument("--out", default="course/nbgrader", help="course folder (default course/nbgrader)")
    q.add_argument("notebooks", nargs="*", help="notebooks (default: every lab notebook)")
    q.set_defaults(func=_build)
    q = csub.add_parser("extensions", help="nbgrader's instructor extensions (formgrader, assignment list) on or off "
                                           "in this environment; make setup turns them off for learners")
    q.add_argument("state", choices=("on", "off", "status"))
    q.add_argument("--prefix", default=None, help="the environment's prefix (default: this Python's sys.prefix)")
    q.set_defaults(func=_extensions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is _add_learners and not args.names and args.count < 1:
        parser.error("name the learners, or give --count")
    try:
        return int(args.func(args))
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
