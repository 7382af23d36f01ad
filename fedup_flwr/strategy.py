"""FedUP as a Flower strategy on the Message API.

``FedUP`` wraps an inner strategy (``FedAvg`` by default) and keeps only the
Flower hooks; each job lives in its own module:

* exclusion, reply checks, inner aggregation and round numbering:
  :class:`fedup_flwr.exclusion.ExcludingStrategy` (FedUP's base) with
  :mod:`fedup_flwr.validation`;
* whether and when to unlearn (guard, rate limit, pending set, recovery):
  :class:`fedup_flwr.policy.UnlearningPolicy`;
* asking the detector each round and handing its flags to the policy:
  :func:`fedup_flwr.flagging.flag_round`;
* how to unlearn (Algorithms 1-2, Eq. 4-5): :mod:`fedup_flwr.core`;
* the record of each step: :class:`fedup_flwr.events.UnlearningEvent`;
* the extra recovery rounds and round numbering of ``start``:
  :mod:`fedup_flwr.rounds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from numpy.typing import NDArray

from fedup_flwr.core import (
    adaptive_pruning_rate,
    apply_mask,
    model_nbytes,
    unlearning_mask,
)
from fedup_flwr.detector import Detector
from fedup_flwr.events import UnlearningEvent
from fedup_flwr.exclusion import ExcludingStrategy
from fedup_flwr.flagging import flag_round
from fedup_flwr.inner_state import check_inner_strategy
from fedup_flwr.policy import HeldModel, UnlearningPolicy, state_int
from fedup_flwr.rates import DEFAULT_PRUNING_RATE, RateChoice
from fedup_flwr.rounds import EvaluateFn, run_rounds, warn_outstanding
from fedup_flwr.similarity import get_similarity, similarity_range
from fedup_flwr.unlearning import choose_rate, unlearn
from fedup_flwr.validation import DEFAULT_MAX_ABS, DEFAULT_MAX_EXAMPLES, ValidReply

__all__ = ["FedUP", "UnlearningEvent"]


class FedUP(ExcludingStrategy):
    """Unlearn flagged clients by pruning the global model (FedUP).

    Parameters
    ----------
    strategy : Strategy | None (default: ``FedAvg()``)
        Inner strategy; it samples, aggregates and evaluates as usual. Its
        server-side model copy and momentum follow the pruning
        (:mod:`fedup_flwr.inner_state`); Flower's XGBoost strategies, which
        have no weights to prune, raise TypeError.
    detector : Detector | None (default: None)
        Asked every training round which replying nodes are malicious. With
        None, FedUP never unlearns and behaves like the inner strategy (plus
        reply validation).
    pruning_rate : float | None (default: ``rates.DEFAULT_PRUNING_RATE``)
        Fixed pruning rate P in [0, 1]; None adapts P to the benign clients'
        similarity (Eq. 4-5, :func:`~fedup_flwr.adaptive_pruning_rate`), which
        in our measurements does not tell IID from non-IID clients at the
        unlearning round (``docs/notes/similarity.md``), hence a fixed default.
    rate_limit : int (default: 10)
        Minimum rounds between two unlearning steps (T, section IV-D).
    recovery_rounds : int (default: 3)
        Training rounds guaranteed after an unlearning; ``start`` runs extra
        rounds when the run would end sooner (see Notes).
    p_min, p_max, gamma : float
        Parameters of the adaptive rate (Eq. 5).
    similarity : str (default: ``"weights"``)
        The similarity measure of the adaptive rate, by name
        (:func:`fedup_flwr.similarity.available_similarities`): ``"weights"``
        is the paper-literal cosine of the last-layer weights; the update
        measures compare the replies minus the global arrays sent that round.
        Measured (and recorded) with a fixed P too.
    sim_min, sim_max : float | None (default: the measure's
        :func:`~fedup_flwr.similarity.similarity_range`)
        The similarity range Eq. 4 maps onto [0, 1].
    max_abs : float | None (default: ``validation.DEFAULT_MAX_ABS``)
        Replies with any array value larger in magnitude are rejected.
    max_examples : int (default: ``validation.DEFAULT_MAX_EXAMPLES``)
        Replies claiming more examples are rejected.
    first_round : int (default: 1)
        Number of the first round ``start`` runs, for a run that continues an
        earlier one (the detector, events and rate limit see these numbers).

    Notes
    -----
    Put other wrappers *inside* FedUP, e.g.
    ``FedUP(DifferentialPrivacyServerSideFixedClipping(FedAvg(), ...))``: the
    wrapper clips and noises the benign aggregate, FedUP prunes it. A wrapper
    *around* FedUP runs its own ``start``, so the extra recovery rounds of
    :meth:`start` are lost (FedUP logs a WARNING each round recovery is
    outstanding; :meth:`rounds_required` says how many rounds to add). See
    :mod:`fedup_flwr.rounds`.
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        detector: Detector | None = None,
        pruning_rate: float | None = DEFAULT_PRUNING_RATE,
        rate_limit: int = 10,
        recovery_rounds: int = 3,
        p_min: float = 0.01,
        p_max: float = 0.15,
        gamma: float = 5.0,
        *,
        similarity: str = "weights",
        sim_min: float | None = None,
        sim_max: float | None = None,
        max_abs: float | None = DEFAULT_MAX_ABS,
        max_examples: int = DEFAULT_MAX_EXAMPLES,
        first_round: int = 1,
    ) -> None:
        if pruning_rate is not None and not 0.0 <= pruning_rate <= 1.0:
            raise ValueError(
                f"pruning_rate must be in [0, 1] or None, got {pruning_rate}"
            )
        get_similarity(similarity)  # raises on an unknown name
        default_min, default_max = similarity_range(similarity)
        sim_min = default_min if sim_min is None else sim_min
        sim_max = default_max if sim_max is None else sim_max
        # Eq. 4-5's own checks of every parameter, run once up front.
        adaptive_pruning_rate(
            1.0, p_min=p_min, p_max=p_max, gamma=gamma, sim_min=sim_min, sim_max=sim_max
        )
        if detector is not None and not callable(getattr(detector, "detect", None)):
            raise TypeError(
                f"detector {detector!r} has no detect(server_round, replies, "
                "global_arrays) method"
            )
        self.policy = UnlearningPolicy(
            rate_limit=rate_limit, recovery_rounds=recovery_rounds
        )
        super().__init__(
            strategy,
            max_abs=max_abs,
            max_examples=max_examples,
            first_round=first_round,
        )
        check_inner_strategy(self.strategy)
        self.detector = detector
        self.pruning_rate = pruning_rate
        self.p_min, self.p_max, self.gamma = p_min, p_max, gamma
        self.similarity = similarity
        self.sim_min, self.sim_max = float(sim_min), float(sim_max)
        self.events: list[UnlearningEvent] = []
        self._last_replies: dict[int, HeldModel] = {}
        # True while start() drives the loop; False when wrapped or driven by hand.
        self._in_start = False

    # ------------------------------------------------------------ settings
    @property
    def rate_limit(self) -> int:
        """Minimum rounds between two unlearning steps (the policy's)."""
        return self.policy.rate_limit

    @property
    def recovery_rounds(self) -> int:
        """Training rounds guaranteed after an unlearning (the policy's)."""
        return self.policy.recovery_rounds

    def summary(self) -> None:
        """Log FedUP's settings, then the inner strategy's."""
        log(INFO, "\t├──> FedUP settings:")
        log(
            INFO,
            "\t│\t├── Pruning rate: %s",
            f"adaptive (p_min={self.p_min:.3f}, p_max={self.p_max:.3f}, "
            f"gamma={self.gamma:.1f}, similarity={self.similarity} in "
            f"[{self.sim_min:g}, {self.sim_max:g}])"
            if self.pruning_rate is None
            else f"{self.pruning_rate:.3f} (fixed)",
        )
        log(INFO, "\t│\t├── Rate limit: %d rounds", self.rate_limit)
        log(INFO, "\t│\t├── Recovery rounds: %d", self.recovery_rounds)
        log(INFO, "\t│\t└── Detector: %s", type(self.detector).__name__)
        log(INFO, "\t└──> Inner strategy: %s", type(self.strategy).__name__)
        self.strategy.summary()

    @property
    def excluded(self) -> set[int]:
        """Nodes that no longer train or evaluate (the policy's set)."""
        return self.policy.excluded

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure training; fail fast if a held model does not fit the model."""
        messages = super().configure_train(server_round, arrays, config, grid)
        self.policy.check_layout(self._global_arrays)
        return messages

    def _select(self, server_round: int, valid: list[ValidReply]) -> list[ValidReply]:
        """Hold the valid replies for the detector, ask it, keep the benign ones."""
        if self.detector is not None:  # without one, no reply is ever unlearned
            self._last_replies = {
                r.node_id: HeldModel(r.arrays, r.num_examples, server_round)
                for r in valid
            }
        self.policy.observe(r.node_id for r in valid)
        flag_round(
            self,
            server_round,
            valid,
            held=self._last_replies,
            present=self._present,
            metrics=self._round_metrics,
        )
        return super()._select(server_round, valid)

    def _finish_round(
        self, server_round: int, arrays: ArrayRecord | None, kept: list[ValidReply]
    ) -> ArrayRecord | None:
        """Unlearn the pending nodes from the benign aggregate when due."""
        until = self.policy.deferred_until(server_round)
        if until is not None:
            log(
                INFO,
                "FedUP: round %s: unlearning of %s deferred by the rate limit "
                "until round %s",
                server_round,
                sorted(self.policy.pending),
                until,
            )
        if arrays is not None and self.policy.due(server_round):
            arrays = unlearn(self, server_round, arrays, kept)
            event = self.events[-1]
            if event.status == "unlearned":
                self._round_metrics.update(event.metrics())
            else:
                self._round_metrics["fedup-refused"] = 1.0
        self._last_replies = {}  # held for this round's detection only
        if not self._in_start:  # wrapped or driven by hand: nobody adds rounds
            warn_outstanding(self.policy, server_round, wrapped=True)
        self._round_metrics["fedup-pending-nodes"] = float(len(self.policy.pending))
        return arrays

    # ----------------------------------------------------------- unlearning
    def compute_mask(
        self,
        benign_models: list[list[NDArray[Any]]],
        benign_weights: list[int],
        malicious_models: list[list[NDArray[Any]]],
        malicious_weights: list[int],
        rate: float,
    ) -> list[NDArray[np.bool_]]:
        """The unlearning mask (Algorithm 1); override to rank weights otherwise.

        True marks a weight to zero. The global arrays sent in the round of the
        benign replies are in ``self.global_arrays``.
        """
        return unlearning_mask(
            benign_models,
            malicious_models,
            self._global_arrays,
            rate,
            benign_weights=benign_weights,
            malicious_weights=malicious_weights,
        )

    def apply_unlearning(
        self, aggregate: list[NDArray[Any]], mask: list[NDArray[np.bool_]]
    ) -> list[NDArray[Any]]:
        """Apply the mask to the benign aggregate (Algorithm 2); overridable."""
        return apply_mask(aggregate, mask)

    def pruning_rate_for(self, benign: list[ValidReply]) -> RateChoice:
        """The pruning rate P for this step, and how it was chosen.

        The fixed ``pruning_rate`` when set, else Eq. 4-5 on the benign
        replies' similarity under the measure ``similarity`` (with
        :data:`~fedup_flwr.rates.DEFAULT_PRUNING_RATE` when it is undefined,
        e.g. one benign reply). See :func:`fedup_flwr.unlearning.choose_rate`.
        """
        return choose_rate(
            [r.arrays for r in benign],
            self._global_arrays,
            pruning_rate=self.pruning_rate,
            similarity=self.similarity,
            sim_min=self.sim_min,
            sim_max=self.sim_max,
            p_min=self.p_min,
            p_max=self.p_max,
            gamma=self.gamma,
        )

    def rounds_required(self, last_round: int | None = None) -> int:
        """Training rounds that must still run for the recovery to complete.

        Parameters
        ----------
        last_round : int | None (default: :attr:`last_round`)
            The last round run (or to be run), in FedUP's numbering.

        Returns
        -------
        int
            ``max(0, r + recovery_rounds - last_round)`` for the latest
            unlearning round r; 0 when there was none. :meth:`start` runs
            these rounds itself; a wrapper around FedUP must run them.
        """
        return self.policy.rounds_required(
            self._last_round if last_round is None else last_round
        )

    # --------------------------------------------------------------- state
    def state_nbytes(self) -> int:
        """Bytes of arrays FedUP holds now.

        The global model sent, the pending nodes' models and, during a round
        with a detector, that round's replies (none are kept between rounds).
        """
        return (
            sum(model_nbytes(h.arrays) for h in self._last_replies.values())
            + self.policy.held_nbytes()
            + model_nbytes(self._global_arrays)
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume FedUP after a restart."""
        state: dict[str, Any] = {
            **self.policy.state_dict(),
            "round_offset": self._round_offset,
            "events": [asdict(e) for e in self.events],
        }
        if self.detector is not None and hasattr(self.detector, "state_dict"):
            state["detector"] = self.detector.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`."""
        offset = state_int(state.get("round_offset"), "round_offset", 0)
        events = state.get("events")
        try:
            loaded = [UnlearningEvent(**e) for e in events]  # type: ignore[union-attr]
        except TypeError as err:
            raise ValueError(
                f"state['events'] must be a list of saved UnlearningEvents ({err})"
            ) from err
        self.policy.load_state_dict(state)
        self._round_offset = self._last_round = offset
        self.events = loaded
        if "detector" in state and hasattr(self.detector, "load_state_dict"):
            self.detector.load_state_dict(state["detector"])  # type: ignore[union-attr]

    # --------------------------------------------------------------- start
    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: EvaluateFn | None = None,
    ) -> Result:
        """Run Flower's round loop, then extra rounds if recovery is cut short.

        After an unlearning in round r, rounds r+1 .. r+``recovery_rounds``
        always run: when ``num_rounds`` ends sooner, the loop is started again
        from the last global model for :meth:`rounds_required` more rounds,
        numbered on. A wrapper around FedUP does not do this (see Notes of
        :class:`FedUP`).
        """
        self._in_start = True
        try:
            result = run_rounds(
                self,
                super().start,
                grid,
                initial_arrays,
                num_rounds,
                timeout=timeout,
                train_config=train_config,
                evaluate_config=evaluate_config,
                evaluate_fn=evaluate_fn,
            )
        finally:
            self._in_start = False
        warn_outstanding(self.policy, self._last_round, wrapped=False)
        return result
