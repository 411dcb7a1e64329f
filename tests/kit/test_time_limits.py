"""Time limits as a course configures them: a student's step is stopped at probe_timeout, and the reference
solution, the course's own code run once per run, gets REFERENCE_ALLOWANCE times longer, also when the limits
come from the course's configuration (nbclient loads the configured values again as a notebook starts)."""
import nbformat
from traitlets.config import Config

from coursekit.execute import REFERENCE_ALLOWANCE, execute_and_probe

SLOW_PROBE = '''
import time


def probe_slow_step(run_cell):
    namespace = run_cell()
    return {"answer": lambda: namespace["answer"](3.5)}
'''
SLOW_ANSWER = "import time\n\ndef answer(seconds):\n    time.sleep(seconds)\n    return 42\n"


def run_slow_step(tmp_path, reference: bool) -> dict:
    (tmp_path / "checks" / "slow").mkdir(parents=True, exist_ok=True)
    (tmp_path / "checks" / "slow" / "probes.py").write_text(SLOW_PROBE)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SLOW_ANSWER, metadata={
        "nbgrader": {"grade_id": "slow_step", "solution": True, "grade": False, "locked": False}})])
    config = Config()
    config.ExecuteAndProbe.probe_timeout = 2  # the answer takes 3.5 s: past a student's 2 s, within the reference's 6 s
    config.ExecuteAndProbe.timeout = 2
    config.Sandbox.mode = "none"  # what is tested is the limits, not the sandbox: the quickest kernel
    _, probes = execute_and_probe(notebook, "slow", tmp_path / "checks", tmp_path, reference=reference,
                                  config=config, fork_kernels=True)
    return probes["slow_step"]


def test_a_student_step_stops_at_the_configured_limit(tmp_path):
    result = run_slow_step(tmp_path, reference=False)
    assert "answer" not in result["values"], result
    assert "did not return within 2 s, so the grader stopped it" in result["probe_error"], result


def test_the_reference_gets_longer_than_the_configured_limit(tmp_path):
    assert REFERENCE_ALLOWANCE * 2 > 3.5 + 1  # a second to spare for a busy machine
    result = run_slow_step(tmp_path, reference=True)
    assert result["values"] == {"answer": {"ok": 42}}, result
