"""Stage: before nbgrader's autograde trusts a submission's cell metadata, put it back as the source has it.

nbgrader keeps the grade id, points and kind of each cell in the notebook's
metadata, which a student can edit. Its OverwriteCells restores test cells,
but an answer cell re-labelled as a graded cell makes autograde fail outright
("No such grade cell"). `RestoreCellMetadata` runs first in nbgrader's sanitize
pipeline: each cell that claims a grade id of the source notebook gets the
source's nbgrader metadata for that id, and a cell claiming an id the source does
not have loses its nbgrader metadata. So editing metadata gains nothing and
breaks nothing.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode


class RestoreCellMetadata(NbGraderPreprocessor):
    """Reset every cell's nbgrader metadata to the source notebook's, by grade id."""

    source_directory = Unicode("source", help="Folder holding <assignment>/<notebook>.ipynb, the source notebooks.").tag(config=True)

    def preprocess(self, nb, resources):
        names = resources["nbgrader"]
        source = nbformat.read(Path(self.source_directory) / names["assignment"] / f"{names['notebook']}.ipynb", as_version=4)
        expected = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in source.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id")}
        for cell in nb.cells:
            claimed = cell.metadata.get("nbgrader")
            if claimed is None:
                continue
            grade_id = claimed.get("grade_id") if isinstance(claimed, dict) else None
            if grade_id in expected:
                cell.metadata["nbgrader"] = nbformat.from_dict(dict(expected[grade_id]))
            else:
                del cell.metadata["nbgrader"]
        return nb, resources
