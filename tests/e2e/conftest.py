"""Browser tests: Debian's Chromium, headless, driven by Playwright through the Prefect UI.

The platform's fixtures (`platform`, `kube`, `namespace`) come from the integration tests. Here:
the `release` deployment of prefect.yaml on the platform's server, a process worker of its pool
for the test's duration, and a Chromium page logged in to the UI. Playwright's own browser
download is never used: it drives Debian's `chromium` (`KYB_CHROMIUM` to use another).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from sandbox.platform import Platform
from tests.integration import conftest as integration

# The platform's fixtures, shared with the integration tests.
platform = integration.platform
kube = integration.kube
namespace = integration.namespace

ROOT = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
# A process pool of the browser test's own: prefect.yaml's `release` deployment goes there, so
# its worker runs only the test's run, not whatever else waits on kyb-local (notify runs of other
# sessions' failed releases, say)
POOL = "kyb-e2e"
CHROMIUM = Path(os.environ.get("KYB_CHROMIUM", "/usr/bin/chromium"))
# A closed network: without the background-networking flags Chromium keeps dialling Google's
# services (refused here); a fresh profile per test keeps one run's login out of the next.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
WORKER_STOP_SECONDS = 20


def _missing(what: str) -> None:
    """In CI a missing browser fails the run (it must not skip); elsewhere the test skips."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI installs it (.ci/run: apt-get install chromium chromium-driver)")
    pytest.skip(f"{what}; install it: apt-get install chromium")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (package `chromium`), the browser Playwright drives."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"Chromium is missing at {CHROMIUM} (Debian package `chromium`)")
    return CHROMIUM


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the test saves its screenshots: $KYB_SCREENSHOTS, else the test's tmp folder."""
    folder = Path(os.environ.get("KYB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _client_env(platform: Platform, home: Path) -> dict[str, str]:
    """A Prefect client's environment: the platform's (the API URL and the 0600 profiles file).

    The auth string itself is never in it; `PWD` resolves prefect.yaml's working directory.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PWD": str(ROOT),
        "PYTHONPATH": str(ROOT),
        **platform.env(),
    }


@pytest.fixture(scope="session")
def release_deployment(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """prefect.yaml's `release` deployment, created on the platform's server in POOL; its id."""
    home = tmp_path_factory.mktemp("deploy-home")
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--name", "release", "--pool", POOL],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=_client_env(platform, home),
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with platform.prefect.http() as api:
        found = api.get("/deployments/name/release/release")
    assert found.status_code == 200, found.text[-500:]
    assert found.json()["work_pool_name"] == POOL
    return found.json()["id"]


@pytest.fixture
def worker(platform: Platform, release_deployment: str, tmp_path: Path) -> Iterator[Path]:
    """A process worker of POOL while the test runs (its log file's path).

    It polls every 2 s, and the runs it starts poll their pauses every second. Stopped (SIGTERM
    to its process group, then SIGKILL) when the test ends.
    """
    log = tmp_path / "worker.log"
    env = {
        **_client_env(platform, tmp_path),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "KYB_PAUSE_POLL_SECONDS": "1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", POOL, "--limit", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the flow runs it starts stop too
        )
    try:
        yield log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def browser(chromium: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile (removed after), a 1280x800 viewport."""
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="kyb-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            timezone_id="UTC",
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def ui_url(platform: Platform) -> str:
    """The Prefect UI's base URL (the API's without /api)."""
    return platform.prefect.api_url.removesuffix("/api")


def login(page: Page, url: str, auth: SecretStr) -> None:
    """Log in on the UI's login page with the whole auth string (`user:password`).

    The string is only unwrapped into the field: a failure here names the step, never the value
    (the error is raised from None, so no frame holding the value is shown).
    """
    page.goto(f"{url}/deployments")
    field = page.locator("input[type=password]")
    field.wait_for()
    try:
        field.fill(auth.get_secret_value())
    except Exception:
        raise AssertionError("could not fill the login page's auth field") from None
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(lambda at: "/login" not in at)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Keep each phase's report on the test item, so `ui` knows at teardown if the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def ui(
    browser: BrowserContext, platform: Platform, screenshots: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A Chromium page logged in to the platform's Prefect UI.

    If the test fails, the page's last view is saved as `failed.png` among the screenshots.
    """
    page = browser.new_page()
    login(page, ui_url(platform), platform.prefect.auth_string())
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=screenshots / "failed.png")
