"""Stage: before nbgrader's autograde trusts a submission's cells, put their grading marks back as the source has them.

nbgrader keeps the grade id, points and kind of each cell in the notebook's
metadata, which a student can edit and which some editors and copy-pastes drop.
Its OverwriteCells restores the text of locked and test cells it can find by
grade id; a cell whose marks are gone is invisible to it, and an answer cell
re-labelled as a graded cell makes autograde fail outright ("No such grade cell").

`RestoreCellMetadata` runs before OverwriteCells in nbgrader's sanitize pipeline
(course_config.py) and, for coursekit's workers, before they run a notebook
(parallel.py), so both run the very same cells:

1. each cell that claims a grade id of the source notebook gets the source's
   nbgrader metadata for that id; a cell claiming an id the source does not
   have loses its grade id (as in OverwriteCells) and its marks. Editing metadata gains nothing, breaks nothing;
2. when grade ids are missing, the submission's cells are matched to the
   source's: given and test cells (and the plain markdown between them) by their
   text, answer cells by their place between those. Found cells get their marks
   back; the feedback and the report say that cells were matched by position;
3. a given or test cell that is not there at all is put back from the source,
   where it stood: the grader's cells are the grader's;
4. when answer cells have lost their marks and cannot be found with confidence
   (none, or several candidate cells, between their neighbours), nothing is
   graded: `CellsNotFound` says which cells and why, never a silent 0.

What it did is listed in the notebook's metadata (coursekit.repairs) and in a
note cell at the top, which the feedback shows.
"""
from __future__ import annotations

import copy
import difflib
import re
import uuid
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Unicode

NOTE_HEADING = "**Note from the grader**"
HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)


class CellsNotFound(ValueError):
    """A notebook whose answer cells lost their grading marks and cannot be matched to the assignment's."""


def normalized(text: str) -> str:
    """A cell's text as editors may re-save it: line endings and trailing spaces do not count."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().splitlines())


def grade_id(cell) -> str | None:
    marks = cell.metadata.get("nbgrader")
    return marks.get("grade_id") if isinstance(marks, dict) else None


def is_answer(marks: dict) -> bool:
    return bool(marks.get("solution"))


def new_cell_like(nb, cell):
    """A copy of a source cell that fits this notebook's format (cell ids only from nbformat 4.5)."""
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        cell["id"] = uuid.uuid4().hex[:8]
    else:
        cell.pop("id", None)
    return cell


class RestoreCellMetadata(NbGraderPreprocessor):
    """Put each cell's nbgrader metadata back as the source notebook has it, finding cells that lost it."""

    source_directory = Unicode("source", help="Folder holding <assignment>/<notebook>.ipynb, the source notebooks.").tag(config=True)
    restore_deleted_cells = Bool(True, help="Put back, from the source notebook and where it stood, a given (locked) "
                                 "or test cell that the submission does not have.").tag(config=True)
    match_by_position = Bool(True, help="When cells lost their grading metadata, find given and test cells by their "
                             "text and answer cells by their place between them; if some answer cell cannot be found "
                             "with confidence, refuse to grade the notebook (CellsNotFound) instead of scoring it 0.").tag(config=True)
    add_note_cell = Bool(True, help="Say what was repaired in a markdown cell at the top of the notebook, which the "
                         "student's feedback shows (the list is also in the notebook's metadata, coursekit.repairs).").tag(config=True)

    def preprocess(self, nb, resources):
        names = resources["nbgrader"]
        path = Path(self.source_directory) / names["assignment"] / f"{names['notebook']}.ipynb"
        source = nbformat.read(path, as_version=4)
        expected = {grade_id(c): c.metadata["nbgrader"] for c in source.cells if grade_id(c)}
        graded = [gid for gid, marks in expected.items() if marks.get("grade") or marks.get("solution")]
        held = list(dict.fromkeys(grade_id(c) for c in nb.cells if grade_id(c) and (
            c.metadata["nbgrader"].get("grade") or c.metadata["nbgrader"].get("solution"))))
        if held and not set(held) & set(graded):  # another notebook altogether: refused out loud, never a silent 0
            raise CellsNotFound(
                f"{names['notebook']}.ipynb: the notebook's graded cells are not this assignment's: it holds "
                f"{', '.join(held[:4])}{' …' if len(held) > 4 else ''}; {names['assignment']} has "
                f"{', '.join(graded[:4])}{' …' if len(graded) > 4 else ''}. Was another notebook submitted?")
        claimed = self.restore_by_grade_id(nb, expected)
        repairs: list[str] = []
        if set(expected) - set(claimed.values()):
            repairs = self.find_lost_cells(nb, source, claimed, resources)
        nb.metadata.setdefault("coursekit", {})["repairs"] = repairs
        if repairs:
            self.log.warning("%s of %s: %s", names["notebook"], names.get("student", "?"), "; ".join(repairs))
            if self.add_note_cell:
                note = nbformat.v4.new_markdown_cell(f"{NOTE_HEADING}: " + " ".join(f"{r[0].upper()}{r[1:]}." for r in repairs))
                nb.cells.insert(0, new_cell_like(nb, note))
        return nb, resources

    @staticmethod
    def restore_by_grade_id(nb, expected: dict) -> dict[int, str]:
        """Cells claiming a known grade id get the source's marks (the last claim wins, as in DeduplicateIds)."""
        claimed: dict[int, str] = {}
        for index in reversed(range(len(nb.cells))):
            cell = nb.cells[index]
            if "nbgrader" not in cell.metadata:
                continue
            gid = grade_id(cell)
            if gid in expected and gid not in claimed.values():
                cell.metadata["nbgrader"] = nbformat.from_dict(copy.deepcopy(dict(expected[gid])))
                claimed[index] = gid
            else:  # as in nbgrader's OverwriteCells, the grade id goes; and the cell is neither graded, an answer nor locked
                marks = cell.metadata["nbgrader"]
                version = marks.get("schema_version", 3) if isinstance(marks, dict) else 3
                cell.metadata["nbgrader"] = nbformat.from_dict({"grade": False, "solution": False, "locked": False,
                                                                "schema_version": version})
        return claimed

    def find_lost_cells(self, nb, source, claimed: dict[int, str], resources) -> list[str]:
        """Match the submission's cells to the source's, give found cells their marks back; what was done, in words."""
        src = source.cells
        # what identifies each source cell: its grade id, or its text for the plain cells around the steps
        src_keys = []
        by_text: dict[tuple, tuple] = {}
        for cell in src:
            gid = grade_id(cell)
            if gid and is_answer(cell.metadata["nbgrader"]):
                key = ("answer", gid)
            else:
                key = ("cell", gid) if gid else ("text", cell.cell_type, normalized(cell.source))
                for text in {normalized(cell.source), normalized(HIDDEN_TESTS.sub("", cell.source))}:
                    by_text.setdefault((cell.cell_type, text), key)
            src_keys.append(key)
        sub_keys = []
        for index, cell in enumerate(nb.cells):
            if index in claimed:
                gid = claimed[index]
                sub_keys.append(("answer", gid) if is_answer(cell.metadata["nbgrader"]) else ("cell", gid))
            elif self.match_by_position and normalized(cell.source):
                sub_keys.append(by_text.get((cell.cell_type, normalized(cell.source)), ("free", index)))
            else:
                sub_keys.append(("free", index))
        matcher = difflib.SequenceMatcher(None, src_keys, sub_keys, autojunk=False)
        found: dict[int, int] = {}  # source index -> submission index
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                found[block.a + k] = block.b + k
        located = dict(found)
        by_text_found, by_position, unfound, not_there = [], [], [], []
        for i, j in found.items():  # given and test cells found by their text
            gid = grade_id(src[i])
            if gid and j not in claimed and gid not in claimed.values():  # not a copy of a cell that has its marks
                nb.cells[j].metadata["nbgrader"] = nbformat.from_dict(copy.deepcopy(dict(src[i].metadata["nbgrader"])))
                claimed[j] = gid
                by_text_found.append(gid)
        # answer cells by their place: between the nearest cells found before and after them
        used = set(found.values())
        missing = [i for i, c in enumerate(src) if grade_id(c) and is_answer(c.metadata["nbgrader"]) and i not in found
                   and grade_id(c) not in claimed.values()]
        gaps: dict[tuple[int, int], list[int]] = {}
        for i in missing:
            before = max((k for k in found if k < i), default=-1)
            after = min((k for k in found if k > i), default=len(src))
            gaps.setdefault((before, after), []).append(i)
        for (before, after), answers in gaps.items():
            start = found.get(before, -1) + 1
            stop = found.get(after, len(nb.cells))
            where = self.between(src, before, after)
            for cell_type in ("code", "markdown"):
                wanted = [i for i in answers if src[i].cell_type == cell_type]
                if not wanted:
                    continue
                candidates = [j for j in range(start, stop) if j not in used and j not in claimed
                              and nb.cells[j].cell_type == cell_type and normalized(nb.cells[j].source)]
                if self.match_by_position and len(candidates) == len(wanted):
                    for i, j in zip(wanted, candidates):
                        nb.cells[j].metadata["nbgrader"] = nbformat.from_dict(copy.deepcopy(dict(src[i].metadata["nbgrader"])))
                        claimed[j] = grade_id(src[i])
                        located[i] = j
                        by_position.append(grade_id(src[i]))
                else:
                    why = (f"no {cell_type} cell {where}" if not candidates else
                           f"{len(candidates)} {cell_type} cells {where} where {len(wanted)} {'was' if len(wanted) == 1 else 'were'} expected")
                    for i in wanted:
                        (unfound if candidates else not_there).append((grade_id(src[i]), why))
        # marks were removed if any cell had to be found without them
        marks_removed = bool(by_text_found or by_position)
        if marks_removed and (unfound or not_there):
            lost = unfound + not_there
            details = "; ".join(f"{gid} ({why})" for gid, why in lost)
            raise CellsNotFound(
                f"{resources['nbgrader']['notebook']}.ipynb: the notebook's grading marks were removed and {len(lost)} answer "
                f"cell{'s' if len(lost) != 1 else ''} could not be found: {details}. Nothing was graded: ask the student to "
                "copy their answers into a fresh copy of the released notebook, or put the answers in place by hand")
        repairs = []
        if marks_removed:
            repairs.append(f"cells were matched by position: {len(by_text_found) + len(by_position)} cells had lost their grading "
                           "marks, so given and test cells were found by their text"
                           + (f" and the answer cells {', '.join(by_position)} by their place between them" if by_position else ""))
        if self.restore_deleted_cells:
            put_back = self.put_back_deleted(nb, src, located, claimed)
            if put_back:
                repairs.append(f"put back from the assignment, where it was deleted: {', '.join(put_back)}")
        for gid, why in unfound + not_there:
            repairs.append(f"the answer cell {gid} was not found ({why}), so its step earns nothing")
        return repairs

    @staticmethod
    def between(src, before: int, after: int) -> str:
        def name(i):
            gid = grade_id(src[i])
            return f"cell {gid}" if gid else f"the cell \"{normalized(src[i].source).splitlines()[0][:40]}\""
        if before < 0:
            return f"before {name(after)}" if after < len(src) else "in the notebook"
        return f"after {name(before)}" + (f" and before {name(after)}" if after < len(src) else "")

    def put_back_deleted(self, nb, src, located: dict[int, int], claimed: dict[int, str]) -> list[str]:
        """Insert each given or test cell that is nowhere in the notebook after the cell that precedes it in the source."""
        present = set(claimed.values())
        anchors = {i: nb.cells[j] for i, j in located.items()}  # source index -> the submission's cell object
        put_back = []
        for i, cell in enumerate(src):
            gid = grade_id(cell)
            if not gid or gid in present or is_answer(cell.metadata["nbgrader"]) or not cell.metadata["nbgrader"].get("locked"):
                continue
            previous = max((k for k in anchors if k < i), default=None)
            position = 0 if previous is None else next(n for n, c in enumerate(nb.cells) if c is anchors[previous]) + 1
            restored = new_cell_like(nb, cell)
            nb.cells.insert(position, restored)
            anchors[i] = restored
            present.add(gid)
            kind = "test cell" if cell.metadata["nbgrader"].get("grade") else "given cell"
            put_back.append(f"{gid} ({kind})")
        return put_back


def sanitize_for_worker(nb, source_directory: str | Path, resources: dict, config=None):
    """A notebook's cells as nbgrader's sanitize step (course_config.py) leaves them, for a worker to run.

    The same cells as the coordinator's autograde will hand ExecuteAndProbe, so that it can take the
    worker's run: duplicate grade ids dropped as DeduplicateIds does, marks restored and lost cells
    found as above, and the course's kernel, as OverwriteKernelspec does: the kernelspec a student's
    editor wrote (a VS Code venv, a conda env) never decides which kernel runs it. Only what
    OverwriteCells restores from the gradebook (edited locked cells) differs; such a notebook is run again.
    """
    from nbgrader.preprocessors import DeduplicateIds

    nb, resources = DeduplicateIds().preprocess(nb, resources)
    restore = RestoreCellMetadata(config=config, source_directory=str(source_directory))
    nb, resources = restore.preprocess(nb, resources)
    names = resources["nbgrader"]
    source = nbformat.read(Path(source_directory) / names["assignment"] / f"{names['notebook']}.ipynb", as_version=4)
    if source.metadata.get("kernelspec"):
        nb.metadata["kernelspec"] = copy.deepcopy(source.metadata["kernelspec"])
    return nb, resources
