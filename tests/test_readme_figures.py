"""The README's measured blocks equal the committed outputs they cite, and
``make readme-figures`` (:mod:`simulations.readme_figures`) rewrites them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from simulations import readme_figures as rf
from simulations import report
from simulations.results_table import format_table
from simulations.schema import RunResult

BLOCKS = {b.name: b for b in rf.BLOCKS}
COMMITTED_MAIN = rf.MAIN_RESULTS


def test_readme_measured_blocks_are_current() -> None:
    text = rf.README.read_text()
    new, _ = rf.rewrite(text)
    assert new == text, "README.md is stale: run `make readme-figures`"


def test_readme_make_run_table_is_the_committed_runs() -> None:
    body = rf.block_body(rf.README.read_text(), BLOCKS["make-run"])
    run = RunResult.load(rf.MAIN_RESULTS)
    assert f"```\n{format_table(run)}\n```" in body
    assert f"at commit {run.commit} " in body


def test_readme_detector_table_is_the_generated_one() -> None:
    readme = rf.README.read_text()
    table = "\n".join(report.detector_summary())
    assert table in readme
    assert rf.block_body(readme, BLOCKS["detectors"]) == table


def _with_body(text: str, name: str, body: str) -> str:
    begin, end = rf.find_block(text, BLOCKS[name])
    return text[:begin] + "\n" + body + "\n" + text[end:]


def test_rewrite_regenerates_a_stale_block() -> None:
    text = rf.README.read_text()
    stale = _with_body(text, "make-run", "before unlearning 20 59.2 44.4")
    assert stale != text
    assert rf.rewrite(stale)[0] == text


def test_a_block_without_a_committed_output_is_left_and_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    block = rf.Block("bench", tmp_path / "bench.txt", rf.render_output("make bench"))
    monkeypatch.setattr(rf, "BLOCKS", [block])
    text = f"a\n{block.start}\nby hand\n{block.end}\nb\n"
    new, notices = rf.rewrite(text)
    assert new == text
    assert len(notices) == 1 and "no committed output" in notices[0]
    (tmp_path / "bench.txt").write_text("ratio step / floor: 1.5\n")
    new, notices = rf.rewrite(text)
    assert notices == []
    assert new == (
        f"a\n{block.start}\n`make bench`, as saved in `{tmp_path / 'bench.txt'}`:"
        f"\n\n```\nratio step / floor: 1.5\n```\n{block.end}\nb\n"
    )


def test_a_missing_or_repeated_marker_is_an_error() -> None:
    with pytest.raises(ValueError, match="measured: make-run"):
        rf.rewrite("a README without markers\n")
    block = BLOCKS["make-run"]
    with pytest.raises(ValueError, match="comes before"):
        rf.find_block(f"{block.end}\n{block.start}\n", block)


def _fresh_run(folder: Path, name: str = "main") -> Path:
    folder.mkdir()
    data = RunResult.load(COMMITTED_MAIN).to_dict()
    data["name"] = name
    RunResult.from_dict(data).save(folder / "results.json")
    with (folder / "rounds.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phase", "method", "round", "test_acc", "mal_acc",
                         "attack_success", "forget_acc", "seconds"])  # fmt: skip
        for r, (test, mal) in enumerate(((0.50, 0.05), (0.53, 0.04), (0.52, 0.03)), 1):
            writer.writerow(["retrain", "retrain", r, test, mal, mal, test, 1.0])
    (folder / "curves.png").write_bytes(b"png")
    (folder / "config.yaml").write_text(
        "rounds:\n  min_recovery: 5\n  max_recovery: 5\n"
    )
    return folder


@pytest.fixture
def figures_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """docs/figures/main_* redirected to a temporary folder."""
    out = tmp_path / "figures"
    out.mkdir()
    for attr in ("MAIN_RESULTS", "MAIN_ROUNDS", "MAIN_CURVES", "MAIN_CONFIG"):
        monkeypatch.setattr(rf, attr, out / getattr(rf, attr).name)
    return out


def test_import_run_takes_a_fresh_make_run(figures_dir: Path, tmp_path: Path) -> None:
    rf.import_run(_fresh_run(tmp_path / "run"))
    assert sorted(p.name for p in figures_dir.iterdir()) == [
        "main_config.yaml", "main_curves.png", "main_results.json", "main_rounds.csv",
    ]  # fmt: skip
    text = rf.render_make_run(rf.MAIN_RESULTS)
    # With rounds.csv, B is its 3-round window (best round 2: 52%, 4%); with
    # config.yaml, a 5-round fixed window: FedUP's "stays" is conclusive.
    assert "- B: 51.7% test, 4.0% malicious (3-round mean, R* not reached; " in text
    assert "best round 2)." in text
    # FedUP's first hit is the committed run's R_rec; its rounds.csv here has
    # no recovery rows, so "stays" is outside the 5-round window.
    first = RunResult.load(COMMITTED_MAIN).methods["fedup"].recovery_rounds
    assert f"R_rec (first / stays) {first} / >5." in text


def test_import_run_refuses_another_folder(figures_dir: Path, tmp_path: Path) -> None:
    folder = _fresh_run(tmp_path / "other", name="t4-iid-10-4")
    with pytest.raises(ValueError, match="not `make run`'s"):
        rf.import_run(folder)
    (folder / "rounds.csv").unlink()
    with pytest.raises(ValueError, match="missing"):
        rf.import_run(folder)
    assert list(figures_dir.iterdir()) == []


def test_check_mode_and_rewrite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    shutil.copyfile(rf.README, readme)
    monkeypatch.setattr(rf, "README", readme)
    assert rf.main(["--check"]) == 0
    readme.write_text(_with_body(readme.read_text(), "detectors", "| old |"))
    assert rf.main(["--check"]) == 1
    assert rf.main([]) == 0  # rewrites the stale block
    assert readme.read_text() == (rf.ROOT / "README.md").read_text()
    assert rf.main(["--check"]) == 0
