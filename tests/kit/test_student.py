"""The student's side: `coursekit check` on real notebooks, from a folder with no course in it,
and `coursekit bundle`, whose zip holds nothing students should not see."""
import json
import subprocess
import sys
import zipfile

import nbformat
import pytest
from conftest import ASSIGNMENT, REPO, SAMPLES, SIMPLE_NET, TRAINING, grader_lines, hidden_check_names, make_course, run_coursekit

from coursekit.data import BUNDLED_FOLDER, LAYOUT, mnist_sample_path, sample_images
from coursekit.samples import make_submission

SOURCE = REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = REPO / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
STEPS = ["flatten", "labels", "datasets", "init_params", "linear1", "accuracy", "loss_vs_metric", "mnist_loss", "dataloader"]
TRAINING_STEPS = ["calc_grad", "train_epoch", "batch_accuracy", "validate_epoch", "basic_optim", "train_model", "training_run"]
# the later assignments: their steps (a written answer last, if any), a typical mistake, the visible assert that catches it
LATER = {
    TRAINING: (TRAINING_STEPS, "grads_never_zeroed", "after each step the gradients should be set back to zero"),
    SIMPLE_NET: (["relu", "init", "simple_net", "seq_net", "learner", "net_run", "two_linear_layers"], "simple_net_no_relu",
                 "an image of zeros should give relu(b1)@w2 + b2"),
}


def check(folder, name=f"{ASSIGNMENT}.ipynb", notebook=None):
    """Write the notebook into a folder that holds no course, and run `coursekit check` there."""
    folder.mkdir(parents=True, exist_ok=True)
    if notebook is not None:
        nbformat.write(notebook, folder / name)
    result = subprocess.run([sys.executable, "-m", "coursekit.cli", "check", name], cwd=folder,
                            capture_output=True, text=True, timeout=300)
    assert not (folder / "course_config.py").exists()
    return result


def states(output: str, steps=STEPS) -> dict:
    found = {}
    for line in output.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in steps:
            found[parts[0]] = parts[1]
    return found


def test_release_is_all_not_attempted(tmp_path):
    result = check(tmp_path, notebook=nbformat.read(RELEASE, as_version=4))
    assert result.returncode == 1, result.stderr
    got = states(result.stdout)
    assert list(got) == STEPS
    assert all(state.startswith("not attempted") for state in got.values()), got
    assert "Before you submit" not in result.stdout  # errors that only follow from unfinished steps are not news


def test_full_solution_passes_every_step(tmp_path):
    result = check(tmp_path, notebook=make_submission(SOURCE, RELEASE, None))
    assert result.returncode == 0, result.stdout + result.stderr
    got = states(result.stdout)
    assert {k: v for k, v in got.items() if k != "loss_vs_metric"} == {s: "passed" for s in STEPS if s != "loss_vs_metric"}
    assert got["loss_vs_metric"].startswith("answered")
    assert "8 of 8 steps pass" in result.stdout


@pytest.mark.parametrize("assignment", list(LATER))
def test_later_assignments_check_the_same_way(tmp_path, assignment):
    steps, mistake_name, message = LATER[assignment]
    source, release = (REPO / folder / assignment / f"{assignment}.ipynb" for folder in ("source", "release"))
    solved = check(tmp_path / "solved", name=f"{assignment}.ipynb", notebook=make_submission(source, release, None))
    assert solved.returncode == 0, solved.stdout + solved.stderr
    got = states(solved.stdout, steps)
    assert list(got) == steps
    assert all(state == "passed" or (step == steps[-1] and state.startswith("answered")) for step, state in got.items()), got
    mistake = next(s for s in SAMPLES[assignment] if s.name == mistake_name)
    result = check(tmp_path / "mistake", name=f"{assignment}.ipynb", notebook=make_submission(source, release, mistake))
    assert [s for s, state in states(result.stdout, steps).items() if state.startswith("FAILED")] == [mistake.step]
    assert message in result.stdout


def test_typical_mistake_fails_its_step_with_the_visible_message(tmp_path):
    sample = next(s for s in SAMPLES["mnist_sgd"] if s.name == "labels_reversed")
    result = check(tmp_path, notebook=make_submission(SOURCE, RELEASE, sample))
    assert result.returncode == 1
    got = states(result.stdout)
    assert got["labels"] == "FAILED: AssertionError: a 3 should be labelled 1 and a 7 labelled 0"
    assert [s for s, state in got.items() if state.startswith("FAILED")] == ["labels"]


def test_check_shows_no_hidden_check_or_reference(tmp_path):
    sample = next(s for s in SAMPLES["mnist_sgd"] if s.name == "threshold_half")
    out = check(tmp_path, notebook=make_submission(SOURCE, RELEASE, sample)).stdout
    assert "FAILED" in out
    names = hidden_check_names()
    assert len(names) > 20 and [name for name in names if name in out] == []
    assert sample.hint.lower() not in out.lower()  # the hidden check's hint is for the graded feedback only


def test_renamed_notebook_gets_a_reminder(tmp_path):
    result = check(tmp_path, name="mnist_sgd (1).ipynb", notebook=make_submission(SOURCE, RELEASE, None))
    assert "upload it as 'mnist_sgd.ipynb'" in result.stdout
    assert result.returncode == 1


def test_not_a_notebook_is_a_clear_error(tmp_path):
    tmp_path.joinpath("mnist_sgd.ipynb").write_text("{ not json")
    result = check(tmp_path)
    assert result.returncode == 2
    assert "mnist_sgd.ipynb is not a notebook: it is not valid JSON" in result.stderr


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("bundle"))
    run_coursekit(course, "bundle", ASSIGNMENT)
    return course, course / "bundles" / f"{ASSIGNMENT}.zip"


def test_bundle_holds_the_release_its_data_and_a_readme(bundled):
    """The notebook, the README and the very PNGs the grader's kernels read; no line of a solution, check or probe."""
    _, archive = bundled
    sample = mnist_sample_path()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        images = {name.removeprefix(f"{ASSIGNMENT}/{BUNDLED_FOLDER}/"): z.read(name) for name in names if name.endswith(".png")}
        texts = {name: z.read(name).decode() for name in names if not name.endswith(".png")}
    assert sorted(texts) == [f"{ASSIGNMENT}/README.txt", f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"]
    assert images == {str(p.relative_to(sample)): p.read_bytes() for p in sample_images(sample)}
    assert {name.rsplit("/", 1)[0] for name in images} == set(LAYOUT)
    notebook = json.loads(texts[f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"])
    for name, text in texts.items():
        assert [line for line in grader_lines(ASSIGNMENT) if line in text] == [], name
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert [check for check in hidden_check_names() if check in text] == [], name
    # no outputs: a solution's printed values (reference values) would show there
    assert all(cell.get("outputs", []) == [] for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert notebook["metadata"]["coursekit"] == {"assignment": ASSIGNMENT, "notebook": f"{ASSIGNMENT}.ipynb"}


def test_bundle_refuses_a_release_that_leaks(bundled):
    course, _ = bundled
    released = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    kept = released.read_text()
    released.write_text(SOURCE.read_text())  # the source, shipped by mistake
    result = run_coursekit(course, "bundle", ASSIGNMENT, "--output", str(course / "leaky.zip"), check=False)
    assert result.returncode == 2
    assert "would reveal" in result.stderr and f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb" in result.stderr
    assert not (course / "leaky.zip").exists()
    released.write_text(kept)


def test_bundle_leak_check_covers_every_file(bundled):
    """Any text file that goes into the zip is checked, not only notebooks: here, notes quoting a probe."""
    course, _ = bundled
    probe_line = next(line for line in (REPO / "tests" / "hidden" / ASSIGNMENT / "probes.py").read_text().splitlines()
                      if line.strip() in grader_lines(ASSIGNMENT))
    notes = course / "release" / ASSIGNMENT / "notes.txt"
    notes.write_text(f"to get started:\n{probe_line}\n")
    try:
        result = run_coursekit(course, "bundle", ASSIGNMENT, "--output", str(course / "leaky.zip"), check=False)
    finally:
        notes.unlink()
    assert result.returncode == 2
    assert f"{ASSIGNMENT}/notes.txt: {probe_line.strip()!r}" in result.stderr
    assert not (course / "leaky.zip").exists()


def test_bundle_refuses_a_notebook_that_needs_the_kit(bundled):
    """A set-up cell that reads the data through coursekit alone would fail wherever the kit is missing."""
    course, _ = bundled
    released = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    kept = released.read_text()
    notebook = json.loads(kept)
    setup = next(c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "setup")
    setup["source"] = "from coursekit.data import mnist_sample_path\npath = mnist_sample_path()\n"
    released.write_text(json.dumps(notebook))
    try:
        result = run_coursekit(course, "bundle", ASSIGNMENT, "--output", str(course / "kit_only.zip"), check=False)
    finally:
        released.write_text(kept)
    assert result.returncode == 2
    assert f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb imports coursekit" in result.stderr
    assert "Path('mnist_sample')" in result.stderr
    assert not (course / "kit_only.zip").exists()
