"""The deployment demo (scripts/deploy_demo.py): FedUP on a real SuperLink.

The slow tests start a SuperLink and four SuperNodes on 127.0.0.1 through the
demo script, in a subprocess; the others test the log checks on made-up logs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "deploy_demo.py"
# The demo stops itself (and every process it started) after --timeout; the
# test gives it a little longer and then interrupts it with SIGTERM.
TIMEOUT = 420
# The TLS + SuperNode authentication demo takes about 4 minutes on two busy
# cores, too long for the default test run; set this to 1 to run it.
TLS_OPT_IN = "FEDUP_DEPLOY_TLS"


def _load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_demo", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_demo"] = module
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


def run_demo(*args: str, timeout: int = TIMEOUT) -> str:
    """Run the demo script; return its output, failing on a non-zero exit."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--timeout", str(timeout), *args],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the script stops what it started
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"deploy_demo.py {' '.join(args)} hung:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
def test_deploy_demo_plain() -> None:
    out = run_demo()
    assert "flagged, excluded and unlearned" in out
    assert "excluded in each" in out
    assert "PASSED" in out


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get(TLS_OPT_IN) == "0",
    reason=f"{TLS_OPT_IN}=0 skips the TLS + SuperNode authentication demo",
)
def test_deploy_demo_tls_and_supernode_auth() -> None:
    out = run_demo("--tls-auth")
    assert "TLS, SuperNode authentication on" in out
    assert "unregistered SuperNode refused" in out
    assert "flagged, excluded and unlearned" in out
    assert "came back as the same node" in out
    assert "PASSED" in out


@pytest.mark.slow
def test_restarted_supernode_without_auth_gets_a_new_node_id() -> None:
    out = run_demo("--identity-probe", timeout=120)
    assert "after: NEW" in out


# ------------------------------------------------------ log checks, no I/O
A, B, C, D = 11, 22, 33, 44


def train(server_round: int, nodes: list[int], excluded: list[int]) -> str:
    return (
        f"INFO :      FedUP: round {server_round}: training on nodes {nodes}; "
        f"excluded {excluded}"
    )


def server_log(later: list[list[int]]) -> list[str]:
    everyone = [A, B, C, D]
    lines = [train(r, everyone, []) for r in (1, 2, 3)]
    lines += [
        train(3, everyone, []),
        f"INFO :      FedUP: round 3: nodes [{A}] flagged and excluded",
        f"INFO :      FedUP: round 3: unlearned nodes [{A}], P=0.1299, 3752 weights",
    ]
    lines += [train(4 + i, nodes, [A]) for i, nodes in enumerate(later)]
    return lines


def test_check_unlearning_passes_when_the_node_stays_out() -> None:
    lines = server_log([[B, C, D], [B, C, D]])
    index, found = demo.check_unlearning(lines, A)
    assert "flagged" in lines[index]
    assert "rounds [4, 5]" in found[1]


@pytest.mark.parametrize(
    ("later", "former", "message"),
    [
        ([[A, B, C, D]], [], "trained again"),
        ([[B, C, D, 55]], [55], "trained again as node(s) [55]"),
        ([], [], "no round after"),
    ],
)
def test_check_unlearning_fails(
    later: list[list[int]], former: list[int], message: str
) -> None:
    with pytest.raises(demo.DemoError, match=re.escape(message)):
        demo.check_unlearning(server_log(later), A, former)


def test_check_unlearning_needs_the_flag_in_round_3() -> None:
    lines = [line for line in server_log([[B, C, D]]) if "flagged" not in line]
    with pytest.raises(demo.DemoError, match="flagged in round 3"):
        demo.check_unlearning(lines, A)


def superlink_log(events: list[tuple[str, int]]) -> str:
    text = {
        "push": "INFO :      [Fleet.PushMessages] Push replies from node_id={}",
        "activate": "INFO :      [Fleet.ActivateNode] Activated node_id={}",
    }
    return "\n".join(text[kind].format(node) for kind, node in events)


def test_rounds_configured_after_a_reactivation() -> None:
    rounds = demo.parse_train_lines(server_log([[B, C, D], [B, C, D]]))[-3:]
    pushes = [("push", n) for n in (A, B, C, D)]
    # A comes back while round 4 is in flight: round 5 is configured after.
    round_4 = [("push", B), ("activate", A), ("push", C), ("push", D)]
    round_5 = [("push", D), ("push", B), ("push", C)]
    log = superlink_log([("activate", A), *pushes, *round_4, *round_5])
    after = demo.rounds_configured_after(log, rounds, A)
    assert [t.server_round for t in after] == [5]
    # A comes back after round 5 was configured: no round is.
    late = superlink_log([*pushes, ("push", B), ("push", C), ("push", D)])
    late += "\n" + superlink_log([("activate", A), ("push", B), ("push", C)])
    late += "\n" + superlink_log([("push", D)])
    assert demo.rounds_configured_after(late, rounds, A) == []


def test_rounds_configured_after_rejects_unmatched_replies() -> None:
    rounds = demo.parse_train_lines(server_log([[B, C, D]]))[-2:]
    log = superlink_log([("activate", A), ("push", A), ("push", B), ("push", C)])
    with pytest.raises(demo.DemoError, match="do not match"):
        demo.rounds_configured_after(log, rounds, A)


def test_strip_federations_keeps_the_rest() -> None:
    text = (
        '[tool.flwr.app]\npublisher = "x"\n\n[tool.flwr.federations]\n'
        'default = "sim"\n\n[tool.flwr.federations.sim]\noptions.num-supernodes = 2\n'
        "\n[tool.pytest.ini_options]\naddopts = '-q'\n"
    )
    out = demo.strip_federations(text)
    assert "federations" not in out
    assert 'publisher = "x"' in out and "[tool.pytest.ini_options]" in out


def test_pyproject_copy_has_the_app_components(tmp_path: Path) -> None:
    app = demo.prepare_app(tmp_path / "app")
    text = (app / "pyproject.toml").read_text()
    assert "[tool.flwr.app.components]" in text
    assert "tool.flwr.federations" not in text
    assert (app / "conf" / "experiment" / "deploy.yaml").is_file()
    assert (app / "simulations" / "server_app.py").is_file()
