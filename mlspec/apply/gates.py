"""Evaluation gates in the image: score a version (and the one in production) and give the verdict.

``ImageGates`` is the applier's gates backend and what ``mlspec evaluate`` and
``mlspec plan --evaluate`` use. It makes sure the version's image is on the evaluating engine
(``ensure``: built there, or pulled), looks the figures up in the cache, else runs the evaluator
container, and judges. The production version is scored on the new version's dataset, so the
comparison is like for like.
"""

from __future__ import annotations

from typing import Callable

import docker

from mlspec import labels as L
from mlspec.apply.eval_cache import LocalCache
from mlspec.apply.eval_container import run_in_image
from mlspec.apply.evaluate import EvalResult, cache_key, format_table, judge, request_for
from mlspec.errors import ApplyError
from mlspec.spec.model import Spec

Ensure = Callable[[str | None, str, str], str]  # (engine, model, version) -> image tag present there
TagOf = Callable[[str, str], str]  # (model, version) -> its image tag (nothing built)
Log = Callable[[str], None]


class GatesRefused(ApplyError):
    """A version scored below its gates; the message carries the score table."""

    def __init__(self, result: EvalResult):
        super().__init__(f"evaluation gates refused {result.model}@{result.version}:\n{format_table(result)}\n"
                         "Nothing was pushed or deployed.")
        self.result = result


class ImageGates:
    def __init__(self, spec: Spec, client: Callable[[str | None], docker.DockerClient], tag_of: TagOf,
                 ensure: Ensure, cache: LocalCache | None = None, log: Log = lambda line: None):
        self.spec, self.client, self.tag_of, self.ensure, self.log = spec, client, tag_of, ensure, log
        self.cache = cache or LocalCache()
        self._keys: dict[tuple[str, str, str], str] = {}  # figures scored but not yet kept

    def _request(self, model: str, version: str, dataset_of: str | None):
        m = self.spec.model(model)
        ev = m.version(dataset_of or version).evaluation
        if ev is None:
            raise ApplyError(f"{model}@{dataset_of or version} has no evaluation section.")
        return m, ev, request_for(self.spec.root, m, m.version(version), ev, builtin=m.build is None)

    def cached(self, model: str, version: str, dataset_of: str | None = None) -> dict | None:
        """The figures when already known, building and running nothing."""
        _, _, (_, _, ident) = self._request(model, version, dataset_of)
        return self.cache.get(cache_key(self.tag_of(model, version), ident), model)

    def scores(self, model: str, version: str, dataset_of: str | None = None, where: str | None = None) -> tuple[dict, bool]:
        """The evaluator's figures for ``model@version`` on the dataset and gates of ``dataset_of``'s
        evaluation (default: its own); (figures, from the cache)."""
        m, ev, (request, files, ident) = self._request(model, version, dataset_of)
        key = cache_key(self.tag_of(model, version), ident)
        hit = self.cache.get(key, model)
        if hit is not None:  # the image need not even be here
            return hit, True
        tag = self.ensure(where, model, version)
        builtin = m.build is None
        self.log(f"evaluation.{model}@{version}: scoring in {tag}" + (f" on {ev.dataset.path}" if dataset_of else ""))
        labels = {L.PROJECT: self.spec.project.name, L.MODEL: model, L.VERSION: version}
        result = run_in_image(self.client(where), tag, request, files, what=f"{model}@{version}", builtin=builtin,
                              memory=ev.memory, cpus=ev.cpus, labels=labels)
        self._keys[(model, version, dataset_of or version)] = key
        return result, False

    def evaluate(self, model: str, version: str, production: str | None, where: str | None = None) -> EvalResult:
        """Score and judge ``model@version``; ``production`` is the version it is compared with."""
        ev = self.spec.model(model).version(version).evaluation
        if ev is None:
            raise ApplyError(f"{model}@{version} has no evaluation section.")
        scores, cached = self.scores(model, version, where=where)
        base = None
        if production and production != version and any(g.no_regression is not None for g in ev.gates):
            base, base_cached = self.scores(model, production, dataset_of=version, where=where)
            if not base_cached:  # production passed its own gates when it went out
                self.cache.put(self._keys.pop((model, production, version)), base, model, True)
        result = judge(model, version, ev, scores, base, production, cached)
        if not cached:  # a refused version's figures stay local: nothing of it reaches the registry
            self.cache.put(self._keys.pop((model, version, version)), scores, model, result.passed)
        return result

    def check(self, model: str, version: str, production: str | None, where: str | None = None) -> EvalResult:
        result = self.evaluate(model, version, production, where)
        if not result.passed:
            raise GatesRefused(result)
        return result
