"""`coursekit similarity`: planted copies come first, the book's code never flags a pair.

The class is built from the assignment's samples and the source solution: per step, each student has the
solution's cell, an equivalent sample's or a mistake's, and a few lines of their own (the checks a student
adds while working; without something of their own, a copy could not be told from the book). Nothing is
graded: the command only reads submitted/, so these tests take seconds.
"""
import ast
import builtins
import io
import keyword
import random
import tokenize

import nbformat
import pytest
from conftest import ASSIGNMENT, SAMPLES, TRAINING, make_course, notebook_paths, read_csv, run_coursekit

from coursekit.samples import answers, apply_edits, make_submission, write_submission
from coursekit.similarity import compare_class, similarity_section

CLASS_SIZE = 30
COPIED_STEPS = 5  # the partial copy: five of mnist_sgd's eight steps, five of sgd_training's seven
LIBRARY_NAMES = {"torch", "tensor", "nn", "plt", "F", "self"}  # a copier renames their own names, not torch's


def step_of(cell) -> str | None:
    nbgrader = cell.metadata.get("nbgrader", {})
    return nbgrader.get("grade_id") if cell.cell_type == "code" and nbgrader.get("solution") else None


def own_line(rng: random.Random) -> str:
    """A check of the student's own, as students add them while they work; its numbers make it theirs."""
    a, b, c = rng.randint(100, 9999), rng.randint(100, 9999), rng.randint(100, 9999)
    return rng.choice([f"print(xb[:{a}].mean(), {b} * xb.std(), yb[{c}])",
                       f"check = (torch.ones({a}) * {b}).sum() - {c}",
                       f"assert len(range({a}, {b})) != {c}, 'sizes'",
                       f"print(torch.arange({a}).view(-1, 1)[{b} % {a}] + {c})"])


def make_class(course, assignment: str, seed: int, size: int = CLASS_SIZE) -> dict[str, dict]:
    """student -> {step: code} for `size` students, each a different mix; two textbook twins among them."""
    rng = random.Random(seed)
    source, _ = notebook_paths(course, assignment)
    solution = answers(source)
    steps = list(solution)
    variants = {step: {"solution": solution[step]} for step in steps}
    for sample in SAMPLES[assignment]:
        variants[sample.step][sample.name] = apply_edits(solution[sample.step], sample)
    mistakes = {s.name for s in SAMPLES[assignment] if s.mistake}
    # each class has its typical mistakes: a few per step, each made by several students
    typical = {step: rng.sample(sorted(n for n in variants[step] if n in mistakes), min(2, sum(n in mistakes for n in variants[step])))
               for step in steps}
    students, mixes = {}, set()
    while len(students) < size - 2:
        mix = {}
        for step in steps:
            equivalents = [n for n in variants[step] if n != "solution" and n not in mistakes]
            roll = rng.random()
            mix[step] = (rng.choice(typical[step]) if roll < 0.3 and typical[step] else
                         rng.choice(equivalents) if roll < 0.55 and equivalents else "solution")
        if tuple(mix.values()) in mixes:
            continue
        mixes.add(tuple(mix.values()))
        code = {step: variants[step][name] for step, name in mix.items()}
        for step in rng.sample(steps, 3):
            code[step] += "\n" + own_line(rng)
        students[f"student{len(students) + 1:03d}"] = code
    # two students who both handed in the book's code, with the same equivalent rewrites: never a pair to flag
    textbook = {step: next((variants[step][n] for n in variants[step] if n != "solution" and n not in mistakes), solution[step])
                for step in steps}
    students["textbook_a"], students["textbook_b"] = dict(textbook), dict(textbook)
    return students


def rename_identifiers(code: str, names: dict) -> str:
    """Every name the student chose gets another; comments are rewritten and one more is added."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    out = []
    for number, token in enumerate(tokens):
        after_dot = number > 0 and tokens[number - 1].string == "."
        if (token.type == tokenize.NAME and not keyword.iskeyword(token.string) and not after_dot
                and token.string not in LIBRARY_NAMES and not hasattr(builtins, token.string)):
            token = token._replace(string=names.setdefault(token.string, f"my_{len(names)}_{token.string[::-1]}"))
        elif token.type == tokenize.COMMENT:
            token = token._replace(string="# worked this out myself")
        out.append(token)
    return "# my own version\n" + tokenize.untokenize(out)


def reorder_and_reformat(code: str) -> str:
    """Functions and methods in reverse order, the whole cell reformatted (ast.unparse: spaces, parentheses, quotes)."""
    tree = ast.parse(code)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    others = [n for n in tree.body if n not in defs]
    for node in defs:
        if isinstance(node, ast.ClassDef):
            node.body = node.body[::-1]
    tree.body = defs[::-1] + others
    return ast.unparse(tree)


def plant_copies(students: dict, rng: random.Random) -> list[tuple[str, str]]:
    """The three copies the report must put first: (original, copy) for each."""
    names = sorted(n for n in students if n.startswith("student"))
    whole, reordered, partial = rng.sample(names, 3)
    renamed = {}  # one new name per name, across the notebook
    students["copy_renamed"] = {step: rename_identifiers(code, renamed) for step, code in students[whole].items()}
    students["copy_reordered"] = {step: reorder_and_reformat(code) for step, code in students[reordered].items()}
    # a copier took five steps of another student, those with that student's own lines first (their last line
    # is in no one else's cell), and did the other steps themselves
    copier = next(n for n in names if n not in (whole, reordered, partial))
    theirs = students[partial]
    own = [step for step, code in theirs.items() if code.splitlines()[-1] not in students[copier][step]]
    copied = (own + [step for step in theirs if step not in own])[:COPIED_STEPS]
    students["copy_partial"] = {step: theirs[step] if step in copied else students[copier][step] for step in theirs}
    del students[copier]  # the copier's own notebook is the partial copy
    return [(whole, "copy_renamed"), (reordered, "copy_reordered"), (partial, "copy_partial")]


def write_class(course, assignment: str, students: dict) -> None:
    source, release = notebook_paths(course, assignment)
    for student, code in students.items():
        nb = make_submission(source, release, None)
        for cell in nb.cells:
            if step_of(cell) in code:
                cell.source = code[step_of(cell)]
        write_submission(course, assignment, student, nb)


def planted_class(tmp_path, assignment: str, seed: int = 20, size: int = CLASS_SIZE):
    """A course in tmp_path whose submitted/ holds the class and its three planted copies; the planted pairs."""
    course = make_course(tmp_path)
    students = make_class(course, assignment, seed, size)
    planted = plant_copies(students, random.Random(seed))
    write_class(course, assignment, students)
    return course, planted


@pytest.mark.parametrize("assignment", [ASSIGNMENT, TRAINING])
def test_planted_copies_are_the_top_three_and_the_only_flags(tmp_path, assignment):
    course, planted = planted_class(tmp_path, assignment)
    result = run_coursekit(course, "similarity", assignment)
    rows = read_csv(course / "reports" / assignment / "similarity.csv")
    assert list(rows[0]) == ["student_a", "student_b", "score", "steps", "shared_lines"]
    pairs = [frozenset((r["student_a"], r["student_b"])) for r in rows]
    assert set(pairs[:3]) == {frozenset(p) for p in planted}, f"top rows {rows[:5]}\n{result.stdout}"
    # nothing else is flagged: the textbook twins share only the book's code; chance pairs share typical mistakes
    assert len(rows) == 3, f"false flags: {rows[3:]}"
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for row in rows:
        assert row["steps"] and int(row["shared_lines"]) > 0
    assert "textbook_a" not in result.stdout
    page = (course / "reports" / assignment / "similarity.html").read_text()
    assert "a reason to look, not a verdict" in page and "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched


def test_unreadable_notebooks_are_listed_and_the_others_compared(tmp_path):
    course, planted = planted_class(tmp_path, ASSIGNMENT)
    write_submission(course, ASSIGNMENT, "not_json", b"{ this is not a notebook")
    write_submission(course, ASSIGNMENT, "no_cells", nbformat.v4.new_notebook())
    write_submission(course, ASSIGNMENT, "renamed", make_submission(*notebook_paths(course, ASSIGNMENT), None), name="mnist_sgd (1).ipynb")
    result = run_coursekit(course, "similarity", ASSIGNMENT)
    for student, reason in (("not_json", "not JSON"), ("no_cells", "has no cells"), ("renamed", "mnist_sgd.ipynb is missing")):
        assert any(student in line and reason in line for line in result.stdout.splitlines()), result.stdout
    page = (course / "reports" / ASSIGNMENT / "similarity.html").read_text()
    assert "Not compared" in page and "not_json" in page and "renamed" in page
    rows = read_csv(course / "reports" / ASSIGNMENT / "similarity.csv")
    assert {frozenset((r["student_a"], r["student_b"])) for r in rows[:3]} == {frozenset(p) for p in planted}


def test_the_page_shows_only_matching_lines_escaped(tmp_path):
    """No student line beyond those that match reaches the report; a student's markup is shown as text."""
    course, planted = planted_class(tmp_path, ASSIGNMENT)
    whole, copy = planted[0]
    for student, own in ((whole, "print(271828 - 314159 * 161803)"), (copy, "print([577215, 662607, 141421])")):
        path = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if step_of(c) == "linear1")
        cell.source += f"\nnote = '<script>alert(1)</script>' * 4201  # shared by both\n{own}"
        nbformat.write(nb, path)
    run_coursekit(course, "similarity", ASSIGNMENT)
    page = (course / "reports" / ASSIGNMENT / "similarity.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    # the class report embeds the section itself: a fragment, not a page
    section = similarity_section(compare_class(course, ASSIGNMENT))
    assert section.startswith("<section") and "<html" not in section and "<body" not in section and section in page
    assert "4201" in page and not any(number in page for number in ("271828", "314159", "577215", "662607"))


@pytest.mark.parametrize("assignment", [ASSIGNMENT, TRAINING])
def test_the_book_and_its_equivalents_never_count(tmp_path, assignment):
    """With the threshold at 0 (course_config.py), every pair is listed: twins who handed in the same book
    code and equivalent rewrites share no code that counts; only the written answer every student of this
    made-up class has (the WRITTEN_ANSWER of its samples.py), which weighs 1/(class size - 1)."""
    course, _ = planted_class(tmp_path, assignment)
    with open(course / "course_config.py", "a") as config:
        config.write("\nc.Similarity.threshold = 0.0\n")
    run_coursekit(course, "similarity", assignment)
    rows = read_csv(course / "reports" / assignment / "similarity.csv")
    students = len(list((course / "submitted").iterdir()))
    assert len(rows) == students * (students - 1) // 2
    twins = next(r for r in rows if {r["student_a"], r["student_b"]} == {"textbook_a", "textbook_b"})
    assert set(twins["steps"].split()) <= {"loss_vs_metric"} and float(twins["score"]) < 0.05, twins
