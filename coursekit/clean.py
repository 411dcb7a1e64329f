"""Stage: what grading keeps of a submission is safe to show to staff.

A student's outputs and written answers are saved into the autograded notebook,
and staff open them later in pages that run with the instructor's login:
formgrader's manual grading page, the feedback page, anything made from the
notebook later. `CleanForStaff`, last in nbgrader's autograde pipeline
(course_config.py), leaves in that notebook only what a page can show without
running anything:

- outputs keep text, PNG and JPEG images, and HTML or Markdown cleaned with
  bleach (an allowlist of tags and attributes: a DataFrame's table stays, a
  `<script>` or an `onerror` is shown as text or dropped); JavaScript, widgets,
  LaTeX and any other type are dropped; SVG only when nothing in it can run or load;
- Markdown (cells and outputs) is cleaned the same way (but for locked cells: the instructor's text,
  which OverwriteCells restored, and whose checksum nbgrader checks), and links may only go to
  http, https, mailto or a relative address; images only to an attachment or
  embedded PNG, JPEG or GIF data;
- output metadata keeps only numeric image sizes (a page writes them into the
  image's tag unquoted);
- the notebook's and cells' `trusted` flags are dropped.

The pages are also made with nbconvert's `sanitize_html` on (course_config.py);
`CleanHTML`, `CleanMarkdown2HTML` and `safe_get_metadata` are the filters those
pages then use, with the same allowlist, so that a notebook graded before this stage shows nothing
that runs either.

No Content-Security-Policy header: formgrader's manual-grading page needs its
own inline scripts (four, one with the submission's id, so no fixed hash list
fits), and nbgrader gives them no nonce; `'unsafe-inline'` would let an injected
`<script>` or `onerror` run too. And the header (`ServerApp.tornado_settings`)
would apply to every page and API of the server, JupyterLab included, not only
to formgrader's. So it would take patching nbgrader's handlers and templates.
"""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from xml.etree import ElementTree

import bleach
import jinja2
from bleach.css_sanitizer import CSSSanitizer
from nbconvert.filters.metadata import get_metadata
from nbconvert.filters.markdown_mistune import InvalidNotebook, IPythonRenderer, MarkdownWithMath
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_locked
from traitlets import Bool, Dict, List, Set, Unicode
from traitlets.config import LoggingConfigurable

LIMIT_NOTE = "coursekit-limit"  # an output's metadata key: the grader's note of a limit reached, for the report
TAGS = ["a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details", "div",
        "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "q", "s",
        "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
        "tr", "u", "ul", "var"]
ATTRIBUTES = {"*": ["class", "title"], "a": ["href"], "table": ["border"], "td": ["colspan", "rowspan"],
              "th": ["colspan", "rowspan"], "details": ["open"]}
PROTOCOLS = ["http", "https", "mailto"]
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
URL_ATTRIBUTES = {"href", "src", "xlink:href", "action", "formaction", "poster", "background", "srcset", "data", "ping"}
STYLE_ELEMENT = re.compile(r"<style\b.*?</style\s*>", re.I | re.S)  # a DataFrame's CSS: dropped, not shown as text


def url_scheme(url: str) -> str | None:
    """The scheme a browser would see in this attribute value (entities decoded, blanks and controls ignored)."""
    plain = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(url)).lower()
    found = SCHEME.match(plain)
    return found.group(1) if found else None


class _URLs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []  # (attribute, value), values decoded

    def handle_starttag(self, tag, attrs):
        self.found.extend((name, value or "") for name, value in attrs if name in URL_ATTRIBUTES or name.startswith("on"))


def unsafe_urls(rendered: str, protocols, image_sources) -> list[str]:
    """The addresses (or event handlers) in rendered HTML that a page should not carry."""
    parser = _URLs()
    parser.feed(rendered)
    bad = []
    for name, value in parser.found:
        if name == "href" and url_scheme(value) in (None, *protocols):
            continue
        if name == "src" and html.unescape(value).strip().lower().startswith(tuple(image_sources)):
            continue
        bad.append(f"{name}={value[:40]}")
    return bad


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def safe_metadata(metadata: dict) -> dict:
    """An output's metadata, minus what a page would write into an element unchecked.

    nbconvert writes an image's width and height into its <img> tag unquoted, so
    `{"image/png": {"width": "1 onload=..."}}` adds a handler; only numbers are kept.
    Also gone: file names (an address to load), 'isolated' (an iframe), anything else.
    """
    kept = {key: metadata[key] for key in ("width", "height") if number(metadata.get(key))}
    if isinstance(metadata.get(LIMIT_NOTE), str):  # the grader's own note (execute.note_disk_limit), never rendered
        kept[LIMIT_NOTE] = metadata[LIMIT_NOTE]
    for kind, entry in metadata.items():
        if kind.startswith("image/") and isinstance(entry, dict):
            sizes = {key: entry[key] for key in ("width", "height") if number(entry.get(key))}
            if sizes:
                kept[kind] = sizes
    return kept


def safe_get_metadata(output, key, mimetype=None):
    """The get_metadata filter of the pages: a width or height only when it is a number (see safe_metadata)."""
    value = get_metadata(output, key, mimetype)
    return value if key not in ("width", "height") or number(value) else None


def render(source: str, attachments: dict) -> str | None:
    """Markdown as nbconvert renders it on the pages (attachments embedded); None if it cannot be."""
    try:
        return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments)).render(source)
    except InvalidNotebook:  # an image names a missing attachment
        return None


def svg_can_run(svg: str) -> bool:
    """Whether an SVG holds anything that could run or load: scripts, handlers, links out, foreign content."""
    if re.search(r"<!ENTITY|<!DOCTYPE[^>]*\[", svg, re.I):  # entities: none in a plain drawing
        return True
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError:
        return True
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else "?"
        if tag in {"script", "foreignobject", "iframe", "embed", "object", "handler", "listener", "animate",
                   "set", "animatemotion", "animatetransform", "a", "image", "use", "feimage", "?"} and not (
                tag == "use" and all(v.startswith("#") for k, v in element.attrib.items() if k.endswith("href"))):
            return True
        for name, value in element.attrib.items():
            name = name.rsplit("}", 1)[-1].lower()
            if name.startswith("on") or (name == "href" and not value.startswith("#")):
                return True
            if re.search(r"url\(\s*['\"]?\s*[^#'\"\s]", value, re.I) or "javascript:" in value.lower():
                return True
        if tag == "style" and re.search(r"@import|url\(\s*['\"]?\s*[^#'\"\s]|expression\(", element.text or "", re.I):
            return True
    return False


class CleanForStaff(NbGraderPreprocessor):
    """Last in nbgrader's autograde pipeline: every output and every Markdown cell reduced to content that cannot run."""

    tags = List(Unicode(), default_value=TAGS,
                help="HTML tags an output or a Markdown cell may use; any other is shown as text (bleach escapes it).").tag(config=True)
    attributes = Dict(default_value=ATTRIBUTES,
                      help="Attributes allowed on those tags, by tag ('*': on every tag); any other is dropped.").tag(config=True)
    protocols = List(Unicode(), default_value=PROTOCOLS,
                     help="Schemes a link may use besides relative addresses; a link to another (javascript:, data:) loses its address.").tag(config=True)
    image_sources = List(Unicode(), default_value=["attachment:", "data:image/png;", "data:image/jpeg;", "data:image/gif;"],
                         help="How the address of an image in Markdown may begin: nothing is loaded from a server when a page opens.").tag(config=True)
    kept_output_types = Set(default_value={"text/plain", "image/png", "image/jpeg"},
                            help="Output types kept as they are (text and raster images, matplotlib's plots included).").tag(config=True)
    cleaned_output_types = Set(default_value={"text/html", "text/markdown"},
                               help="Output types kept once cleaned; every type not listed here or above is dropped (application/javascript, widgets, LaTeX).").tag(config=True)
    keep_plain_svg = Bool(True, help="Keep an image/svg+xml output in which nothing can run or load (svg_can_run); drop it otherwise.").tag(config=True)

    def clean(self, text: str) -> str:
        return bleach.clean(text, tags=self.tags, attributes=self.attributes, protocols=self.protocols, strip=False)

    def clean_markdown(self, source: str, attachments: dict | None = None) -> str:
        """Raw HTML cleaned; and if links or images still point somewhere unsafe, the rendered and cleaned HTML instead."""
        cleaned = self.clean(source) if "<" in source else source  # without '<' there is no raw HTML (and bleach would escape '>' quotes)
        rendered = render(cleaned, attachments or {})
        if rendered is not None and not unsafe_urls(rendered, self.protocols, self.image_sources):
            return cleaned
        # HTML is Markdown too: staff see the same text, minus the unsafe links and images
        cleaned = self.clean(rendered) if rendered is not None else ""
        if rendered is None or unsafe_urls(render(cleaned, {}) or "", self.protocols, self.image_sources):
            return f"<pre>{html.escape(source)}</pre>"  # shown as the text it is
        return cleaned

    def clean_outputs(self, outputs: list) -> list:
        for output in outputs:
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue  # streams and errors are text: every page escapes them
            data = output.get("data", {})
            for key in list(data):
                value = data[key] if isinstance(data[key], str) else "".join(data[key])
                if key in self.kept_output_types:
                    continue
                if key == "text/markdown" and key in self.cleaned_output_types:
                    data[key] = self.clean_markdown(value)
                elif key in self.cleaned_output_types:
                    data[key] = self.clean(STYLE_ELEMENT.sub("", value))
                elif key == "image/svg+xml" and self.keep_plain_svg and not svg_can_run(value):
                    continue
                else:
                    del data[key]
                    self.log.info("dropped a %s output", key)
            if not data:
                data["text/plain"] = "(an output the grader does not show)"
            output["metadata"] = safe_metadata(output.get("metadata", {}))
        return outputs

    def preprocess(self, nb, resources):
        nb.metadata.pop("trusted", None)
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            cell.metadata.pop("trusted", None)
            if cell.cell_type in ("markdown", "raw") and is_locked(cell):
                # the instructor's text: OverwriteCells, earlier in the pipeline, put back the source's own
                # wherever a student changed it; left as it is, so that nbgrader's checksum of the cell holds
                # (the pages still render it cleaned, through CleanMarkdown2HTML)
                continue
            if cell.cell_type in ("markdown", "raw"):
                attachments = cell.get("attachments", {})
                for name in list(attachments):
                    attachments[name] = {k: v for k, v in attachments[name].items() if k in ("image/png", "image/jpeg", "image/gif")}
                cell.source = self.clean_markdown(cell.source, attachments) if cell.cell_type == "markdown" else self.clean(cell.source)
            elif cell.cell_type == "code":
                cell.outputs = self.clean_outputs(cell.outputs)
        return nb, resources


CONTEXT = jinja2.pass_context(lambda: None).jinja_pass_arg  # what marks a jinja filter that takes the context


class CleanHTML(LoggingConfigurable):
    """The clean_html filter of the staff and feedback pages (with HTMLExporter.sanitize_html): CleanForStaff's default allowlist, images too."""

    def __call__(self, text) -> str:
        text = text.decode() if isinstance(text, bytes) else str(text)
        return bleach.clean(text, tags=[*TAGS, "img"], attributes={**ATTRIBUTES, "img": ["src", "alt", "width", "height"]},
                            protocols=[*PROTOCOLS, "data"], strip=False, css_sanitizer=CSSSanitizer())


class Remembered:
    """A pure function's results by key, shared by a process's threads, at most `size` of them (all are dropped when
    full). A class's pages show the same text again and again: the book's prose and code, the checks' tests."""

    def __init__(self, size: int = 4096):
        self.size, self.results = size, {}

    def get(self, key, compute):
        if key not in self.results:
            if len(self.results) >= self.size:
                self.results.clear()
            self.results[key] = compute()
        return self.results[key]


MARKDOWN_PAGES = Remembered()


class CleanMarkdown2HTML(LoggingConfigurable):
    """The markdown2html filter of those pages: the exporter's own, then cleaned.

    nbgrader's formgrade and feedback templates render Markdown cells with
    markdown2html and never clean it, even with sanitize_html on. Each distinct
    cell is rendered and cleaned once per process, keyed by everything
    HTMLExporter.markdown2html reads; with embed_images on, which reads image files, nothing is remembered.
    """

    jinja_pass_arg = CONTEXT

    def __call__(self, context, source) -> str:
        exporter = self.parent
        render = lambda: CleanHTML(parent=self)(exporter.markdown2html(context, source))  # noqa: E731
        if exporter.embed_images:  # then the page holds image files read from the notebook's folder: not remembered
            return render()
        key = (source, json.dumps(context.get("cell", {}).get("attachments", {}), sort_keys=True),
               exporter.anchor_link_text, exporter.exclude_anchor_links, repr(exporter.lexer_options))
        return MARKDOWN_PAGES.get(key, render)
