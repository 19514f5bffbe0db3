"""The learner's path in JupyterLab, in a real browser (headless Chromium driven by Selenium).

`scripts/lab.sh --foreground` starts the lab as the course VM does, but on a free loopback port
with a token of the test's own, and with Jupyter's user settings, workspaces and runtime files in
a temporary directory. Then, as a learner would: the README opens rendered (a double-click in the
file browser), its chapter and exercise links open rendered pages (not the editor, not a
"directory" error), each chapter's in-page links scroll to their section, the one kernel offered
is the notebooks' own, no news prompt shows up, and the first cell of notebook 01 runs a real
container. Everything here is installed by `scripts/provision.sh --test` (Debian's chromium and
chromium-driver, selenium and JupyterLab in the virtualenv). Not run in the cgroup-v2 guest
(marker `browser`): nothing in it depends on the cgroup version.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]
CHAPTERS = sorted(p.name for p in (REPO / "chapters").glob("*.md"))
EXERCISES = sorted(p.parent.name for p in (REPO / "exercises").glob("*/README.md"))
NOTEBOOK_KERNEL = json.loads((REPO / "notebooks" / "01-processes.ipynb").read_text())["metadata"]["kernelspec"]["name"]


def _require() -> tuple[str, str]:
    """Chromium and its driver, Selenium and JupyterLab; fail in CI, where they must be there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", chromium), ("chromedriver", driver),
                                         ("jupyter-lab", (Path(sys.prefix) / "bin" / "jupyter-lab").exists()))
               if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        message = (f"{', '.join(missing)} not installed (`make test` installs them on Debian: "
                   "scripts/provision.sh --test; Ubuntu's chromium is a snap)")
        if os.environ.get("CI"):
            pytest.fail(f"{message}; in CI this is a setup bug")
        pytest.skip(message)
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path: Path):
    """The lab of scripts/lab.sh on a loopback port: (base URL, token, the script's output file)."""
    _require()
    token = os.urandom(16).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    port = _free_port()
    jupyter = tmp_path / "jupyter"
    settings = jupyter / "user-settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    # The test must not change the checkout: no autosave of the notebook it runs, and the
    # checkpoint JupyterLab makes on opening it goes to the temporary directory.
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    (jupyter / "config").mkdir()
    (jupyter / "config" / "jupyter_server_config.json").write_text(json.dumps(
        {"FileCheckpoints": {"checkpoint_dir": str(jupyter / "checkpoints")}}))
    env = dict(os.environ, MINI_VENV=sys.prefix, MINI_LAB_PORT=str(port), MINI_LAB_IP="127.0.0.1",
               MINI_LAB_TOKEN_FILE=str(token_file), HOME=str(tmp_path),
               JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_DATA_DIR=str(jupyter / "data"),
               JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(jupyter / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"))
    output = tmp_path / "lab.out"
    with open(output, "w") as out:
        server = subprocess.Popen(["bash", str(REPO / "scripts" / "lab.sh"), "--foreground"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 45
        while "ctrl-c stops the server" not in output.read_text():
            assert server.poll() is None, f"lab.sh ended: {output.read_text()}"
            assert time.monotonic() < deadline, f"no announcement from lab.sh: {output.read_text()}"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", token, output
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture
def browser(tmp_path: Path):
    chromium, driver = _require()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    # --no-sandbox: Chromium's sandbox refuses to run as root, and the test runs as root.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}",
                "--no-first-run", "--disable-background-networking", "--disable-sync"):
        options.add_argument(arg)
    service = Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


# --- page helpers (JavaScript run in the page) --------------------------------------------------

_VISIBLE_VIEWER = """
const v = [...document.querySelectorAll('.jp-MarkdownViewer')].filter(e => e.checkVisibility());
return v.length === 1 ? v[0] : null;"""

_ANCHOR_OFFSET = """
const viewer = arguments[0], id = arguments[1];
const target = viewer.querySelector(`[data-jupyter-id="${CSS.escape(id)}"], [id="${CSS.escape(id)}"]`);
if (!target) return null;
return target.getBoundingClientRect().top - viewer.getBoundingClientRect().top;"""


def _wait(drv, what: str, script: str, *args, timeout: float = 20):
    """Poll a script until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = drv.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            shot = Path(tempfile.mkdtemp(prefix="mini-test-lab-")) / "timeout.png"
            drv.save_screenshot(str(shot))
            pytest.fail(f"timed out waiting for {what} (the page then: {shot})")
        time.sleep(0.2)


def _visible_viewer(drv, title: str):
    """The rendered Markdown of the current tab, once it is `title` and rendered; fails if that
    tab is a text editor (the file opened as source, not rendered)."""
    viewer = _wait(drv, f"{title} rendered", """
        const tab = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel');
        if (!tab || tab.textContent !== arguments[0]) return null;
        if ([...document.querySelectorAll('.jp-FileEditor')].some(e => e.checkVisibility())) return 'editor';
        const v = [...document.querySelectorAll('.jp-MarkdownViewer')].filter(e => e.checkVisibility());
        return v.length === 1 && v[0].querySelector('.jp-RenderedMarkdown h1') ? v[0] : null;""", title)
    assert viewer != "editor", f"{title} opened in the text editor, not rendered"
    return viewer


def _close_current_tab(drv) -> None:
    drv.find_element("css selector", "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").click()


def _activate_tab(drv, title: str) -> None:
    tab = _wait(drv, f"the tab {title}",
                "return [...document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab')]"
                ".find(t => t.querySelector('.lm-TabBar-tabLabel').textContent === arguments[0]) || null;", title)
    tab.click()


def _open_in_file_browser(drv, *names: str) -> None:
    """Double-click through the file browser, as a learner opens a file."""
    from selenium.webdriver.common.action_chains import ActionChains

    for name in names:
        item = _wait(drv, f"{name} in the file browser",
                     "return [...document.querySelectorAll('.jp-DirListing-item')]"
                     ".find(i => i.checkVisibility() && i.getBoundingClientRect().height > 0 &&"
                     " i.querySelector('.jp-DirListing-itemText').textContent.trim() === arguments[0]) || null;",
                     name)
        ActionChains(drv).double_click(item).perform()


def _click_link(drv, viewer, target: str) -> None:
    """Click the link to `target` (a path from the top of the checkout, or `#fragment`):
    JupyterLab renders a relative link to a file as its /files/PATH URL and opens it in the lab."""
    link = drv.execute_script("""
        const [viewer, target] = arguments;
        return [...viewer.querySelectorAll('.jp-RenderedMarkdown a:not(.jp-InternalAnchorLink)')].find(a => target.startsWith('#')
            ? a.getAttribute('href') === target
            : new URL(a.href).pathname.endsWith('/files/' + target)) || null;""", viewer, target)
    assert link is not None, f"no link to {target} in the rendered page"
    # A click event, as a mouse gives: a link in a wide table can lie outside the window.
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", link)


def _check_anchors(drv, viewer, chapter: str) -> int:
    """Click every in-page link of the chapter: its target must come to the top of the view."""
    fragments = sorted(set(drv.execute_script(
        "return [...arguments[0].querySelectorAll('.jp-RenderedMarkdown a[href^=\"#\"]:not(.jp-InternalAnchorLink)')]"
        ".map(a => a.getAttribute('href').slice(1));", viewer)))
    for fragment in fragments:
        scroller = viewer.find_element("css selector", ".jp-RenderedMarkdown")
        drv.execute_script("arguments[0].scrollTop = 0;", scroller)
        before = drv.execute_script(_ANCHOR_OFFSET, viewer, fragment)
        assert before is not None, f"{chapter}: #{fragment} names no element of the rendered page"
        _click_link(drv, viewer, f"#{fragment}")
        _wait(drv, f"{chapter}: #{fragment} to scroll into view",
                      "const o = (function(){" + _ANCHOR_OFFSET + "}).apply(null, arguments);"
                      "return o !== null && o > -5 && o < 120 ? String(o) : null;", viewer, fragment, timeout=5)
    return len(fragments)


def test_a_learner_reads_the_course_and_runs_a_notebook_in_jupyterlab(lab, browser):
    base, token, output = lab
    drv = browser

    # lab.sh: the URL is the last thing it printed, framed, once the server listens.
    lines = [line for line in output.read_text().splitlines() if line.strip()]
    url_lines = [i for i, line in enumerate(lines) if f"{base}/lab?token={token}" in line]
    assert url_lines and url_lines[-1] >= len(lines) - 4, lines

    # One kernel, the one the notebooks name.
    with urllib.request.urlopen(f"{base}/api/kernelspecs?token={token}", timeout=10) as r:
        specs = json.load(r)["kernelspecs"]
    assert list(specs) == [NOTEBOOK_KERNEL], f"kernels offered: {[s['spec']['display_name'] for s in specs.values()]}"

    drv.get(f"{base}/lab?token={token}&reset")
    _open_in_file_browser(drv, "README.md")
    readme = _visible_viewer(drv, "README.md")

    # Each chapter, from the README's table: rendered, and every in-page link works.
    anchors = 0
    for chapter in CHAPTERS:
        _click_link(drv, readme, f"chapters/{chapter}")
        anchors += _check_anchors(drv, _visible_viewer(drv, chapter), chapter)
        _close_current_tab(drv)
        _activate_tab(drv, "README.md")
        readme = _visible_viewer(drv, "README.md")
    assert anchors >= 10

    # Each exercise link opens the exercise's README, rendered.
    for exercise in EXERCISES:
        _click_link(drv, readme, f"exercises/{exercise}/README.md")
        page = _wait(drv, f"exercise {exercise}'s README",
                     "const v = (function(){" + _VISIBLE_VIEWER + "})();"
                     "return v && v !== arguments[0] && v.querySelector('h1') ? v : null;", readme)
        assert page.find_element("tag name", "h1").text.startswith(f"Exercise {exercise[:2]}")
        _close_current_tab(drv)
        _activate_tab(drv, "README.md")
        readme = _visible_viewer(drv, "README.md")
    assert "is a directory" not in drv.find_element("tag name", "body").text

    # Notebook 01: its first cell runs a real container on the notebooks' kernel.
    _click_link(drv, readme, "notebooks/01-processes.ipynb")
    _wait(drv, "the notebook's cells", "return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]"
          ".some(c => c.checkVisibility()) || null;", timeout=30)
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as r:
            kernels = [s["kernel"] for s in json.load(r) if s["path"].endswith("01-processes.ipynb")]
        if kernels and kernels[0]["execution_state"] == "idle":
            break
        assert time.monotonic() < deadline, f"the notebook's kernel is not ready: {kernels}"
        time.sleep(0.2)
    assert kernels[0]["name"] == NOTEBOOK_KERNEL
    # Into the first code cell's editor, then shift-enter, as a learner runs a cell.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    editor = drv.execute_script("""
        return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].find(c => c.checkVisibility())
            .querySelector('.cm-content');""")
    editor.click()
    _wait(drv, "the cell's editor to have the focus",
          "return document.activeElement && document.activeElement.closest('.jp-CodeCell') ? true : null;", timeout=5)
    ActionChains(drv).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    out = _wait(drv, "the first cell's output",
                "const o = document.querySelector('.jp-Notebook .jp-CodeCell .jp-OutputArea-output');"
                "return o && o.textContent.includes('exit code') ? o.textContent : null;", timeout=30)
    assert "stdout 'hi\\n', exit code 0" in out, out

    # No "get Jupyter news?" prompt appeared meanwhile.
    assert "news" not in drv.execute_script(
        "return [...document.querySelectorAll('.Toastify__toast, .jp-Notification-Toast')].map(t => t.textContent).join(' ');").lower()
