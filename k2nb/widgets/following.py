"""The part every trajectory view shares: follow a Trajectory's events and push throttled updates."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget

from k2nb.widgets.data import Throttle

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Trajectory, TrajectoryEvent


class TrajectoryWidget(anywidget.AnyWidget):
    """Base of the views that render a Trajectory. Subclasses implement ``_push`` (recompute the synced
    traits from the trajectory) and may narrow ``events`` to the event types that can change them."""

    events: ClassVar[frozenset[str] | None] = None  # None: every event

    def __init__(self, trajectory: Trajectory, *, live: bool = True, throttle_s: float = 0.1,
                 static_fallback: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self._trajectory = trajectory
        self.static_fallback = static_fallback
        self._push_lock = threading.Lock()
        self._throttle = Throttle(self._push, throttle_s)
        self._unsubscribe = trajectory.subscribe(self._on_event) if live else None
        self._push()

    @property
    def trajectory(self) -> Trajectory:
        return self._trajectory

    def _on_event(self, event: TrajectoryEvent) -> None:
        if self.events is None or event.type in self.events:
            self._throttle.poke()

    def flush(self) -> None:
        """Send pending changes now (a throttled update may otherwise be up to `throttle_s` away)."""
        self._throttle.flush()

    def _unfollow(self) -> None:
        self._throttle.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def stop(self) -> None:
        """Stop following the trajectory (the view keeps its last state)."""
        self._unfollow()
        self._push()

    def close(self) -> None:
        self._unfollow()
        super().close()
