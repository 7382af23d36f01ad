"""The config's known keys (those ``conf/`` defines), and the check against them.

One job: collect every key the files of ``conf/`` define (the primary file's,
and per group the union of its options' keys) and refuse the first key of a
composed config outside them, with the closest known key as a hint, so that a
typo or a key added with ``+`` is an error instead of being ignored. A
detector's constructor arguments (``detector.params``) are free. Used by
:func:`simulations.config.validate`.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["FREE_KEYS", "check_keys"]

# Keys whose contents are free (a detector's constructor arguments).
FREE_KEYS = frozenset({"detector.params"})


@functools.cache
def _schema(primary: str, conf_dir: Path) -> dict[str, Any]:
    """Every key ``conf/`` defines: the primary file's, and per group the
    union of its options' keys."""
    base = OmegaConf.to_container(OmegaConf.load(conf_dir / f"{primary}.yaml"))
    assert isinstance(base, dict)
    schema: dict[str, Any] = {
        str(k): v for k, v in base.items() if k not in ("defaults", "hydra")
    }
    for group in sorted(p for p in conf_dir.iterdir() if p.is_dir()):
        if group.name == "experiment":
            continue  # sets keys of the others (``@package _global_``)
        keys: dict[str, Any] = {"name": None, "from_round": None, "params": None}
        keys = keys if group.name == "detector" else {}
        for option in group.glob("*.yaml"):
            node = OmegaConf.to_container(OmegaConf.load(option))
            assert isinstance(node, dict)
            keys.update({str(k): v for k, v in node.items() if k != "defaults"})
        schema[group.name] = keys
    return schema


def check_keys(cfg: DictConfig, primary: str, *, conf_dir: Path) -> None:
    """Refuse the first key of ``cfg`` that ``conf/`` does not define.

    Parameters
    ----------
    cfg : DictConfig
        The composed config.
    primary : str
        The primary config (``<conf_dir>/<primary>.yaml``) whose keys, with
        its groups', are the known ones.
    conf_dir : Path
        The config folder (``conf/``).

    Raises
    ------
    ValueError
        On an unknown key (a typo, or one added with ``+``), naming the
        closest known key and the known keys at that level;
        :func:`simulations.config.validate` raises it as a ``ConfigError``.
    """
    unknown = _unknown(cfg, _schema(primary, conf_dir), "")
    if unknown:
        path, known = unknown
        close = difflib.get_close_matches(path.rsplit(".", 1)[-1], known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"unknown config key {path!r} (a typo, or added with `+`?); {hint}"
            f"known keys here: {', '.join(sorted(known))}"
        )


def _unknown(node: Any, schema: dict[str, Any], prefix: str) -> Any:
    """The first key of ``node`` missing from ``schema``, with the known ones."""
    for key in node.keys():
        path = f"{prefix}{key}"
        if key not in schema:
            return path, list(schema)
        child, known = node[key], schema[key]
        if path in FREE_KEYS or not isinstance(known, dict):
            continue
        if OmegaConf.is_dict(child):
            found = _unknown(child, known, f"{path}.")
            if found:
                return found
    return None
