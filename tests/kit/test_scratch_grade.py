"""The engine that a worker's scratch gradebooks share (scratch_grade.ScratchEngine): it serves the scratch gradebook
being graded, and only that one (no kernel, no grading run: seconds)."""
import shutil

from nbgrader.api import Gradebook

from coursekit.scratch_grade import scratch_engine


def students(path) -> set[str]:
    with Gradebook(f"sqlite:///{path}") as gradebook:
        return {student.id for student in gradebook.students}


def test_the_shared_engine_serves_the_scratch_gradebook_being_graded_and_no_other(tmp_path):
    first, second, course = tmp_path / "first.db", tmp_path / "second.db", tmp_path / "course.db"
    Gradebook(f"sqlite:///{first}").close()  # made once: nbgrader runs alembic for each new gradebook
    for path in (second, course):
        shutil.copyfile(first, path)
    for path in (first, second, course):
        with Gradebook(f"sqlite:///{path}") as gradebook:
            gradebook.add_student(f"in_{path.stem}")
    engine = scratch_engine()
    with engine.serving(first):
        with Gradebook(f"sqlite:///{first}") as scratch, Gradebook(f"sqlite:///{course}") as other:
            assert scratch.engine is engine.engine and other.engine is not engine.engine
            scratch.add_student("graded_first")
            other.add_student("graded_in_the_course")
        shared = engine.engine
    with engine.serving(second):  # the next submission: the same engine, on its own scratch gradebook
        with Gradebook(f"sqlite:///{second}") as scratch:
            assert scratch.engine is shared
            scratch.add_student("graded_second")
    assert students(first) == {"in_first", "graded_first"}
    assert students(second) == {"in_second", "graded_second"}
    assert students(course) == {"in_course", "graded_in_the_course"}
    with Gradebook(f"sqlite:///{first}") as after:  # outside serving, nbgrader's own engine again
        assert after.engine is not shared
