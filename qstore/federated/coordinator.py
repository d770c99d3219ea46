"""The coordinator: runs federated rounds over participants and trains a model in place.

Per round: sample participants (``sampling``), send each the global parameters and
local-training settings, wait for updates until all selected have answered, enough
have (``target_updates``), or ``deadline_s`` passes. Failed, late and malformed
replies are logged and left out. With at least ``min_participants`` valid updates
the strategy (or, under central DP, the clipped noisy mean) moves the global model;
otherwise the round is skipped and the model stays as it was. A straggler never
holds a round past its deadline.

Before the first round an unfitted classifier gets its feature scaling and classes
from the participants' column statistics and label sets (``Summary``), exactly
what centralised training on the union would fit (with a robust strategy, merged
so that f liars cannot steer them); under DP, where those statistics would escape
the accountant, they come from the coordinator's validation data.

Every aggregated round's global model is checkpointed in ``db`` (an embedded
``qstore.Database`` or an ``AsyncClient``) as ``{run}-r{round:05d}``.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qstore.errors import InvalidArgument, QStoreError, error
from qstore.training.models import Model
from qstore_client.api import QStoreAPI

from .angles import wrap
from .breaker import Breaker, BreakerPolicy
from .compression import Compression
from .messages import RoundTask, Summary, Update
from .participant import Participant, SecureParticipant
from .privacy import Accountant, DPConfig, noise_rng, noisy_mean
from .registry import ParticipantRegistry
from .remote import RemoteParticipant
from .sampling import Sampling
from .secagg import SecAggConfig
from .secure_round import secure_sum
from .selection import Candidate, QuboSelection
from .strategies import Strategy, make_strategy

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "federated"
ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass
class RoundRecord:
    """What one round did. `status` is ``aggregated`` or ``skipped`` (too few valid updates).

    `participants` are those whose updates were aggregated, `excluded` maps the others
    (failed, late, malformed) to why; `local` holds their local metrics and
    `train_seconds` their reported training time; `seconds` is the round's wall time.
    """

    round: int
    status: str
    selected: list[str]
    participants: list[str]
    excluded: dict[str, str]
    samples: int
    accuracy: float | None
    loss: float | None
    epsilon: float | None
    seconds: float
    checkpoint: str | None = None
    local: dict[str, dict[str, float]] = field(default_factory=dict)
    train_seconds: dict[str, float] = field(default_factory=dict)
    #: why a round was skipped, when the counts alone do not say
    reason: str | None = None
    #: secure aggregation: threshold t, survivors per stage, payload bytes in/out per participant
    secure: dict[str, Any] | None = None
    #: payload bytes of each aggregated participant's delta, and float64's size over their mean
    bytes_sent: dict[str, int] = field(default_factory=dict)
    compression_ratio: float | None = None
    #: seconds from asking each participant to its answer
    latency: dict[str, float] = field(default_factory=dict)
    #: QUBO selection: each picked participant's share of every term of the energy (lower is better)
    why: dict[str, dict[str, float]] = field(default_factory=dict)
    #: rows each aggregated participant trained on (1 under local DP; unknown to secure aggregation)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise error("invalid_argument", f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise error("invalid_argument", f"{name} must be a positive number, got {value!r}")
    return float(value)


class Coordinator:
    """Federated training over Q-Store nodes (URLs) and/or in-process ``Participant`` objects.

    Args:
        participants: server URLs and/or objects implementing ``Participant``, or ``"registry"``:
            every participant registered in `db` (``register_participant``), whose health and
            breaker state the coordinator keeps there after each round.
        dataset: the dataset name each participant trains on (in its own database).
        strategy: a name (``fedavg``, ``fedprox``, ``circular``, ``median``, ``trimmed_mean``,
            ``krum``, ``multi_krum``) with ``strategy_options`` (``mu``, ``f``, ``beta``, ``m``),
            or a ``Strategy``.
        rounds, local_epochs: rounds to run; epochs each participant trains per round.
        fraction, sampling: share of participants asked per round, ``fixed`` (exactly
            ⌈fraction·N⌉) or ``poisson`` (each independently with probability fraction).
        min_participants: valid updates a round needs to move the model.
        deadline_s: how long a round waits for updates.
        target_updates: close a round as soon as this many valid updates are in (default: wait
            for every selected participant, up to the deadline).
        dp: ``DPConfig`` or dict (see ``privacy``), None for no differential privacy.
        secure_aggregation: True or ``{"threshold", "frac_bits"}`` (see ``secagg``): the
            coordinator learns only the sum of the finished participants' updates. Needs a
            sum-based strategy (fedavg, fedprox, fednova); central DP noise is added after unmasking.
        compression: ``{"bits": 4..16, "error_feedback": True, "chunk": 256}`` (see ``compression``):
            participants send stochastically quantised deltas; rounds record bytes per participant.
        breaker: ``{"failures": 3, "backoff_s": 30}``: a participant failing that many rounds in a row
            is skipped until the backoff passes, then probed once (see ``breaker``).
        selection: ``random`` (``sampling``) or ``qubo`` (see ``selection``; ``selection_options``:
            ``solver`` anneal / qaoa / exhaustive, ``weights``, ``layers``) choosing ⌈fraction·N⌉.
        seed: drives sampling, parameter initialisation and local shuffles (never DP noise).
        optimizer, lr, batch_size, backend, gradient: local training settings.
        db: where each round's global model is checkpointed (optional).
        api_key: bearer key for URL participants.
        run: run name for checkpoint ids (default: a fresh unique name).
        progress: ``progress(event, info)`` with events ``round_start``, ``reply``, ``round_end``.
    """

    def __init__(self, participants: Sequence[str | Participant] | str, dataset: str = "local",
                 strategy: str | Strategy = "fedavg", rounds: int = 10, local_epochs: int = 1,
                 fraction: float = 1.0, min_participants: int = 2, deadline_s: float = 60.0,
                 dp: DPConfig | dict[str, Any] | None = None, seed: int = 0, *, sampling: str = "fixed",
                 strategy_options: dict[str, Any] | None = None, target_updates: int | None = None,
                 optimizer: str = "adam", lr: float = 0.05, batch_size: int = 16, backend: str = "statevector",
                 gradient: str = "adjoint", db: QStoreAPI | None = None, api_key: str | None = None,
                 run: str | None = None, progress: ProgressFn | None = None,
                 secure_aggregation: bool | dict[str, Any] = False, compression: dict[str, Any] | None = None,
                 breaker: dict[str, Any] | None = None, selection: str = "random",
                 selection_options: dict[str, Any] | None = None):
        self.dataset = dataset
        self.rounds = _positive_int(rounds, "rounds")
        self.local_epochs = _positive_int(local_epochs, "local_epochs")
        self.min_participants = _positive_int(min_participants, "min_participants")
        self.deadline_s = _positive(deadline_s, "deadline_s")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.target_updates = None if target_updates is None else _positive_int(target_updates, "target_updates")
        self.lr = _positive(lr, "lr")
        self.optimizer, self.backend, self.gradient = optimizer, backend, gradient
        self.seed = int(seed)
        self.db = db
        self.api_key = api_key
        self.run_name = run or f"federated-{uuid.uuid4().hex[:8]}"
        self.progress = progress
        self.strategy = make_strategy(strategy, **(strategy_options or {}))
        self.dp = DPConfig.of(dp)
        if self.dp is not None and self.dp.mode == "central" and not self.strategy.sum_based:
            raise error("invalid_argument",
                        f"central DP noise is calibrated to a sum of clipped updates; strategy "
                        f"{self.strategy.describe()} is not a sum (use fedavg or fedprox, or dp mode 'local')")
        self.secagg = SecAggConfig.of(secure_aggregation)
        self.compression = Compression.of(compression)
        self.breaker_policy = BreakerPolicy.of(breaker)
        if selection not in ("random", "qubo"):
            raise error("invalid_argument", f"selection must be 'random' or 'qubo', got {selection!r}")
        self.selector = QuboSelection.of(selection_options) if selection == "qubo" else None
        if self.selector is not None and self.dp is not None and self.dp.mode == "central":
            raise error("invalid_argument", "central DP accounts for uniformly random participant sampling; "
                                            "QUBO selection is not random (use selection='random')")
        self._profiles: dict[str, Summary] = {}
        self._last_picked: dict[str, int] = {}
        self._latency: dict[str, float] = {}
        self.breakers: dict[str, Breaker] = {}
        self._sampling_args = (sampling, fraction)
        self.registry: ParticipantRegistry | None = None
        if isinstance(participants, str) and participants == "registry":
            if not isinstance(db, ParticipantRegistry):
                raise error("invalid_argument", "participants='registry' needs db, a qstore.Database holding the "
                                                "registry (register_participant)")
            self.registry = db
            self.participants: list[Participant] = []
            self._owned: list[Participant] = []
        else:
            self.participants, self._owned = self._participants(participants, api_key, self.selector is not None)
            self._configure()

    def _configure(self) -> None:
        """What depends on the participants: sampling, feasibility, the DP accountant."""
        self.sampling = Sampling(self._sampling_args[0], self._sampling_args[1], len(self.participants))
        if self.selector is not None and self.sampling.scheme != "fixed":
            raise error("invalid_argument", "QUBO selection picks exactly ceil(fraction*N) participants: "
                                            "sampling must be 'fixed'")
        self._check_feasible()
        if self.secagg is not None:
            self._check_secure()
        self.accountant = None if self.dp is None else Accountant(self.dp, self.sampling, self.rounds)
        for p in self.participants:
            self.breakers.setdefault(p.name, Breaker())

    async def _load_registry(self) -> None:
        """Every registered participant, with the breaker state the registry kept for it."""
        assert self.registry is not None
        docs = await self.registry.list_participants()
        if not docs:
            raise error("unavailable", "the participant registry is empty: register_participant(name, url) or "
                                       "`qstore participants add NAME URL`")
        await self.close()
        self.participants, self._owned = [], []
        for doc in docs:
            p = RemoteParticipant(doc["url"], api_key=self.api_key, label_counts=self.selector is not None)
            p.name = doc["name"]
            self.participants.append(p)
            self._owned.append(p)
            self.breakers[p.name] = Breaker.from_dict(doc.get("breaker"))
        self._configure()

    # -- setup ---------------------------------------------------------------------------
    @staticmethod
    def _participants(items: Sequence[str | Participant], api_key: str | None, label_counts: bool
                      ) -> tuple[list[Participant], list[Participant]]:
        if isinstance(items, (str, bytes)) or not items:
            raise error("invalid_argument", "participants must be a non-empty list of URLs or Participant objects")
        out: list[Participant] = []
        owned: list[Participant] = []
        for item in items:
            if isinstance(item, str):
                if not item.startswith(("http://", "https://")):
                    raise error("invalid_argument", f"participant {item!r} is not an http(s) URL")
                p = RemoteParticipant(item, api_key=api_key, label_counts=label_counts)
                owned.append(p)
            elif isinstance(item, Participant):
                p = item
            else:
                raise error("invalid_argument", f"participant {item!r} is neither a URL nor a Participant")
            out.append(p)
        names = [p.name for p in out]
        if len(set(names)) != len(names):
            raise error("invalid_argument", f"participants must be distinct; repeated: "
                                            f"{sorted({n for n in names if names.count(n) > 1})}")
        return out, owned

    def _check_feasible(self) -> None:
        n = len(self.participants)
        if self.min_participants > n:
            raise error("invalid_argument", f"min_participants={self.min_participants} exceeds the {n} participants")
        if self.sampling.scheme == "fixed" and self.sampling.size < self.min_participants:
            raise error("invalid_argument",
                        f"fraction={self.sampling.fraction:g} selects {self.sampling.size} of {n} "
                        f"participants per round, fewer than min_participants={self.min_participants}")
        if self.sampling.scheme == "poisson" and self.sampling.expected < self.min_participants:
            log.warning("poisson sampling expects %.1f participants per round, below min_participants=%d: many "
                        "rounds will be skipped", self.sampling.expected, self.min_participants)
        if self.target_updates is not None and self.target_updates < self.min_participants:
            raise error("invalid_argument", f"target_updates={self.target_updates} is below min_participants="
                                            f"{self.min_participants}")
        try:
            self.strategy.check(self.min_participants)
        except InvalidArgument as exc:
            raise error(exc.code, f"strategy {self.strategy.describe()} cannot aggregate rounds of "
                                  f"min_participants={self.min_participants}: {exc.message}; raise "
                                  f"min_participants or lower f") from None

    def _check_secure(self) -> None:
        assert self.secagg is not None
        if self.compression is not None:
            raise error("invalid_argument", "secure aggregation already quantises updates to its fixed-point ring "
                                            "(frac_bits); choose it or compression, not both")
        if self.strategy.secure_weighting is None:
            raise error("invalid_argument",
                        f"secure aggregation reveals only the sum of the updates; strategy "
                        f"{self.strategy.describe()} needs the individual updates (use fedavg, fedprox or fednova)")
        if self.dp is not None and self.dp.mode == "central" and self.strategy.secure_weighting != "samples":
            raise error("invalid_argument", f"central DP with secure aggregation sums clipped deltas with unit "
                                            f"weights; {self.strategy.describe()} weights them otherwise")
        plain = [p.name for p in self.participants if not isinstance(p, SecureParticipant)]
        if plain:
            raise error("invalid_argument", f"secure aggregation needs participants that run its stages "
                                            f"(LocalParticipant, URLs); these do not: {plain}")
        smallest = self.sampling.size if self.sampling.scheme == "fixed" else len(self.participants)
        t = self.secagg.t(smallest)
        if t > smallest:
            raise error("invalid_argument", f"secure aggregation threshold t={t} exceeds the {smallest} "
                                            "participants per round")

    def _emit(self, event: str, **info: Any) -> None:
        if self.progress is not None:
            self.progress(event, info)

    # -- the run -------------------------------------------------------------------------
    async def run(self, model: Model, validation: tuple[Any, Any] | None = None) -> list[RoundRecord]:
        """Run every round, training `model` in place; returns one ``RoundRecord`` per round.

        Raises ``unavailable`` if no round gathered ``min_participants`` valid updates.
        """
        if not isinstance(model, Model):
            raise error("invalid_argument", f"model must be a qstore.training model, got {type(model).__name__}")
        rng = np.random.default_rng(self.seed)
        history: list[RoundRecord] = []
        try:
            if self.registry is not None:
                await self._load_registry()
            await self._prepare(model, validation, rng)
            if self.selector is not None and not self._profiles:
                await self._summaries()
            val = None if validation is None else (model.features(validation[0]), model.targets(validation[1]))
            for r in range(1, self.rounds + 1):
                record = await self._round(r, model, rng, val)
                history.append(record)
                self._emit("round_end", record=record)
        finally:
            await self.close()
        if not any(h.status == "aggregated" for h in history):
            raise error("unavailable", f"no round gathered min_participants={self.min_participants} valid updates; "
                                       f"last round excluded {history[-1].excluded if history else {}}")
        return history

    async def close(self) -> None:
        """Close the connections this coordinator opened (reopened if `run` is called again)."""
        await asyncio.gather(*(p.close() for p in self._owned), return_exceptions=True)

    async def _prepare(self, model: Model, validation: tuple[Any, Any] | None, rng: np.random.Generator) -> None:
        if model.params is not None and model.scaler.fitted:
            if model.params.shape != (model.n_params,):
                raise error("invalid_parameters", f"model params have shape {model.params.shape}, expected "
                                                  f"({model.n_params},)")
            return
        if model.metric_name != "accuracy":
            raise error("invalid_argument",
                        f"a {model.kind} model must be fitted (scaler, targets, params) before "
                        "federated rounds; only classifiers are prepared from participant summaries")
        if self.dp is not None:
            if validation is None:
                raise error("invalid_argument", "a DP run with an unfitted model needs validation data to fit feature "
                                                "scaling and classes from: participant statistics would escape the "
                                                "privacy accounting")
            summary = Summary.of(np.asarray(validation[0], dtype=np.float64), np.asarray(validation[1]))
        else:
            summary = Summary.merge(await self._summaries(), f=self.strategy.f)
        data = summary.data_summary()
        model.bind_features(data.n_features)
        if not model.scaler.fitted:
            model.scaler.fit(data.stats)
        model.fit_targets(data)
        if model.params is None:
            model.params = model.init_params(rng)
        log.info("federated run %s: model with %d parameters prepared from %s (%d rows, classes %s)",
                 self.run_name, model.n_params, "validation data" if self.dp else "participant summaries",
                 summary.n, np.asarray(getattr(model, "classes", [])).tolist())

    async def _summaries(self) -> list[Summary]:
        tasks = {asyncio.ensure_future(p.summary(self.dataset)): p for p in self.participants}
        done, late = await asyncio.wait(tasks, timeout=self.deadline_s)
        for t in late:
            t.cancel()
            log.warning("participant %s sent no summary within %.1fs", tasks[t].name, self.deadline_s)
        await asyncio.gather(*late, return_exceptions=True)
        out = []
        for t in done:
            exc = t.exception()
            if exc is None:
                out.append(t.result())
                self._profiles[tasks[t].name] = t.result()
            else:
                log.warning("participant %s: summary failed: %s", tasks[t].name, _reason(exc))
        if not out:
            raise error("unavailable", "no participant answered for its data summary; are they reachable and is "
                                       f"dataset {self.dataset!r} imported on them?")
        return out

    def _task(self, r: int, model: Model, seed: int) -> RoundTask:
        state = model.state()
        if state.get("classes") is not None:
            state["classes"] = np.asarray(state["classes"]).tolist()
        local_dp = self.dp is not None and self.dp.mode == "local"
        assert model.params is not None
        return RoundTask(round=r, params=np.array(model.params, dtype=np.float64), model=model.config(),
                         state=state, dataset=self.dataset, epochs=self.local_epochs, batch_size=self.batch_size,
                         optimizer=self.optimizer, lr=self.lr, mu=self.strategy.mu,
                         clip=self.dp.clip if local_dp else None,
                         noise_multiplier=self.accountant.sigma if local_dp else None,
                         seed=seed, backend=self.backend, gradient=self.gradient, run=self.run_name,
                         compression=None if self.compression is None else self.compression.to_wire())

    async def _round(self, r: int, model: Model, rng: np.random.Generator,
                     val: tuple[np.ndarray, np.ndarray] | None) -> RoundRecord:
        start = time.monotonic()
        why: dict[str, dict[str, float]] = {}
        if self.selector is None:
            selected = [self.participants[i] for i in self.sampling.draw(rng)]
        else:
            picked, why = self.selector.select(self._candidates(r), self.sampling.size, int(rng.integers(2 ** 31)))
            selected = [self.participants[i] for i in sorted(picked)]
            log.info("round %d: qubo selected %s", r, why)
        for p in selected:
            self._last_picked[p.name] = r
        seeds = rng.integers(2 ** 31, size=len(selected))
        self._emit("round_start", round=r, selected=[p.name for p in selected])
        now = time.time()
        ask = [i for i, p in enumerate(selected) if self.breakers[p.name].allow(self.breaker_policy, now)]
        asked = [selected[i] for i in ask]
        if self.secagg is not None:
            record = await self._secure_round(r, model, asked, seeds[ask], val, start)
        else:
            record = await self._plain_round(r, model, asked, seeds[ask], val, start)
        record.selected = [p.name for p in selected]
        record.why = why
        for p in selected:
            if p not in asked:
                b = self.breakers[p.name]
                record.excluded[p.name] = (f"breaker open: skipped after {b.failures} consecutive failure(s); "
                                           f"probed again in {b.retry_in(self.breaker_policy, now):.0f}s")
        await self._record_health(asked, record)
        return record

    def _candidates(self, r: int) -> list[Candidate]:
        """What QUBO selection weighs for each participant (one that sent no summary: one row, no labels)."""
        now = time.time()
        out = []
        for p in self.participants:
            summary = self._profiles.get(p.name)
            b = self.breakers[p.name]
            out.append(Candidate(p.name, summary.n if summary else 1, summary.label_counts() if summary else {},
                                 self._latency.get(p.name),
                                 b.state == "open" and b.retry_in(self.breaker_policy, now) > 0,
                                 r - self._last_picked.get(p.name, 0)))
        return out

    async def _record_health(self, asked: list[Participant], record: RoundRecord) -> None:
        """Move each asked participant's breaker, and keep the registry's view of it current."""
        now = time.time()
        for name, seconds in record.latency.items():  # smoothed, for selection
            self._latency[name] = seconds if name not in self._latency else 0.7 * self._latency[name] + 0.3 * seconds
        for p in asked:
            breaker = self.breakers[p.name]
            why = record.excluded.get(p.name, "")
            ok = p.name in record.participants or why.startswith("late: the round already had enough")
            if ok:
                breaker.success()
            else:
                breaker.failure(self.breaker_policy, now)
                if breaker.state == "open":
                    log.warning("participant %s: breaker open after %d consecutive failure(s)", p.name,
                                breaker.failures)
            if self.registry is not None:
                health: dict[str, Any] = {"status": "ok" if ok else "failing", "failures": breaker.failures,
                                          "breaker": breaker.to_dict()}
                if ok:
                    health["last_seen"] = now
                    if p.name in record.latency:
                        health["latency_s"] = record.latency[p.name]
                try:
                    await self.registry.update_participant(p.name, health)
                except QStoreError as exc:  # bookkeeping must not lose the round
                    log.error("participant %s: registry update failed: %s", p.name, exc)

    async def _plain_round(self, r: int, model: Model, selected: list[Participant], seeds: np.ndarray,
                           val: tuple[np.ndarray, np.ndarray] | None, start: float) -> RoundRecord:
        updates, excluded, latency = await self._collect(r, model, selected, seeds)
        n_angles = model.n_circuit_params
        status = "skipped"
        if len(updates) >= self.min_participants:
            status = self._aggregate(model, updates, n_angles)
        else:
            log.warning("round %d: %d valid update(s), min_participants=%d: skipped, model unchanged (%s)",
                        r, len(updates), self.min_participants, excluded)
        epsilon = None
        if self.accountant is not None:
            # Central: every round sampled and (if aggregated) released noise. Local: whoever was asked.
            epsilon = self.accountant.spend([p.name for p in selected])
        accuracy = loss = None
        if val is not None:
            assert model.params is not None
            ev = await asyncio.to_thread(model.evaluate_batch, val[0], val[1], model.params, False)
            accuracy, loss = model.quality(ev.outputs, val[1]), ev.loss
        record = RoundRecord(round=r, status=status, selected=[p.name for p in selected],
                             participants=[name for name, _ in updates], excluded=excluded,
                             samples=sum(u.n for _, u in updates), accuracy=accuracy, loss=loss,
                             epsilon=epsilon, seconds=time.monotonic() - start,
                             local={name: u.metrics for name, u in updates},
                             counts={name: u.n for name, u in updates},
                             train_seconds={name: u.seconds for name, u in updates},
                             bytes_sent={name: u.wire_bytes for name, u in updates},
                             latency={name: latency[name] for name, _ in updates})
        if updates:
            record.compression_ratio = 8 * model.n_params / float(np.mean(list(record.bytes_sent.values())))
        if status == "aggregated" and self.db is not None:
            record.checkpoint = await self._checkpoint(model, record)
        record.seconds = time.monotonic() - start
        log.info("round %d/%d %s: %d/%d updates, %d samples, accuracy %s, epsilon %s, %.2fs", r, self.rounds,
                 status, len(updates), len(selected), record.samples,
                 "n/a" if accuracy is None else f"{accuracy:.4f}", "n/a" if epsilon is None else f"{epsilon:.3f}",
                 record.seconds)
        return record

    async def _secure_round(self, r: int, model: Model, selected: list[Participant], seeds: np.ndarray,
                            val: tuple[Any, Any] | None, start: float) -> RoundRecord:
        assert self.secagg is not None and model.params is not None
        seed_of = {p.name: int(s) for p, s in zip(selected, seeds)}
        central = self.dp is not None and self.dp.mode == "central"
        weighting = "unit" if central else self.strategy.secure_weighting
        assert weighting is not None
        result = await secure_sum(selected, lambda p: self._task(r, model, seed_of[p.name]), self.secagg,
                                  weighting, self.dp.clip if central and self.dp else None, self.deadline_s,
                                  _reason)
        status, reason = "skipped", result.reason
        if result.total is not None and len(result.survivors) < self.min_participants:
            reason = (f"secure aggregation: {len(result.survivors)} survivor(s), min_participants="
                      f"{self.min_participants}")
        elif result.total is not None:
            status = self._apply(model, self._secure_step(result.total, weighting, model.n_params),
                                 model.n_circuit_params)
        epsilon = None
        if self.accountant is not None:
            epsilon = self.accountant.spend([p.name for p in selected])
        accuracy = loss = None
        if val is not None:
            ev = await asyncio.to_thread(model.evaluate_batch, val[0], val[1], model.params, False)
            accuracy, loss = model.quality(ev.outputs, val[1]), ev.loss
        samples = int(round(float(result.total[-1]) * 2.0 ** -self.secagg.frac_bits)) \
            if result.total is not None and weighting in ("samples", "fednova") else 0  # Σn is the last slot
        record = RoundRecord(round=r, status=status, selected=[p.name for p in selected],
                             participants=result.survivors if status == "aggregated" else [],
                             excluded=result.excluded, samples=samples, accuracy=accuracy, loss=loss,
                             epsilon=epsilon, seconds=time.monotonic() - start, reason=reason,
                             secure={"threshold": result.threshold, "stages": result.stages,
                                     "bytes_in": result.bytes_in, "bytes_out": result.bytes_out})
        if status == "aggregated" and self.db is not None:
            record.checkpoint = await self._checkpoint(model, record)
        record.seconds = time.monotonic() - start
        log.info("round %d/%d %s (secure, t=%d): %d/%d survivors, accuracy %s, %.2fs", r, self.rounds, status,
                 result.threshold, len(result.survivors), len(selected),
                 "n/a" if accuracy is None else f"{accuracy:.4f}", record.seconds)
        return record

    def _secure_step(self, total: np.ndarray, weighting: str, n_params: int) -> np.ndarray:
        """The global step from the unmasked sum of the survivors' summands (``secagg.summands``)."""
        assert self.secagg is not None
        values = total.view(np.int64).astype(np.float64) / float(1 << self.secagg.frac_bits)
        if weighting == "unit":  # central DP: noise on the sum, after unmasking
            assert self.accountant is not None and self.dp is not None
            noisy = values + noise_rng().normal(0.0, self.accountant.sigma * self.dp.clip, size=values.shape)
            return noisy / self.sampling.expected
        return self.strategy.from_sums(values, n_params)

    async def _collect(self, r: int, model: Model, selected: list[Participant], seeds: np.ndarray
                       ) -> tuple[list[tuple[str, Update]], dict[str, str], dict[str, float]]:
        """Ask the selected participants; keep valid updates until all, enough, or the deadline."""
        tasks = {asyncio.ensure_future(p.fit(self._task(r, model, int(s)))): p for p, s in zip(selected, seeds)}
        updates: list[tuple[str, Update]] = []
        excluded: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        deadline = asked_at + self.deadline_s
        latency: dict[str, float] = {}
        pending = set(tasks)
        enough = self.target_updates or len(selected)
        while pending and len(updates) < enough:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                name = tasks[t].name
                latency[name] = loop.time() - asked_at
                try:
                    update = self._validated(t.result(), model, r)
                except Exception as exc:  # noqa: BLE001  any failure of one participant excludes it, never the round
                    excluded[name] = _reason(exc)
                    log.warning("round %d: participant %s left out: %s", r, name, excluded[name])
                    self._emit("reply", round=r, participant=name, ok=False)
                    continue
                updates.append((name, update))
                self._emit("reply", round=r, participant=name, ok=True)
        for t in pending:
            t.cancel()
            name = tasks[t].name
            excluded[name] = ("late: no update within the deadline" if len(updates) < enough
                              else "late: the round already had enough updates")
            log.warning("round %d: participant %s left out: %s (%.1fs)", r, name, excluded[name], self.deadline_s)
        await asyncio.gather(*pending, return_exceptions=True)
        return updates, excluded, latency

    @staticmethod
    def _validated(result: Any, model: Model, r: int) -> Update:
        """Re-check every update as if it came off the wire: in-process participants are not trusted more."""
        doc = result.to_wire() if isinstance(result, Update) else result
        update = Update.from_wire(doc, model.n_params, r)
        update.delta[:model.n_circuit_params] = wrap(update.delta[:model.n_circuit_params])
        return update

    def _aggregate(self, model: Model, updates: list[tuple[str, Update]], n_angles: int) -> str:
        assert model.params is not None
        deltas = np.stack([u.delta for _, u in updates])
        counts = np.array([u.n for _, u in updates], dtype=np.float64)
        if self.dp is not None and self.dp.mode == "central":
            assert self.accountant is not None
            step = noisy_mean(deltas, self.dp.clip, self.accountant.sigma, self.sampling.expected)
        else:
            step = self.strategy.aggregate(model.params, deltas, counts, n_angles,
                                           steps=np.array([u.steps for _, u in updates], dtype=np.float64))
        return self._apply(model, step, n_angles)

    def _apply(self, model: Model, step: np.ndarray, n_angles: int) -> str:
        assert model.params is not None
        new = model.params + step
        if not np.isfinite(new).all():
            log.error("aggregated step is not finite (%s): round rejected, model unchanged",
                      self.strategy.describe())
            return "skipped"
        new[:n_angles] = wrap(new[:n_angles])
        model.params = new
        return "aggregated"

    async def _checkpoint(self, model: Model, record: RoundRecord) -> str | None:
        state = model.state()
        if state.get("classes") is not None:
            state["classes"] = np.asarray(state["classes"]).tolist()
        doc = {"kind": CHECKPOINT_KIND, "run": self.run_name, "round": record.round, "epoch": record.round,
               "params": np.array(model.params, dtype=np.float64),
               "model": {"config": model.config(), "state": state},
               "strategy": self.strategy.describe(), "participants": record.participants,
               "dp": None if self.accountant is None else {**self.dp.to_dict(), "sigma": self.accountant.sigma},
               "metrics": {k: v for k, v in (("accuracy", record.accuracy), ("loss", record.loss),
                                             ("epsilon", record.epsilon)) if v is not None},
               # the whole round (who was asked, excluded and why, local metrics), for the web console
               "record": {k: v for k, v in record.to_dict().items() if k != "checkpoint"}}
        try:
            return await self.db.save_checkpoint(doc, id=f"{self.run_name}-r{record.round:05d}")
        except QStoreError as exc:  # a full disk must not lose the round's training
            log.error("round %d: checkpoint failed: %s", record.round, exc)
            return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, QStoreError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
