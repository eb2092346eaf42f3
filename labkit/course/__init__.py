"""The course kit: nbgrader assignments (:mod:`labkit.course.assignments`), the served teacher and the class
leaderboard (:mod:`labkit.course.server`, :mod:`labkit.course.store`). ``docs/course.md`` is the guide."""
