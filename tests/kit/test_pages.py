"""A student's output never runs as staff (issue 22), checked in a real browser.

One graded course (real `coursekit grade`): a hostile submission whose answer
cell displays every kind of active output and whose written answer holds raw
HTML with handlers, and an honest one that shows a matplotlib plot and a pandas
DataFrame. JupyterLab serves formgrader on loopback; headless Chromium opens
formgrader's manual-grading page and the feedback page (from disk) of each.
Each payload, if it ran, would mark the page, read formgrader's API, set every
grade with the `_xsrf` cookie and write a file through `/api/contents`, and
every address it asks for carries `xss=`, so Chromium's network log shows it.
"""
import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from browser import needs_chromium, start_chromium
from conftest import ASSIGNMENT, make_course, notebook_paths, run_coursekit

from coursekit.jupyter import free_port
from coursekit.samples import make_submission, write_submission

pytestmark = needs_chromium
pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements.txt)")

NOTEBOOK = f"{ASSIGNMENT}.ipynb"


def attack(name: str) -> str:
    """What each payload runs: a mark, then as the instructor, read scores, set grades, write a file."""
    return f"""(async () => {{
  window.__xss = (window.__xss || []).concat(["{name}"]); document.title = "XSS {name}";
  const xsrf = decodeURIComponent((document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "");
  const h = {{"X-XSRFToken": xsrf, "Content-Type": "application/json"}};
  const subs = await (await fetch("/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}?xss={name}")).json();
  for (const s of subs) {{
    const grades = await (await fetch("/formgrader/api/grades?submission_id=" + s.id + "&xss={name}")).json();
    for (const g of grades) await fetch("/formgrader/api/grade/" + g.id + "?xss={name}",
        {{method: "PUT", headers: h, body: JSON.stringify({{manual_score: 0, extra_credit: 50}})}});
  }}
  await fetch("/api/contents/XSS_{name}.txt?xss={name}",
      {{method: "PUT", headers: h, body: JSON.stringify({{type: "file", format: "text", content: "{name}"}})}});
}})();"""


def inline(name: str) -> str:
    """The payload as an attribute value: no quotes or angle brackets to escape."""
    return f"eval(atob('{base64.b64encode(attack(name).encode()).decode()}'))"


TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def onerror(name: str) -> str:
    return f'<img src=x onerror="{inline(name)}">'


def output_payloads() -> dict[str, str]:
    """name -> Python code, for the answer cell, that displays it."""
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{inline("svg_script")}"><circle r="5"/>'
           f'<script><![CDATA[{attack("svg_script")}]]></script></svg>')
    return {
        "html_script": f"display(HTML({'<b>hi</b><script>' + attack('html_script') + '</script>'!r}))",
        "html_img_onerror": f"display(HTML({onerror('html_img_onerror')!r}))",
        "javascript": f"display(Javascript({attack('javascript')!r}))",
        "repr_html": f"class Sneaky:\n    def _repr_html_(self):\n        return {onerror('repr_html')!r}\ndisplay(Sneaky())",
        "markdown_link": f"display(Markdown({'[a link](javascript:' + inline('markdown_link') + ')'!r}))",
        "markdown_img": f"display(Markdown({onerror('markdown_img')!r}))",
        "svg_script": f"display(SVG({svg!r}))",
        # a real image whose size, in its metadata, a page writes into the <img> tag unquoted
        "png_size_onload": (f"display({{'image/png': {TINY_PNG!r}, 'text/plain': 'a dot'}}, raw=True, "
                            f"metadata={{'image/png': {{'width': {'1 onload=' + inline('png_size_onload')!r}}}}})"),
    }


WRITTEN_PAYLOADS = ["answer_script", "answer_img_onerror", "answer_details_ontoggle", "answer_link"]


def written_answer() -> str:
    return ("The loss must change smoothly with the weights; accuracy only changes when a prediction flips.\n\n"
            f"<script>{attack('answer_script')}</script>\n\n"
            f'<img src=x onerror="{inline("answer_img_onerror")}">\n\n'
            f'<details open ontoggle="{inline("answer_details_ontoggle")}"><summary>more</summary>details</details>\n\n'
            f"[see here](javascript:{inline('answer_link')})\n")


HONEST_CELL = """import matplotlib.pyplot as plt
import pandas as pd
plt.plot([0, 1, 2], [0.5, 0.8, 0.9])
plt.title("accuracy per epoch")
plt.show()
display(pd.DataFrame({"epoch": [0, 1, 2], "accuracy": [0.5, 0.8, 0.9]}))"""


class ActiveParts(HTMLParser):
    """Elements and attributes of HTML that can run or load something when a page shows it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "svg", "img", "style", "link", "meta", "base", "form"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (name in ("href", "src", "action") and "script:" in (value or "").replace(" ", "").lower()):
                self.found.append(f"{tag} {name}={value[:30]}")


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def gradebook_state(course: Path) -> list:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return sorted((s.student.id, g.name, g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                      for s in gradebook.assignment_submissions(ASSIGNMENT) for nb in s.notebooks for g in nb.grades)


def submission_id(course: Path, student: str) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student).id


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The graded course, JupyterLab serving it, and a headless Chromium; all stopped afterwards."""
    course = make_course(tmp_path_factory.mktemp("pages"))
    source, release = notebook_paths(course, ASSIGNMENT)
    hostile = make_submission(source, release, None)
    hostile.metadata["trusted"] = True
    cell(hostile, "flatten").source += ("\nfrom IPython.display import HTML, Javascript, Markdown, SVG, display\n"
                                        + "\n".join(output_payloads().values()))
    cell(hostile, "loss_vs_metric").source = written_answer()
    write_submission(course, ASSIGNMENT, "hostile", hostile)
    honest = make_submission(source, release, None)
    honest.cells.append(nbformat.v4.new_code_cell(HONEST_CELL))
    write_submission(course, ASSIGNMENT, "honest", honest)
    run_coursekit(course, "grade", ASSIGNMENT, "--workers", "2")

    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    log = open(course / "jupyter.log", "w")
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "jupyter"), "lab", "--allow-root", "--no-browser",
                               "--ip=127.0.0.1", f"--port={port}", f"--ServerApp.token={token}", "--ServerApp.port_retries=0"],
                              cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (course / "jupyter.log").read_text()[-3000:]
                time.sleep(0.5)
        else:
            raise AssertionError(f"JupyterLab did not answer within a minute:\n{(course / 'jupyter.log').read_text()[-3000:]}")
        driver = start_chromium(tmp_path_factory.mktemp("chromium"), network_log=True)
        driver.get(f"{base}/formgrader?token={token}")  # logs in: the token becomes a cookie, as for staff
        yield {"course": course, "base": base, "driver": driver, "before": gradebook_state(course)}
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(server.pid, 15)
        server.wait(30)
        log.close()


def visit(pages, url: str) -> dict:
    """Open a page, let anything on it run, click every javascript: link; what ran, and what it asked for."""
    driver = pages["driver"]
    driver.get_log("performance")  # drop what earlier pages asked for
    driver.get(url)
    time.sleep(3)  # formgrader's own scripts, and any payload, finish their requests
    clicked = driver.execute_script(
        "const links = [...document.querySelectorAll('a[href]')].filter(a => a.href.trim().toLowerCase().startsWith('javascript:'));"
        "links.forEach(a => a.click()); return links.length;")
    time.sleep(1 if clicked else 0)
    requests = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    asked = [m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"]
    return {"ran": driver.execute_script("return window.__xss || []"), "title": driver.title,
            "xss_requests": [u for u in asked if "xss=" in u], "requests": asked,
            "imgs": driver.execute_script("return [...document.querySelectorAll('#notebook img')].map(i => i.src.slice(0, 30))"),
            "tables": driver.execute_script("return document.querySelectorAll('#notebook table').length"),
            "text": driver.find_element("tag name", "body").text}


def formgrader_page(pages, student):
    return visit(pages, f"{pages['base']}/formgrader/submissions/{submission_id(pages['course'], student)}/")


def feedback_page(pages, student):
    return visit(pages, (pages["course"] / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").as_uri())


def assert_nothing_ran(pages, page):
    assert page["ran"] == [] and not page["title"].startswith("XSS"), f"payloads ran: {page['ran']}"
    assert page["xss_requests"] == [], page["xss_requests"]
    assert list(pages["course"].rglob("XSS_*")) == []
    assert gradebook_state(pages["course"]) == pages["before"]


def test_formgrader_page_runs_no_payload(pages):
    page = formgrader_page(pages, "hostile")
    assert "Student's answer" in page["text"] and "accuracy only changes when a prediction flips" in page["text"]
    assert any("/formgrader/api/" in u for u in page["requests"]), "formgrader's own scripts should still load the grades"
    assert_nothing_ran(pages, page)


def test_feedback_page_runs_no_payload(pages):
    page = feedback_page(pages, "hostile")
    assert "accuracy only changes when a prediction flips" in page["text"]
    assert_nothing_ran(pages, page)


def test_autograded_notebook_holds_nothing_that_runs(pages):
    graded = json.loads((pages["course"] / "autograded" / "hostile" / ASSIGNMENT / NOTEBOOK).read_text())
    assert "trusted" not in graded["metadata"]
    # the answer cell ran to its end: every payload was displayed, and is still there in some safe form
    assert len(cell(nbformat.from_dict(graded), "flatten").outputs) == len(output_payloads())
    outputs = [o for c in graded["cells"] for o in c.get("outputs", [])]
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert not kinds & {"application/javascript", "image/svg+xml"}, kinds
    # what a page renders as HTML: HTML and Markdown outputs, Markdown cells (code is shown as escaped text)
    html = [o["data"].get("text/html", "") for o in outputs if "data" in o]
    markdown = [o["data"].get("text/markdown", "") for o in outputs if "data" in o] + \
        [c["source"] for c in graded["cells"] if c["cell_type"] == "markdown"]
    active = ActiveParts()
    for part in html + [markdown2html_mistune(m if isinstance(m, str) else "".join(m)) for m in markdown]:
        active.feed(part if isinstance(part, str) else "".join(part))
    assert active.found == [], active.found[:5]
    answer = "".join(cell(nbformat.from_dict(graded), "loss_vs_metric").source)
    assert "accuracy only changes" in answer and "&lt;script&gt;" in answer, "the answer stays, the attempt shown as text"


@pytest.mark.parametrize("where", ["formgrader", "feedback"])
def test_plot_and_dataframe_still_show(pages, where):
    page = (formgrader_page if where == "formgrader" else feedback_page)(pages, "honest")
    assert any(src.startswith("data:image/png;base64,") for src in page["imgs"]), page["imgs"]
    assert page["tables"] >= 1
    assert "accuracy" in page["text"] and "0.9" in page["text"]
    assert_nothing_ran(pages, page)
