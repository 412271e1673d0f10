"""The Prefect UI, driven by a real browser (Debian's Chromium through Playwright): find `distill/on-demand`,
open a custom run, change `rollout.samples_per_prompt` in the typed form, submit, and watch the run reach
Completed. Screenshots of the form, the finished run and its MLflow run page go to `test-output/screenshots`."""

import os
import re
import time
from pathlib import Path

import pytest

from tests.stack.conftest import api, mlflow_run_of

CHROMIUM = "/usr/bin/chromium"
SHOTS = (
    Path(os.environ.get("REDISTILL_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "screenshots"
)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def _form_field(page, label: str):
    """The input of a schema-form property, found by its label text (the UI's labels point at no input id)."""
    title = page.locator(".schema-form-property__label", has_text=re.compile(rf"^{label} \(Optional\)$"))
    # every enclosing section holds the label too: the innermost property is the last in document order
    return page.locator(".schema-form-property", has=title).last.locator("input").first


def test_a_custom_run_from_the_ui_form_reaches_completed(stack, deployed, browser):
    page = browser
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{stack.prefect_ui}/deployments", wait_until="networkidle")
    page.get_by_role("link", name="on-demand").first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    samples = _form_field(page, "Samples Per Prompt")
    samples.wait_for()
    assert samples.input_value() == "2"  # the deployment's default, from `redistill deploy --config`
    samples.fill("1")  # not the default; the rerun test's value, so the run's stages come from its cache
    samples.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "prefect-custom-run-form.png")
    run_name = page.locator(".p-label", has_text="Run Name").first.locator("input").first
    run_name.fill("from-the-form")
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("link", name="from-the-form").first.click(timeout=60_000)  # in the deployment's Runs tab
    page.wait_for_url(re.compile(r"/runs/flow-run/[0-9a-f-]{36}"))
    flow_run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", page.url)[1]
    assert api(stack, "GET", f"/flow_runs/{flow_run_id}")["parameters"]["config"]["rollout"]["samples_per_prompt"] == 1

    deadline = time.monotonic() + 900
    while (state := api(stack, "GET", f"/flow_runs/{flow_run_id}")["state"])["type"] != "COMPLETED":
        assert state["type"] in ("SCHEDULED", "PENDING", "RUNNING"), state
        assert time.monotonic() < deadline, "the run did not complete in 15 minutes"
        time.sleep(1)
    page.reload()  # the run's own page, fresh: its name and its state
    page.get_by_text("from-the-form").first.wait_for()
    page.get_by_text("Completed", exact=True).first.wait_for()
    page.screenshot(path=SHOTS / "prefect-flow-run-completed.png")

    run = mlflow_run_of(stack, flow_run_id)
    assert run.data.params["rollout.samples_per_prompt"] == "1"
    page.goto(f"{stack.mlflow_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.get_by_text(run.info.run_name).first.wait_for(timeout=60_000)  # MLflow's UI keeps polling: never idle
    page.screenshot(path=SHOTS / "mlflow-run.png", full_page=True)
