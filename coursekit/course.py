"""The course directory: its configuration, loaded once, and nbgrader's API over it."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "course_config.py"
# tests/hidden/<assignment>/samples.py: sample submissions for the demo and the kit's tests; grading never reads it
SAMPLES_FILE = "samples.py"


class CourseError(RuntimeError):
    """The course directory or one of its files is not usable; the message says which and why."""


def find_course_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).exists():
            return folder
    raise CourseError(f"no {CONFIG_FILE} in {here} or any folder above it: run coursekit from a course directory")


def load_config(root: Path) -> Config:
    try:
        return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    except Exception as exc:
        raise CourseError(f"{root / CONFIG_FILE} could not be loaded: {type(exc).__name__}: {exc}") from exc


def put_venv_on_path() -> None:
    """nbgrader runs `alembic` from PATH when it creates a gradebook; find the one beside this Python."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def alembic_head() -> str:
    """The gradebook schema version nbgrader stamps on a new gradebook, read in this process.

    nbgrader gets this one string by running `alembic heads` in a subprocess, which
    costs about 6 CPU-seconds each time a course creates its gradebook.
    """
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = AlembicConfig()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


class SchemaCheckedOnce:
    """jsonschema for nbgrader's cell-metadata checks, minus re-checking the schema itself on every cell.

    jsonschema.validate(instance, schema) first validates the schema against its
    metaschema; nbgrader calls it for every cell of every notebook, with the same
    schema, and that was a sixth of the coordinator's time per submission.
    """

    def __init__(self, jsonschema):
        self.jsonschema, self.validators = jsonschema, {}

    def validate(self, instance, schema) -> None:
        if id(schema) not in self.validators:
            cls = self.jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self.validators[id(schema)] = (cls(schema), schema)  # holding the schema keeps its id unique
        error = self.jsonschema.exceptions.best_match(self.validators[id(schema)][0].iter_errors(instance))
        if error is not None:
            raise error

    def __getattr__(self, name):
        return getattr(self.jsonschema, name)


def speed_up_nbgrader() -> None:
    """Two of nbgrader's fixed costs, removed without changing what it does."""
    import jsonschema
    import nbgrader.api
    import nbgrader.nbgraderformat.common

    nbgrader.api.get_alembic_version = alembic_head
    if not isinstance(nbgrader.nbgraderformat.common.jsonschema, SchemaCheckedOnce):
        nbgrader.nbgraderformat.common.jsonschema = SchemaCheckedOnce(jsonschema)


def nbgrader_api(root: Path, overrides: dict | None = None, config: Config | None = None, **coursedir_traits):
    """nbgrader's Python API on this course, configured by its course_config.py, or by `config` when given
    (plus overrides: section -> traits)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    put_venv_on_path()
    speed_up_nbgrader()
    config = load_config(root) if config is None else config
    config.CourseDirectory.root = str(root)
    for name, value in coursedir_traits.items():
        setattr(config.CourseDirectory, name, value)
    for section, traits in (overrides or {}).items():
        config[section].update(traits)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def hidden_checks_dir(config, root: Path, assignment: str) -> Path:
    """tests/hidden/<assignment>, or where course_config.py's HiddenChecks.checks_root puts it."""
    return Path(config.HiddenChecks.get("checks_root", root / "tests" / "hidden")) / assignment


def has_hidden_checks(checks_dir: Path) -> bool:
    """Whether the assignment has hidden checks (a test_*.py); here, not in checks.py, so that asking imports no torch."""
    return checks_dir.is_dir() and any(checks_dir.glob("test_*.py"))


def grading_files(checks_dir: Path, pattern: str = "*") -> list[Path]:
    """The files of an assignment's hidden checks folder that grading reads: all but its samples and caches."""
    if not checks_dir.is_dir():
        return []
    return sorted(p for p in checks_dir.rglob(pattern) if p.is_file() and p.name != SAMPLES_FILE and "__pycache__" not in p.parts)


def source_notebooks(root: Path, assignment: str) -> list[Path]:
    folder = root / "source" / assignment
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise CourseError(f"{folder} holds no notebook: there is no assignment {assignment!r}")
    return notebooks


def repairs_made(root: Path, assignment: str, student: str) -> str:
    """What RestoreCellMetadata did to this submission's notebooks (their metadata, coursekit.repairs), in one line."""
    notes = []
    for path in sorted((root / "autograded" / student / assignment).glob("*.ipynb")):
        try:
            repairs = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("coursekit", {}).get("repairs") or []
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        notes.extend(f"{path.name}: {r}" for r in repairs if isinstance(r, str))
    return "; ".join(notes)


_process_folders: list = []


def process_folder(prefix: str) -> Path:
    """A temporary folder for as long as this process lives, removed by leave_quickly(). A local worker process is
    ended by multiprocessing with os._exit, which runs no atexit handler: TemporaryDirectory's own clean-up never
    ran there, and each worker left its copy of the hidden checks and its gradebooks in /tmp."""
    import tempfile

    folder = tempfile.TemporaryDirectory(prefix=prefix)
    _process_folders.append(folder)
    return Path(folder.name)


def remove_process_folders() -> None:
    while _process_folders:
        _process_folders.pop().cleanup()


def leave_quickly() -> None:
    """For a process about to exit: its temporary folders are removed, and the interpreter's last garbage
    collections then skip every object alive now. With torch, nbgrader and nbconvert imported, they walked about a
    million objects: 1 to 1.4 s of each exit of a coursekit command or worker process, for memory the operating
    system takes back anyway."""
    import gc

    remove_process_folders()
    gc.freeze()
