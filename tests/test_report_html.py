"""`snakemake --report report.html` after a real run of the tiny config, opened in headless Chromium.

The Snakemake report is a React app: the registered results appear only after its JavaScript runs and the user
clicks through the navigation (`chromium --dump-dom` shows the landing page and nothing more). So the browser tests
drive Chromium through the DevTools protocol over a pipe (`--remote-debugging-pipe`: the browser reads commands on
fd 3 and writes replies and events on fd 4, NUL-separated JSON; no websocket library needed). They click with real
mouse events, read what is rendered (innerText, decoded images, the data: iframe that shows the HTML tables), and
record every console message, uncaught exception and request of the page.

Nothing flips between SavedModel and ONNX Runtime on the CPU, so the tiny run checks what the report says when
there are no flipped samples; a second run makes three samples flip (ONNX Runtime's predictions edited, as a
diverging backend would give) and checks the flipped-samples image and table.

Screenshots of every view are left in the test's tmp_path (``screens/``) to look at.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from conftest import REPO, copy_workflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY = REPO / "tests" / "data" / "config-tiny.yaml"
# What a workflow copy needs (as in test_workflow.py, kept here so that file can change on its own).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CAPTION = " ".join((REPO / "docs" / "report-caption.rst").read_text().split())
PLOT_CAPTION = " ".join((REPO / "docs" / "report-caption-plots.rst").read_text().split())
TABLES_LABEL = "comparison tables"   # the report() labels of rules/report.smk: the viewer lists entries by them
# docs/report-schema.md: always one histogram per pair and the per-class agreement; flipped only when some flip.
PAIR = "savedmodel vs onnxruntime"
ALWAYS = ["results/plots/tiny-abs-diff-savedmodel-vs-onnxruntime.png", "results/plots/tiny-per-class-agreement.png"]
FLIPPED = "results/plots/tiny-flipped.png"
TABLES = "results/report.html"
FLIP_ROWS = [0, 1, 2]
NO_FAIL = "report: {fail_on_mismatch: false, float_format: '.3g'}"


# --- the pipeline -----------------------------------------------------------------------------------------------------
def snakemake(workdir: Path, *args: str, overlay: Path | None = None) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    configs = [str(TINY)] + ([str(overlay)] if overlay else [])
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile", *configs,
           "--replace-workflow-config"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def make_report(workdir: Path, overlay: Path | None = None) -> Path:
    out = snakemake(workdir, "--report", "report.html", overlay=overlay)
    assert "Report created" in out, out
    return workdir / "report.html"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config run to the end, then its HTML report."""
    ws = copy_workflow(tmp_path_factory.mktemp("report_run"))
    snakemake(ws)
    make_report(ws)
    return ws


@pytest.fixture(scope="module")
def flipped_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the run in which ONNX Runtime's top-1 differs on three samples: compare and report rerun (the
    verdict becomes mismatch, so the report is told not to fail), then the HTML report again."""
    ws = tmp_path_factory.mktemp("report_flipped") / "ws"
    shutil.copytree(tiny_run, ws, symlinks=True)
    (ws / "report.html").unlink()
    path = ws / "results" / "tiny" / "predictions" / "onnxruntime.npy"
    probs = np.load(path)
    for i in FLIP_ROWS:                                   # swap the two most likely classes
        first, second = np.argsort(probs[i])[::-1][:2]
        probs[i, [first, second]] = probs[i, [second, first]]
    time.sleep(1.1)                                       # mtime resolution
    np.save(path, probs)
    overlay = ws / "no-fail.yaml"
    overlay.write_text(NO_FAIL)
    out = snakemake(ws, overlay=overlay)
    assert re.search(r"^compare +1$", out, re.M) and re.search(r"^report +1$", out, re.M), out
    assert not re.search(r"^predict_onnxruntime", out, re.M), out
    make_report(ws, overlay)
    return ws


def summary_of(ws: Path) -> dict[str, Any]:
    return json.loads((ws / "results" / "summary.json").read_text())


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- Chromium through the DevTools protocol -----------------------------------------------------------------------
def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = find_chromium()
# Checked before the pipeline runs: without a browser there is nothing to look at.
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium binary ({', '.join(CHROMIUM_NAMES)}) "
                                    "on PATH; `make test` installs it through tools/system-deps.sh")


class Browser:
    """One headless Chromium with one page, driven over --remote-debugging-pipe."""

    def __init__(self, binary: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "chromium.log"
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Moved above 10 first, so that putting them on 3 and 4 in the child cannot overwrite one with the other.
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def on_fds_3_and_4() -> None:
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={workdir / 'profile'}", "--window-size=1400,1000", "--hide-scrollbars",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--enable-logging=stderr", "--v=0", "about:blank"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(3, 4),
                                         preexec_fn=on_fds_3_and_4)
        os.close(child_r)
        os.close(child_w)
        self.events: list[dict[str, Any]] = []
        self._replies: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._cv = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = self._attach()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 20):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cv:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                self._cv.notify_all()
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True,
             timeout: float = 30) -> dict[str, Any]:
        with self._cv:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._cv:
            if not self._cv.wait_for(lambda: ident in self._replies or self._closed, timeout):
                raise AssertionError(f"Chromium did not answer {method} in {timeout} s; see {self.log_path}")
            if ident not in self._replies:
                raise AssertionError(f"Chromium exited during {method}: {self.log_tail()}")
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def _attach(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            pages = [t for t in self.call("Target.getTargets", session=False)["targetInfos"] if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert pages, f"Chromium opened no page: {self.log_tail()}"
        session = self.call("Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True},
                            session=False)["sessionId"]
        self.session = session
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        return session

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def evaluate(self, expression: str, context: int | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        reply = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression[:200]} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 60, context: int | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression, context)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not so after {timeout} s")
            time.sleep(0.1)

    def click(self, element: str, what: str) -> None:
        """A left click with the mouse in the middle of ``element`` (a JS expression), scrolled into view."""
        box = self.wait(f"""(() => {{ const el = {element}; if (!el) return null;
            el.scrollIntoView({{block: "center"}}); const r = el.getBoundingClientRect();
            return r.width > 0 && r.height > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()""",
                        f"{what} is shown")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))

    def frame_context(self, url_prefix: str) -> int:
        """An execution context in the page's child frame whose URL starts with url_prefix."""
        def frames(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
            yield tree["frame"]
            for child in tree.get("childFrames", []):
                yield from frames(child)

        deadline = time.monotonic() + 15
        while True:
            found = [f for f in frames(self.call("Page.getFrameTree")["frameTree"]) if f["url"].startswith(url_prefix)]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(found) == 1, f"{len(found)} frames show {url_prefix}"
        return self.call("Page.createIsolatedWorld", {"frameId": found[0]["id"], "worldName": "test"})[
            "executionContextId"]

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False, timeout=10)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=10)
        os.close(self._from_browser)

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and log errors the page produced, and what the stderr log says."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"uncaught: {details.get('exception', {}).get('description') or details['text']}")
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']}")
        found += [line for line in self.log_path.read_text(errors="replace").splitlines() if "Uncaught" in line]
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]


def label(path: str) -> str:
    """The label the report lists an entry under (a plot: its file name less .png)."""
    return TABLES_LABEL if path == TABLES else Path(path).stem


def unlabel(text: str) -> str:
    return TABLES if text == TABLES_LABEL else f"results/plots/{text}.png"


class ReportPage:
    """The Snakemake report as a user sees it: the menu, a category's files, a file shown, a file's details."""

    ROW = "Array.from(document.querySelectorAll('nav tr')).find(tr => tr.cells[0].innerText.trim() === {path})"

    def __init__(self, browser: Browser, report: Path, screens: Path) -> None:
        self.browser, self.screens = browser, screens
        browser.call("Page.navigate", {"url": report.resolve().as_uri()})
        browser.wait("document.readyState === 'complete' && !!document.querySelector('#app nav')",
                     "the report's app rendered", timeout=30)
        self.shot("landing")

    def shot(self, name: str) -> None:
        self.browser.screenshot(self.screens / f"{name}.png")

    def text(self, selector: str = "body") -> str:
        return " ".join(self.browser.evaluate(f"document.querySelector({json.dumps(selector)}).innerText").split())

    def link(self, text: str) -> str:
        return (f"Array.from(document.querySelectorAll('nav a')).find(a => a.innerText.trim() === {json.dumps(text)})")

    def open_category(self, category: str) -> list[str]:
        """Back to the menu, then the category: the files it lists (by their labels, read back as paths)."""
        if self.browser.evaluate(f"!!{self.link('Results')}"):       # the breadcrumb back to the menu
            self.browser.click(self.link("Results"), "the Results breadcrumb")
        self.browser.click(self.link(category), f"category {category} in the menu")
        self.browser.wait("Array.from(document.querySelectorAll('nav li')).some(li => li.innerText.trim() === "
                          f"{json.dumps(category)}) && document.querySelectorAll('nav tr').length > 1",
                          f"the files of {category}")
        return [unlabel(text) for text in self.browser.evaluate(
            "Array.from(document.querySelectorAll('nav tbody tr')).map(tr => tr.cells[0].innerText.trim())")]

    def button(self, path: str, icon: str) -> str:
        return f"({self.ROW.format(path=json.dumps(label(path)))}).querySelector('a[iconname=\"{icon}\"]')"

    def show(self, path: str) -> None:
        self.browser.click(self.button(path, "eye"), f"the view button of {path}")

    def details(self, path: str) -> str:
        """The file's details panel (its caption, size, rule), as text."""
        self.browser.click(self.button(path, "information-circle"), f"the details button of {path}")
        self.browser.wait(f"document.querySelector('nav').innerText.includes('DESCRIPTION') && "
                          f"document.querySelector('nav').innerText.includes({json.dumps(label(path))})",
                          f"the details of {path}")
        return self.text("nav")

    def shown_image(self, path: Path, timeout: float = 60) -> dict[str, Any]:
        """The image in the content area once decoded: its natural size and where it is drawn."""
        name = json.dumps(f"filename={path.name};")
        return self.browser.wait(f"""(() => {{
            const img = Array.from(document.querySelectorAll('img')).find(i => i.src.includes({name}));
            if (!img || !img.complete || img.naturalWidth === 0) return null;
            const r = img.getBoundingClientRect();
            return {{src: img.src.slice(0, 30), width: img.naturalWidth, height: img.naturalHeight,
                     shown: [r.width, r.height]}}; }})()""", f"{path.name} is shown and decoded", timeout)

    def view(self, path: str, shown: Callable[[float], dict[str, Any]], clicks: int = 3) -> dict[str, Any]:
        """``show`` the entry at ``path`` and wait for ``shown`` (given a timeout), clicking again if it has not come
        within 20 s. CI runs under load (2026-12-05, twice) waited 60 s for a plot, then for the tables, that the same
        checkout showed at once when run alone, as if the click had been lost; what never shows still fails, after
        ``clicks`` clicks."""
        for click in range(1, clicks + 1):
            self.show(path)
            try:
                return shown(20)
            except AssertionError:
                if click == clicks:
                    raise
        raise AssertionError("unreachable")

    def view_image(self, path: str, file: Path) -> dict[str, Any]:
        return self.view(path, lambda timeout: self.shown_image(file, timeout))

    def view_tables(self) -> dict[str, Any]:
        return self.view(TABLES, self.shown_tables)

    def shown_tables(self, timeout: float = 60) -> dict[str, Any]:
        """The HTML tables entry, shown in its iframe: headings, paragraphs, and each table under its heading."""
        self.browser.wait("(() => { const f = document.querySelector('iframe'); if (!f) return false; "
                          "const r = f.getBoundingClientRect(); return r.width > 300 && r.height > 300; })()",
                          "the tables' frame is shown", timeout)
        context = self.browser.frame_context("data:text/html")
        return self.browser.wait("""(() => {
            if (document.readyState !== 'complete' || !document.querySelector('table')) return null;
            const text = el => el.innerText.replace(/\\s+/g, ' ').trim();
            const sections = {};
            for (const h of document.querySelectorAll('h3, h2')) {
                const next = h.nextElementSibling;
                sections[text(h)] = next && next.tagName === 'TABLE'
                    ? Array.from(next.rows).map(r => Array.from(r.cells).map(text)) : next ? text(next) : "";
            }
            return {title: text(document.querySelector('h1')), headline: text(document.querySelector('p')),
                    sections: sections, tables: document.querySelectorAll('table').length,
                    external: Array.from(document.querySelectorAll('[src], link[href]')).length}; })()""",
                                 "the tables are rendered", context=context)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    assert CHROMIUM is not None
    b = Browser(CHROMIUM, tmp_path / "chromium")
    try:
        yield b
    finally:
        b.close()


def table(sections: dict[str, Any], prefix: str) -> list[list[str]]:
    titles = [t for t in sections if t.startswith(prefix)]
    assert len(titles) == 1, f"no single section '{prefix}...' in {list(sections)}"
    rows = sections[titles[0]]
    assert isinstance(rows, list), f"{titles[0]}: {rows}"
    return rows


def column(rows: list[list[str]], key: str, header: str) -> str:
    """The cell in the row starting with ``key`` under ``header``."""
    matches = [row for row in rows[1:] if row[0] == key]
    assert len(matches) == 1, f"no row {key} in {rows}"
    return matches[0][rows[0].index(header)]


def assert_clean(browser: Browser, report: Path) -> None:
    assert browser.problems() == []
    # Everything the page loaded came from the file itself or its data: URIs: nothing from the network.
    outside = [u for u in browser.requests() if not (u.startswith("data:") or u.split("#")[0] == report.as_uri())]
    assert outside == []


# --- the file -----------------------------------------------------------------------------------------------------
class ResourceLinks(HTMLParser):
    """Every URL the markup itself makes the browser load (scripts, styles, images, frames...)."""

    LOADED = {("script", "src"), ("link", "href"), ("img", "src"), ("img", "srcset"), ("iframe", "src"),
              ("embed", "src"), ("object", "data"), ("source", "src"), ("source", "srcset"), ("video", "src"),
              ("audio", "src"), ("input", "src"), ("frame", "src")}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.urls += [value for name, value in attrs if (tag, name) in self.LOADED and value]


def test_report_is_one_self_contained_html_file(tiny_run: Path) -> None:
    report = tiny_run / "report.html"
    data = report.read_bytes()
    assert data[:2] != b"PK" and data.lstrip().lower().startswith(b"<!doctype html>")
    text = data.decode()
    links = ResourceLinks()
    links.feed(text)
    assert links.scripts >= 5 and links.urls == [], links.urls   # every script inline, nothing fetched
    external = re.findall(r"""(?:url\(|@import)\s*['"]?\s*(?:https?:)?//[^)'"\s]+""", text)
    assert external == []                                         # and no CSS pulling anything in
    # Every registered result is embedded as a data: URI (the tables, each plot), with the caption.
    results = json.loads(re.search(r"var results = (\{.*?\});\s*</script>", text, re.S).group(1))
    summary = summary_of(tiny_run)
    assert sorted(results) == sorted([TABLES] + [f"results/plots/{p}" for p in summary["plots"]])
    for path, entry in results.items():
        mime = "text/html" if path.endswith(".html") else "image/png"
        assert entry["data_uri"].startswith(f"data:{mime};") and ";base64," in entry["data_uri"], path
        embedded = base64.b64decode(entry["data_uri"].split(";base64,", 1)[1])
        assert embedded == (tiny_run / path).read_bytes(), path
        caption = CAPTION if path == TABLES else PLOT_CAPTION
        assert caption in " ".join(re.sub(r"<[^>]+>", " ", entry["caption"]).split()), path


@needs_chromium
def test_report_renders_tables_plots_and_captions_in_chromium(tiny_run: Path, browser: Browser,
                                                                tmp_path: Path) -> None:
    summary = summary_of(tiny_run)
    cmp = json.loads((tiny_run / "results" / "tiny" / "comparison.json").read_text())
    assert summary["models"]["tiny"]["flipped_samples"] == 0        # the premise of the 'none' checks below
    report = tiny_run / "report.html"
    page = ReportPage(browser, report, tmp_path / "screens")

    landing = page.text()
    assert " ".join((REPO / "docs" / "report.rst").read_text().split()) in landing   # the workflow description
    assert {"Comparison", "Plots"} <= set(browser.evaluate(
        "Array.from(document.querySelectorAll('nav a')).map(a => a.innerText.trim())"))

    # Results > Comparison: the tables, rendered in the content frame.
    assert page.open_category("Comparison") == [TABLES]
    shown = page.view_tables()
    page.shot("comparison-tables")
    assert shown["title"] == "trtverify report" and shown["headline"].startswith("Overall: PASS.")
    assert shown["tables"] >= 5 and shown["external"] == 0
    accuracy = table(shown["sections"], "Accuracy per format")
    assert accuracy[0][:3] == ["backend", "precision", "accuracy"]
    assert [row[0] for row in accuracy[1:]] == ["savedmodel", "onnxruntime"]
    for backend, entry in cmp["backends"].items():
        assert column(accuracy, backend, "accuracy") == format(entry["accuracy"], ".3g")
        assert column(accuracy, backend, "correct") == f"{entry['correct']}/{cmp['num_samples']}"
    verdicts = table(shown["sections"], "Verdicts per pair")
    assert column(verdicts, PAIR, "verdict") == summary["models"]["tiny"]["pairs"][PAIR]["verdict"] == "consistent"
    assert column(verdicts, PAIR, "top-1 flips (ties)") == "0 (0)"
    per_class = table(shown["sections"], "Top-1 agreement per true class")
    assert len(per_class) == 1 + cmp["num_classes"] and {row[2] for row in per_class[1:]} == {"1"}
    assert shown["sections"]["Flipped samples (0 shown of 0: top-3 class:probability)"] == "(none)"
    assert not any(t.startswith("Pipeline costs") for t in shown["sections"])   # run times: Snakemake's Statistics
    assert CAPTION in page.details(TABLES)

    # Results > Plots: the error histogram and the per-class agreement, each decoded at its real size; no flipped.
    plots = page.open_category("Plots")
    assert sorted(plots) == sorted(ALWAYS) == sorted(f"results/plots/{p}" for p in summary["plots"])
    assert FLIPPED not in plots
    for path in ALWAYS:
        page.open_category("Plots")
        image = page.view_image(path, tiny_run / path)
        page.shot(Path(path).stem)
        assert (image["width"], image["height"]) == png_size(tiny_run / path), path
        assert image["src"].startswith("data:image/png") and min(image["shown"]) > 100, image
        assert PLOT_CAPTION in page.details(path)
    assert_clean(browser, report)


@needs_chromium
def test_flipped_samples_appear_as_an_image_with_each_backends_top3(flipped_run: Path, browser: Browser,
                                                                      tmp_path: Path) -> None:
    summary = summary_of(flipped_run)
    cmp = json.loads((flipped_run / "results" / "tiny" / "comparison.json").read_text())
    assert summary["models"]["tiny"]["flipped_samples"] == len(FLIP_ROWS)
    report = flipped_run / "report.html"
    page = ReportPage(browser, report, tmp_path / "screens")

    plots = page.open_category("Plots")
    assert sorted(plots) == sorted(ALWAYS + [FLIPPED])
    image = page.view_image(FLIPPED, flipped_run / FLIPPED)
    page.shot("flipped")
    assert (image["width"], image["height"]) == png_size(flipped_run / FLIPPED)
    assert image["src"].startswith("data:image/png") and min(image["shown"]) > 100, image
    assert PLOT_CAPTION in page.details(FLIPPED)

    assert page.open_category("Comparison") == [TABLES]
    shown = page.view_tables()
    page.shot("comparison-tables-flipped")
    assert shown["headline"].startswith("Overall: FAIL.")
    verdicts = table(shown["sections"], "Verdicts per pair")
    assert column(verdicts, PAIR, "verdict") == "mismatch"
    assert column(verdicts, PAIR, "top-1 flips (ties)") == f"{len(FLIP_ROWS)} (0)"
    flipped = table(shown["sections"], f"Flipped samples ({len(FLIP_ROWS)} shown of {len(FLIP_ROWS)}:")
    assert flipped[0] == ["sample", "label", "savedmodel", "onnxruntime"]
    assert [row[0] for row in flipped[1:]] == [str(i) for i in FLIP_ROWS]
    for row, sample in zip(flipped[1:], cmp["flipped_samples"]["samples"]):
        assert row[1] == str(sample["label"])
        tops = [[cell.split(":")[0] for cell in row[k].split()] for k in (2, 3)]
        assert len(tops[0]) == len(tops[1]) == 3 and tops[0][0] != tops[1][0], row   # top-3 each, top-1 differs
        assert tops[0][:2] == tops[1][1::-1], row                                     # the two swapped classes
    per_class = table(shown["sections"], "Top-1 agreement per true class")
    flipped_classes = {str(s["label"]) for s in cmp["flipped_samples"]["samples"]}
    assert {row[0] for row in per_class[1:] if row[2] != "1"} == flipped_classes
    assert_clean(browser, report)
