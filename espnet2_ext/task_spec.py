"""Which tasks exist and which text tokens belong to each.

A ``TaskSpec`` is the single source of truth shared by data prep, the preprocessor (stripping), the model
(task-vector layout), decoding (constrained search) and scoring. ``asr`` is the primary task: it owns the
words and is always active; every other task owns a set of tag tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from espnet2_ext.common import comma_list

PRIMARY_TASK = "asr"
DEFAULT_LANGUAGES = ("en", "de", "es", "fr")
NE_OPEN, NE_CLOSE = "[NE]", "[/NE]"


def language_token(lang: str) -> str:
    """``en`` -> ``[EN]``."""
    return f"[{lang.upper()}]"


def default_task_tokens(languages: Sequence[str] = DEFAULT_LANGUAGES) -> Dict[str, Tuple[str, ...]]:
    return {
        "scd": ("[SCD]",),
        "endp": ("[ENDP]",),
        "ner": (NE_OPEN, NE_CLOSE),
        "lid": tuple(language_token(lang) for lang in languages),
    }


@dataclass(frozen=True)
class TaskSpec:
    """Ordered auxiliary tasks and their tokens; the primary task (``asr``) comes first in ``tasks``.

    Args:
        aux_tokens: ordered mapping auxiliary task name -> the tag tokens it owns.
    """

    aux_tokens: Mapping[str, Tuple[str, ...]] = field(default_factory=default_task_tokens)

    def __post_init__(self):
        seen: Dict[str, str] = {}
        for task, toks in self.aux_tokens.items():
            if task == PRIMARY_TASK:
                raise ValueError(
                    f"'{PRIMARY_TASK}' is the primary task and owns no tag tokens; remove it from aux_tokens"
                )
            if not toks:
                raise ValueError(f"task '{task}' has no tokens")
            for t in toks:
                if t in seen:
                    raise ValueError(f"token {t} is claimed by both '{seen[t]}' and '{task}'")
                seen[t] = task
        object.__setattr__(self, "_token_to_task", seen)
        object.__setattr__(self, "aux_tokens", {k: tuple(v) for k, v in self.aux_tokens.items()})

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def default(cls, languages: Sequence[str] = DEFAULT_LANGUAGES) -> "TaskSpec":
        return cls(default_task_tokens(languages))

    @classmethod
    def build(
        cls,
        tasks: Optional[Sequence[str]] = None,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        extra_tokens: Optional[Mapping[str, Sequence[str]]] = None,
    ) -> "TaskSpec":
        """Spec from a config: ``tasks`` lists the task names (``asr`` optional, order kept for the rest).

        Known names (scd, endp, ner, lid) get their default tokens; any other name needs ``extra_tokens``.
        """
        known = default_task_tokens(languages)
        known.update({k: tuple(v) for k, v in (extra_tokens or {}).items()})
        names = [t for t in (tasks if tasks is not None else list(known)) if t != PRIMARY_TASK]
        unknown = [t for t in names if t not in known]
        if unknown:
            raise ValueError(
                f"unknown task(s) {unknown}: known are {sorted(known)}; give tokens for new tasks with extra_tokens"
            )
        return cls({t: known[t] for t in names})

    def to_config(self) -> Dict[str, List[str]]:
        return {k: list(v) for k, v in self.aux_tokens.items()}

    # ---- queries ------------------------------------------------------------------------------------
    @property
    def aux_tasks(self) -> Tuple[str, ...]:
        return tuple(self.aux_tokens)

    @property
    def tasks(self) -> Tuple[str, ...]:
        """All tasks, primary first: the column order of task masks."""
        return (PRIMARY_TASK,) + self.aux_tasks

    @property
    def all_tokens(self) -> Tuple[str, ...]:
        return tuple(t for toks in self.aux_tokens.values() for t in toks)

    @property
    def languages(self) -> Tuple[str, ...]:
        return tuple(t[1:-1].lower() for t in self.aux_tokens.get("lid", ()))

    def task_of(self, token: str) -> Optional[str]:
        """Task that owns ``token``; None for ordinary words (the primary task)."""
        return self._token_to_task.get(token)  # type: ignore[attr-defined]

    def is_task_token(self, token: str) -> bool:
        return token in self._token_to_task  # type: ignore[attr-defined]

    def looks_like_tag(self, token: str) -> bool:
        """A bracketed token such as ``[XX]``: used to reject tags that the spec does not know."""
        return len(token) > 2 and token[0] == "[" and token[-1] == "]"

    def parse_tasks(self, names: Iterable[str], where: str = "") -> Tuple[str, ...]:
        """Validate task names (e.g. from ``--task_activation`` or ``utt2tasks``); returns them in spec order."""
        names = [n.strip() for n in names if n.strip()]
        bad = [n for n in names if n not in self.tasks]
        if bad:
            loc = f"{where}: " if where else ""
            raise ValueError(f"{loc}unknown task(s) {', '.join(bad)}; valid tasks are: {', '.join(self.tasks)}")
        wanted = set(names)
        return tuple(t for t in self.tasks if t in wanted)

    def active_tasks(self, names: Union[str, Iterable[str], None] = None, where: str = "") -> Tuple[str, ...]:
        """The one definition of an activation: None = every task; otherwise the named tasks (a list or a
        comma/space-separated string) validated against the spec, the primary task added, in spec order."""
        if names is None:
            return self.tasks
        names = comma_list(names)
        if not names:
            loc = f"{where}: " if where else ""
            raise ValueError(f"{loc}empty: name at least '{PRIMARY_TASK}'; valid tasks are: {', '.join(self.tasks)}")
        return self.parse_tasks(list(names) + [PRIMARY_TASK], where)

    def mask(self, active: Iterable[str]) -> List[int]:
        """0/1 list over ``self.tasks``."""
        active = set(active)
        return [1 if t in active else 0 for t in self.tasks]

    def active_from_mask(self, mask: Sequence) -> Tuple[str, ...]:
        return tuple(t for t, m in zip(self.tasks, mask) if int(m))


DEFAULT_AUX_TASKS: Tuple[str, ...] = TaskSpec.default().aux_tasks
DEFAULT_TASKS: Tuple[str, ...] = (PRIMARY_TASK,) + DEFAULT_AUX_TASKS

# ``tokenverse_conf`` of a training config: the task set (and the training activation policy). Everything that
# needs the task set (preprocessor, frontend layout, model, searches, scorer, CLIs) derives it from this through
# ``task_spec_of``.
TOKENVERSE_DEFAULTS: Dict[str, Any] = {
    "tasks": list(DEFAULT_TASKS),
    "languages": list(DEFAULT_LANGUAGES),
    "extra_tokens": None,
    "policy": "sample",
}


def tokenverse_conf_of(args: Any) -> Dict[str, Any]:
    """``args.tokenverse_conf`` (an argparse Namespace or a loaded config) completed with the defaults."""
    given = getattr(args, "tokenverse_conf", None) if not isinstance(args, Mapping) else args.get("tokenverse_conf")
    conf = {**TOKENVERSE_DEFAULTS, **(given or {})}
    unknown = set(conf) - set(TOKENVERSE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"tokenverse_conf: unknown key(s) {sorted(unknown)}; valid keys: {sorted(TOKENVERSE_DEFAULTS)}"
        )
    return conf


def task_spec_of(args: Any) -> TaskSpec:
    """The model's one ``TaskSpec``, from its config's ``tokenverse_conf``."""
    conf = tokenverse_conf_of(args)
    return TaskSpec.build(conf["tasks"], conf["languages"], conf["extra_tokens"])
