"""CleanForStaff on hand-made outputs, and the pages' own cleaning on a notebook it never saw (no grading run: seconds)."""
import os
from html.parser import HTMLParser

import pytest
from conftest import REPO
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from traitlets.config.loader import PyFileConfigLoader

from coursekit.clean import CleanForStaff, svg_can_run

PNG = "iVBORw0KGgo="  # a PNG signature, base64
PLAIN_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><circle r="5"/></svg>'
HOSTILE_OUTPUTS = {
    "text/html": '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"><a href="JaVa&#115;cript:alert(1)">x</a>',
    "application/javascript": "window.__xss = 3",
    "text/markdown": "[click](javascript&#58;alert(4)) ![pixel](http://example.org/p.png) [data](data:text/html,<script>x</script>)",
    "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss = 5"><script>window.__xss = 6</script></svg>',
    "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
}
WRITTEN = ("My answer.\n\n<script>window.__xss = 7</script>\n\n<img src=x onerror=alert(8)>\n\n"
           "<details open ontoggle=alert(9)><summary>s</summary>d</details>\n\n[r][1]\n\n[1]: javascript:alert(10)\n")


class Active(HTMLParser):
    """What of the payloads in a page can run: scripts and handlers carrying them, script: addresses, inline SVG."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        if tag == "svg":
            self.found.append("svg")
        for name, value in attrs:
            value = (value or "").replace(" ", "").lower()
            if (name.startswith("on") and ("__xss" in value or "alert(" in value)) or "script:" in value:
                self.found.append(f"{tag} {name}")  # (formgrader's own markup has handlers of its own)

    def handle_data(self, data):
        if self._in_script and "__xss" in data:
            self.found.append(f"script {data[:40]}")

    def handle_endtag(self, tag):
        self._in_script = False


def active_parts(html: str) -> list[str]:
    parser = Active()
    parser.feed(html)
    return parser.found


def hostile_notebook():
    nb = new_notebook(metadata={"trusted": True})
    nb.cells.append(new_markdown_cell("# Step 1\n\nA quote:\n\n> as it is"))
    code = new_code_cell("show()", metadata={"trusted": True})
    # one output per type, as IPython displays them: a page shows only the first type it can of each output
    code.outputs = [new_output("display_data", data={kind: value, "text/plain": f"<{kind}>"}) for kind, value in HOSTILE_OUTPUTS.items()]
    code.outputs += [
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"},
                   metadata={"image/png": {"width": "1 onload=window.__xss=11", "height": 20}}),
        new_output("display_data", data={"image/jpeg": PNG}, metadata={"filenames": {"image/jpeg": "/api/contents"}}),
        new_output("execute_result", execution_count=1, data={
            "text/html": '<div><style scoped>.dataframe td {color: red}</style><table border="1" class="dataframe">'
                         '<thead><tr style="text-align: right;"><th></th><th>acc</th></tr></thead>'
                         "<tbody><tr><th>0</th><td>0.9</td></tr></tbody></table></div>",
            "text/plain": "   acc\n0  0.9"}),
        new_output("display_data", data={"image/svg+xml": PLAIN_SVG}),
        new_output("stream", name="stdout", text="<script>printed</script>\n")]
    nb.cells.append(code)
    nb.cells.append(new_markdown_cell(WRITTEN, metadata={"nbgrader": {"grade_id": "loss_vs_metric", "solution": True, "grade": True,
                                                                       "points": 2, "score": None}}))
    return nb


def test_outputs_keep_only_what_cannot_run():
    nb, _ = CleanForStaff().preprocess(hostile_notebook(), {})
    *hostile, png, jpeg, table, svg, stream = nb.cells[1].outputs
    assert [sorted(o.data) for o in hostile] == [["text/html", "text/plain"], ["text/plain"], ["text/markdown", "text/plain"],
                                                 ["text/plain"], ["text/plain"]]  # JavaScript, scripted SVG, widget dropped
    html = hostile[0].data["text/html"]
    assert "&lt;script&gt;" in html and active_parts(html) == []
    assert png.data["image/png"] == PNG and svg.data["image/svg+xml"] == PLAIN_SVG
    assert png.metadata == {"image/png": {"height": 20}}  # a size that is not a number would be written into the tag
    assert jpeg.metadata == {}  # a page would load the image from that address
    assert "<table" in table.data["text/html"] and "<th>acc</th>" in table.data["text/html"] and "color: red" not in table.data["text/html"]
    assert stream.text == "<script>printed</script>\n"  # text: every page escapes it
    assert "trusted" not in nb.metadata and "trusted" not in nb.cells[1].metadata


def test_markdown_keeps_its_text_and_loses_its_links_and_handlers():
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    nb, _ = CleanForStaff().preprocess(hostile_notebook(), {})
    assert nb.cells[0].source == "# Step 1\n\nA quote:\n\n> as it is"  # Markdown without HTML is left as it is
    for text in (nb.cells[2].source, nb.cells[1].outputs[2].data["text/markdown"]):
        rendered = markdown2html_mistune(text)
        assert active_parts(rendered) == [] and "<img" not in rendered and 'href="data:' not in rendered, rendered
    assert "My answer." in nb.cells[2].source and "&lt;script&gt;" in nb.cells[2].source


def test_svg_is_kept_only_when_nothing_in_it_can_run_or_load():
    assert not svg_can_run(PLAIN_SVG)
    for svg in (HOSTILE_OUTPUTS["image/svg+xml"], '<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:x()"><text>t</text></a></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill: url(http://example.org/x)"/></svg>',
                '<!DOCTYPE svg [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg"/>', "<svg><unclosed>"):
        assert svg_can_run(svg), svg


def course_exporter(exporter_class, template_name):
    import nbgrader

    config = PyFileConfigLoader("course_config.py", path=str(REPO)).load_config()
    config.HTMLExporter.template_name = template_name
    formgrader = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader")
    # as nbgrader's GenerateFeedback and formgrader set them
    config.HTMLExporter.extra_template_basedirs = [os.path.join(formgrader, "templates")]
    config.HTMLExporter.extra_template_paths = [os.path.join(formgrader, "static", "node_modules", "bootstrap", "dist", "css")]
    return exporter_class(config=config)


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_pages_alone_run_nothing_from_an_uncleaned_notebook(template):
    """Defence in depth: the course's exporter settings, on a notebook graded before CleanForStaff existed."""
    from nbconvert.exporters import HTMLExporter

    from coursekit.report import FeedbackExporter

    nb = hostile_notebook()
    resources = {"nbgrader": {"notebook": "mnist_sgd", "score": 0, "max_score": 2, "late_penalty": 0},
                 "base_url": "", "submission_id": "x", "notebook_id": "mnist_sgd", "assignment_id": "mnist_sgd", "index": 0, "total": 1}
    exporter = course_exporter(FeedbackExporter if template == "feedback" else HTMLExporter, template)
    html, _ = exporter.from_notebook_node(nb, resources=resources)
    assert "My answer." in html and "<table" in html and "data:image/png;base64," in html
    assert active_parts(html) == []


@pytest.mark.parametrize("sanitize_html", [False, True])
def test_pages_without_the_course_filters_would_run_it(sanitize_html):
    """The test above can fail. With nbconvert's defaults, as plain nbgrader uses them, the payloads reach the page;
    with sanitize_html alone, the written answer still does (nbgrader's templates render Markdown raw)."""
    from nbconvert.exporters import HTMLExporter

    exporter = course_exporter(HTMLExporter, "feedback")
    exporter.sanitize_html, exporter.filters = sanitize_html, {}
    html, _ = exporter.from_notebook_node(hostile_notebook(), resources={"nbgrader": {"notebook": "n", "score": 0, "max_score": 2, "late_penalty": 0}})
    found = active_parts(html)
    assert {"script window.__xss = 7", "img onerror", "details ontoggle"} <= set(found), found
    assert len(found) >= (4 if sanitize_html else 7), found


def test_locked_markdown_is_left_as_the_instructor_wrote_it():
    """A locked cell's text is the instructor's (OverwriteCells restored it) and nbgrader checks its checksum
    (`nbgrader validate` on the autograded notebook, nbgrader's test_hidden_tests_single_notebook): left alone.
    The same text in a student's cell is cleaned."""
    from nbgrader.utils import compute_checksum

    text = "Use the notebook:\n\n<img src=\"jupyter.png\" width=\"200\">\n"
    locked = new_markdown_cell(text, metadata={"nbgrader": {"grade_id": "intro", "locked": True, "grade": False,
                                                             "solution": False, "schema_version": 3}})
    locked.metadata.nbgrader["checksum"] = compute_checksum(locked)
    nb, _ = CleanForStaff().preprocess(new_notebook(cells=[locked, new_markdown_cell(text)]), {})
    assert nb.cells[0].source == text and compute_checksum(nb.cells[0]) == locked.metadata.nbgrader["checksum"]
    assert nb.cells[1].source != text and "<img" not in nb.cells[1].source


def test_a_remembered_part_of_a_page_is_what_rendering_it_gives():
    """Feedback pages render each distinct Markdown cell and highlight each distinct code cell once per process
    (clean.MARKDOWN_PAGES, report.HIGHLIGHTED): a class's pages repeat the book's text and code. A part is remembered
    by all it is made from: the same text with another attachment, or the same code in another cell language,
    renders anew, and what is remembered is what rendering it again would give."""
    from nbconvert.filters.highlight import Highlight2HTML

    from coursekit.clean import MARKDOWN_PAGES
    from coursekit.report import HIGHLIGHTED, FeedbackExporter, RememberedHighlight2HTML

    text = "A digit: ![digit](attachment:digit.png)\n\n<script>window.__xss = 1</script>"
    resources = {"nbgrader": {"notebook": "n", "score": 0, "max_score": 2, "late_penalty": 0}}

    def page(png: str) -> str:
        nb = new_notebook(cells=[new_markdown_cell(text, attachments={"digit.png": {"image/png": png}})])
        return course_exporter(FeedbackExporter, "feedback").from_notebook_node(nb, resources=resources)[0]

    MARKDOWN_PAGES.results.clear()
    first, second = page("Zmlyc3Q="), page("c2Vjb25k")
    assert "data:image/png;base64,Zmlyc3Q=" in first and "data:image/png;base64,c2Vjb25k" in second
    assert active_parts(first) == active_parts(second) == []
    MARKDOWN_PAGES.results.clear()
    assert page("c2Vjb25k") == second

    code = "%%bash\nfor name in *; do echo \"$name\"; done"
    highlight = RememberedHighlight2HTML(pygments_lexer="ipython3")
    HIGHLIGHTED.results.clear()
    as_python, as_bash = highlight(code), highlight(code, metadata={"magics_language": "bash"})
    assert as_python != as_bash
    assert as_bash == Highlight2HTML(pygments_lexer="ipython3")(code, metadata={"magics_language": "bash"})
    assert highlight(code) == as_python == Highlight2HTML(pygments_lexer="ipython3")(code)
