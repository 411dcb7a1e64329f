"""Where nbgrader users work (issue 12), in a real browser: formgrader on a course the kit graded, started with
`coursekit lab` from another folder, and a student's JupyterLab set up by `coursekit setup-jupyter student`.

The staff course is a copy of the session's graded course (every sample, graded once by `coursekit grade`),
so that what staff do here (a manual grade, formgrader's Autograde button) changes nothing other tests read.
Screenshots of formgrader with the kit's grades and of the class report are kept in .pytest-screenshots/.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import needs_chromium, start_chromium, wait_until
from conftest import ASSIGNMENT, COURSEKIT, SCREENSHOTS, read_csv, run_coursekit

from coursekit.jupyter import free_port

pytestmark = needs_chromium
pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements.txt)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402 (after the skip: selenium may be missing)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

BIN = Path(sys.executable).parent


def gradebook_cells(course: Path, student: str) -> dict[str, tuple]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grades = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student).grades
        return {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for g in grades}


def submission_id(course: Path, student: str) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student).id


@pytest.fixture(scope="module")
def staff(graded_course, tmp_path_factory):
    """A copy of the graded course, `coursekit lab` serving it (typed in another folder), and Chromium logged in."""
    course = tmp_path_factory.mktemp("formgrader") / "course"
    shutil.copytree(graded_course["course"], course, ignore=shutil.ignore_patterns("__pycache__"))
    # the LMS's roster gives formgrader the students' names (nbgrader's own commands leave them "None, None")
    students = sorted(graded_course["grades"])
    maximum = next(iter(graded_course["grades"].values()))["max_total"]
    (course / "worksheet.csv").write_text("Identifier,Full name,Email address,Grade,Maximum Grade\n" + "".join(
        f"Participant {100 + i},{'Ada Lovelace' if s == 'full_marks' else s.replace('_', ' ').title()},{s}@uni.example,,{maximum}\n"
        for i, s in enumerate(students)))
    run_coursekit(course, "report", ASSIGNMENT, "--lms", "moodle", "--roster", "worksheet.csv")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    lab = subprocess.Popen([*COURSEKIT, "--course", str(course), "lab"], cwd=elsewhere, stdout=subprocess.PIPE,
                           stderr=open(course / "jupyter.log", "w"), text=True)
    driver = None
    try:
        lines = [lab.stdout.readline() for _ in range(4)]
        assert lines[3].strip().startswith("http://127.0.0.1:"), lines + [(course / "jupyter.log").read_text()[-2000:]]
        formgrader = lines[3].strip()
        driver = start_chromium(tmp_path_factory.mktemp("chromium"))
        driver.get(formgrader)  # the token becomes a cookie, as for staff who open the printed link
        yield {"course": course, "base": formgrader.split("/formgrader?")[0], "driver": driver, "grades": graded_course["grades"]}
    finally:
        if driver is not None:
            driver.quit()
        lab.send_signal(signal.SIGTERM)
        lab.wait(60)


def submissions_table(staff) -> dict[str, dict]:
    """formgrader's Manage Submissions page for the assignment, as staff read it: student id -> status, score."""
    driver = staff["driver"]
    driver.get(f"{staff['base']}/formgrader/manage_submissions/{ASSIGNMENT}")
    rows = wait_until(lambda: driver.execute_script(
        "const rows = [...document.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()));"
        "return rows.length && rows.every(cells => cells.length > 5 && cells[1]) ? rows : null"), 30, "formgrader's table of submissions")
    return {cells[1]: {"name": cells[0], "status": cells[3], "score": cells[4]} for cells in rows}


def test_formgrader_lists_the_kits_scores(staff):
    shown = submissions_table(staff)
    graded = {s: row for s, row in staff["grades"].items() if row["status"] != "not graded"}
    assert len(graded) >= 20 and set(graded) <= set(shown), sorted(shown)[:5]
    assert shown["full_marks"]["name"] == "Lovelace, Ada" and shown["no_sigmoid"]["name"] == "Sigmoid, No"
    assert {s: shown[s]["score"] for s in graded} == {s: f"{row['total']} / {row['max_total']}" for s, row in graded.items()}
    SCREENSHOTS.mkdir(exist_ok=True)
    staff["driver"].save_screenshot(str(SCREENSHOTS / "formgrader_with_the_kits_grades.png"))


def test_a_manual_grade_typed_in_formgrader_reaches_the_report(staff):
    driver, course = staff["driver"], staff["course"]
    driver.get(f"{staff['base']}/formgrader/submissions/{submission_id(course, 'full_marks')}/")
    score = wait_until(lambda: driver.find_elements(By.ID, "loss_vs_metric"), 30, "the score box of loss_vs_metric")[0]
    score.clear()
    score.send_keys("1.5\t")  # formgrader saves a score when its box loses focus
    wait_until(lambda: gradebook_cells(course, "full_marks")["loss_vs_metric"][1:] == (1.5, False), 15,
               "the typed score in the gradebook")
    run_coursekit(course, "report", ASSIGNMENT)
    row = {r["student"]: r for r in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}["full_marks"]
    assert (row["status"], row["loss_vs_metric"], row["total"]) == ("graded", "1.5", "22.5")


def test_formgraders_autograde_button_gives_the_kits_score(staff):
    course, driver = staff["course"], staff["driver"]
    kit = {name: float(value) for name, value in staff["grades"]["no_sigmoid"].items() if name.startswith("test_")}
    assert kit["test_mnist_loss"] < 3  # the kit's hidden checks find the missing sigmoid; nbgrader alone gave 3/3
    autograded = course / "autograded" / "no_sigmoid" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    before = autograded.stat().st_mtime_ns
    submissions_table(staff)
    row = driver.find_element(By.XPATH, "//tbody/tr[td[2][normalize-space()='no_sigmoid']]")
    row.find_elements(By.TAG_NAME, "td")[5].find_element(By.TAG_NAME, "a").click()  # the ⚡ Autograde column
    message = wait_until(lambda: [m.text for m in driver.find_elements(By.CSS_SELECTOR, ".modal-body") if m.text.strip()], 300,
                         "formgrader's message after Autograde")
    assert "Successfully autograded" in message[0], message
    assert autograded.stat().st_mtime_ns != before, "the button should have graded it again"
    again = {name: auto for name, (auto, _, _) in gradebook_cells(course, "no_sigmoid").items() if name.startswith("test_")}
    assert again == kit


def test_the_class_report_shows_its_plots(staff):
    driver, page = staff["driver"], staff["course"] / "reports" / ASSIGNMENT / "index.html"
    driver.get(page.as_uri())
    sizes = wait_until(lambda: driver.execute_script(
        "const imgs = ['totals-plot', 'steps-plot', 'similarity-plot'].map(id => document.getElementById(id));"
        "return imgs.every(i => i && i.complete && i.naturalWidth > 0) ? imgs.map(i => [i.naturalWidth, i.naturalHeight]) : null"),
        15, "the three plots drawn")
    assert all(w >= 300 and h >= 150 for w, h in sizes), sizes
    assert driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)") == []  # asked nothing
    text = driver.find_element(By.TAG_NAME, "body").text
    assert "Hidden checks failed most often" in text and "Awaiting manual grading" in text and "Similarity" in text
    assert "kernel_dies" in text and "feedback" in text
    SCREENSHOTS.mkdir(exist_ok=True)
    driver.set_window_size(1400, min(8000, driver.execute_script("return document.body.scrollHeight") + 100))  # the whole page
    driver.save_screenshot(str(SCREENSHOTS / "class_report.png"))
    driver.set_window_size(1400, 1000)


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A student's JupyterLab: set up by `coursekit setup-jupyter student` in a Jupyter configuration of
    their own, started in a home that holds the released notebook."""
    home = tmp_path_factory.mktemp("student_home")
    shutil.copytree(Path(__file__).resolve().parents[2] / "release" / ASSIGNMENT, home / ASSIGNMENT)
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
           "PATH": str(BIN) + os.pathsep + os.environ["PATH"]}
    setup = subprocess.run([*COURSEKIT, "setup-jupyter", "student", "--level", "user"], env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr
    port = free_port()
    lab = subprocess.Popen([str(BIN / "jupyter"), "lab", "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            "--IdentityProvider.token=student", "--ServerApp.port_retries=0"], cwd=home, env=env,
                           stdout=subprocess.DEVNULL, stderr=open(home / "jupyter.log", "w"), start_new_session=True)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{base}/api/status?token=student") or lab.poll() is not None, 120, "the student's JupyterLab")
        assert lab.poll() is None, (home / "jupyter.log").read_text()[-2000:]
        driver = start_chromium(tmp_path_factory.mktemp("chromium_student"))
        driver.get(f"{base}/lab/tree/{ASSIGNMENT}/{ASSIGNMENT}.ipynb?token=student")
        wait_until(lambda: driver.execute_script("return document.querySelectorAll('.jp-CodeCell').length > 0 && "
                                                 "document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]') !== null"),
                   120, "the released notebook open, its kernel idle")
        yield {"driver": driver, "base": base, "home": home}
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(60)


def test_a_student_sees_no_staff_tools(student):
    driver = student["driver"]
    menu = next(m for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text == "Nbgrader")
    menu.click()
    items = wait_until(lambda: [t for t in driver.execute_script(
        "return [...document.querySelectorAll('.lm-Menu-itemLabel')].map(e => e.innerText)") if t], 10, "the Nbgrader menu")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()  # closes the menu
    assert "Assignment List" in items and not {"Formgrader", "Create Assignment"} & set(items), items
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{student['base']}/formgrader?token=student", timeout=30)
    assert refused.value.code == 404


def test_a_student_runs_the_first_cell_and_validates(student):
    driver = student["driver"]
    first = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell")[0]
    first.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").click()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()  # run it, as students do
    wait_until(lambda: first.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text.strip() == "[1]:", 120, "the first cell run")
    assert "train" in first.find_element(By.CSS_SELECTOR, ".jp-OutputArea").text  # the data folder's listing
    driver.find_element(By.XPATH, "//*[normalize-space(text())='Validate']").click()
    dialog = wait_until(lambda: [d.text for d in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog") if "failed" in d.text], 300,
                        "Validate's results")[0]
    assert dialog.startswith("Validation Results")
    assert dialog.count("The following cell failed") >= 8, dialog[:500]  # each step's checks, unfinished
    assert "name 'train_x' is not defined" in dialog
