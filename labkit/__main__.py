"""``python -m labkit``: the course commands (``serve``, ``course``) and every study command."""
import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the course kit's CLI or the studies' CLI."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("serve", "course"):
        from labkit.course.cli import main as course_main

        return course_main(args)
    from labkit.studies.cli import main as studies_main

    return studies_main(args)


if __name__ == "__main__":
    sys.exit(main())
