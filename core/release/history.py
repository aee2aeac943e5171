"""An app's release history, kept on the cluster: what served it, and the rollback decided last.

Releases delete their run record (ConfigMap `<app>-release`) when they end, so the history is
what a later rollback reads: the last successful release's spec (hence its layout: workload and
Service names), the versions that served the app in order, and the rollback target, decided once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError
from core.release.observed import Track
from core.release.spec import ReleaseSpec

HISTORY_SUFFIX = "-history"  # ConfigMap `<app>-history`, data key "history"
KEEP = 20  # versions kept; older ones are forgotten


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Served(_Model):
    """One version that served the app: a release that ended Done, or a finished rollback."""

    seq: int
    image: str
    at: str
    by: str = "release"  # "release" or "rollback"


class RollbackRecord(_Model):
    """A rollback's target, decided once and kept, so a retry or re-run never moves further back.

    It is reused while nothing was released since (`undoes`, or `done` once finished, is still the
    newest version), the same `to_revision` is asked for, and the app serves either end of it.
    """

    undoes: int  # seq of the newest served version when the target was decided
    to_revision: int  # what was asked: 0 = the previous stable version
    track: Track  # the workload that serves the target
    image: str  # the target image
    revision: int  # the target's revision of that workload (before the rollback)
    template: dict[str, Any] | None = None  # pod template to restore; None: the workload has it
    from_track: Track
    from_image: str
    from_revision: int
    decided_at: str
    decided_by: str
    done: int | None = None  # seq of the version the finished rollback added

    def fits(self, newest: int, to_revision: int, serving: str | None) -> bool:
        """True if a run asking `to_revision`, while `serving` runs, carries on with this target."""
        return (
            self.to_revision == to_revision
            and newest in (self.undoes, self.done)
            and serving in (self.image, self.from_image)
        )


class History(_Model):
    """The app's release history (the JSON in its `<app>-history` ConfigMap)."""

    spec: ReleaseSpec | None = None  # the last successful release, as it was given
    served: tuple[Served, ...] = ()
    rollback: RollbackRecord | None = None

    @property
    def newest(self) -> int:
        """The seq of the newest served version (0 when none is known)."""
        return self.served[-1].seq if self.served else 0

    def previous(self, serving: str | None) -> Served | None:
        """The newest version that served before, with another image than `serving`."""
        return next((s for s in reversed(self.served) if s.image != serving), None)

    def released(self, spec: ReleaseSpec, at: str) -> History:
        """The history after `spec` released successfully (the same image again adds none)."""
        served = self.served
        if not served or served[-1].image != spec.image:
            served = (*served, Served(seq=self.newest + 1, image=spec.image, at=at))
        return self.model_copy(update={"spec": spec, "served": served[-KEEP:]})

    def decided(self, record: RollbackRecord) -> History:
        """The history holding a newly decided rollback target."""
        return self.model_copy(update={"rollback": record})

    def finished(self, at: str) -> History:
        """The history after the decided rollback finished: its target is the newest version."""
        rec = self.rollback
        if rec is None or (rec.done is not None and rec.done == self.newest):
            return self
        entry = Served(seq=self.newest + 1, image=rec.image, at=at, by="rollback")
        done = rec.model_copy(update={"done": entry.seq})
        return self.model_copy(update={"served": (*self.served, entry)[-KEEP:], "rollback": done})

    def dumps(self) -> str:
        """JSON for the ConfigMap (the spec in Argo's camelCase, as it is read)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def loads(cls, text: str, where: str) -> History:
        """Read the ConfigMap's JSON; `where` names it in the error.

        Raises:
            ConfigError: it is not a history this pipeline wrote.
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(
                f"{where} does not hold a release history this pipeline wrote "
                f"({exc.error_count()} errors, first: {exc.errors()[0]['msg']}): delete it and "
                "release the app again"
            ) from None
