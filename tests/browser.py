"""Helpers for the browser tests and the round-trip bench: local Jupyter servers (JupyterLab, Voila) on 127.0.0.1 with a
free port, a token and a temporary root, always shut down; Debian's chromium driven through Playwright."""
import json, os, secrets, signal, socket, subprocess, sys, time, urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT/'test-artifacts'
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run', '--disable-sync']


def chromium_missing_reason():
    "None when Debian chromium and Playwright are usable, else why not."
    if not CHROMIUM.exists(): return f'{CHROMIUM} is missing (`make chromium` installs Debian chromium)'
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return 'playwright (PyPI) is not installed'
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f'server exited with {proc.returncode}:\n{log.read_text()[-3000:]}')
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}')


@contextmanager
def server(cmd: list, ready_url: str, workdir: Path, env: dict | None = None, timeout: float = 120):
    "Run a server command in its own process group; wait until `ready_url` answers; always stop the whole group."
    log = workdir/'server.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        _wait_http(ready_url, proc, timeout, log)
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if proc.poll() is not None: break
            try: os.killpg(proc.pid, sig)
            except ProcessLookupError: break
            try: proc.wait(wait)
            except subprocess.TimeoutExpired: pass


def jupyter_env(tmp: Path) -> dict:
    "Private Jupyter config, data and runtime folders, so no user setting leaks into a test."
    dirs = {k: tmp/k.lower() for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR', 'JUPYTERLAB_WORKSPACES_DIR',
                                         'JUPYTERLAB_SETTINGS_DIR', 'IPYTHONDIR')}
    for d in dirs.values(): d.mkdir(parents=True, exist_ok=True)
    # no announcements pop-up, no update checks (and no network)
    (dirs['JUPYTERLAB_SETTINGS_DIR']/'@jupyterlab'/'apputils-extension').mkdir(parents=True, exist_ok=True)
    (dirs['JUPYTERLAB_SETTINGS_DIR']/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings').write_text(
        json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    # every cell in the page (no virtual scrolling), so widgets below the fold render too
    nbset = dirs['JUPYTERLAB_SETTINGS_DIR']/'@jupyterlab'/'notebook-extension'
    nbset.mkdir(parents=True, exist_ok=True)
    (nbset/'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))
    return {k: str(v) for k, v in dirs.items()} | {'PYTHONUNBUFFERED': '1'}


@contextmanager
def jupyter_lab(root: Path, tmp: Path):
    "JupyterLab on 127.0.0.1 serving `root`; yields (base url, token)."
    port, token = free_port(), secrets.token_hex(16)
    cmd = [BIN/'jupyter', 'lab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}', '--ServerApp.port_retries=0',
           '--LabApp.news_url=', '--ServerApp.terminals_enabled=False', *(['--allow-root'] if os.geteuid() == 0 else [])]
    base = f'http://127.0.0.1:{port}'
    with server(cmd, f'{base}/api/status?token={token}', tmp, jupyter_env(tmp)):
        yield base, token


@contextmanager
def teach_app(tmp: Path, n: int = 4, size: int = 64):
    "`dermxai teach` (Voila) on 127.0.0.1; yields the app's URL with its token."
    port, token = free_port(), secrets.token_hex(16)
    cmd = [BIN/'dermxai', 'teach', '--port', str(port), '--token', token, '--n', str(n), '--size', str(size), '--no-browser']
    url = f'http://127.0.0.1:{port}/?token={token}'
    # Voila renders the notebook when the page is asked for: readiness is its static files answering
    with server(cmd, f'http://127.0.0.1:{port}/voila/static/voila.js', tmp, jupyter_env(tmp)):
        yield url


@contextmanager
def browser():
    "A Playwright chromium (Debian's build) page factory."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try: yield b
        finally: b.close()


def plot_title(box) -> str:
    "The text of the plotly title inside a widget box (read from the rendered SVG)."
    return box.locator('.js-plotly-plot .gtitle').first.text_content(timeout=30_000)


def plot_svg(box) -> str:
    "The rendered plotly SVG markup inside a widget box."
    return box.locator('.js-plotly-plot .main-svg').first.inner_html(timeout=30_000)


def wait_changed(box, before: str, timeout: float = 30.0, read=plot_title) -> str:
    "Poll until `read(box)` differs from `before`; returns the new value."
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = read(box)
        if now != before: return now
        time.sleep(0.1)
    raise AssertionError(f'the figure did not change within {timeout} s (still {before[:120]!r})')


def open_voila(page, url: str, timeout: float = 300):
    "Open a Voila app and wait until its page is connected to the kernel: Voila streams outputs while it still executes,\n    and inputs sent before the kernel's websocket opens are lost."
    sockets = []
    page.on('websocket', lambda ws: sockets.append(ws) if '/api/kernels/' in ws.url else None)
    page.goto(url, timeout=timeout * 1000)
    t0 = time.monotonic()
    while not sockets:
        if time.monotonic() - t0 > timeout: raise TimeoutError(f'the Voila page did not connect to its kernel within {timeout} s')
        page.wait_for_timeout(250)
    page.wait_for_timeout(1000)
