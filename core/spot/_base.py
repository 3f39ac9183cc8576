"""The spot-run interface shared by the local simulator and EC2."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from core.spot.entities import SpotEvent, SpotRun, SpotRunSpec

if TYPE_CHECKING:
    from core.spot.pricing import PricePoint
    from core.training.compute import InstanceType


class SpotManager(ABC):
    """Launches, observes, interrupts (simulator) and terminates spot training runs.

    Invariants: run names are unique (and distinct from training-job names); ``launch`` returns
    at once (the work runs in a detached process, or on EC2); returned objects are frozen; a
    run in a terminal state never changes again.
    """

    backend_name: str
    instance_types: tuple[str, ...]
    """What a run can be launched on, the first being the default."""
    can_interrupt: bool = False
    """Whether :meth:`interrupt` exists (the simulator, whose interruptions the user schedules); EC2
    interrupts on its own."""
    has_price_feed: bool = False
    """Whether :meth:`price_history` reads a market (and so a maximum price means something)."""
    can_clean_up: bool = False
    """Whether a run leaves resources behind that :meth:`cleanup` deletes."""
    log_title: str = "Log"
    """What :meth:`log_tail` shows, as a heading."""
    has_volume_size: bool = False
    """Whether a run's root volume size means something (EC2's EBS volume; the simulator uses this disk)."""

    @abstractmethod
    def described_instance_types(self) -> list[InstanceType]:
        """:attr:`instance_types` with their vCPUs, memory and GPUs, for the form's labels.

        Raises:
            BackendError: the hardware could not be asked for, in words.
        """

    @abstractmethod
    def launch(self, spec: SpotRunSpec) -> SpotRun:
        """Starts a run and returns it.

        Raises:
            AlreadyExistsError: the name is taken.
            InvalidInputError: the dataset or an option cannot be used by this backend.
            BackendError: the run could not be started.
        """

    @abstractmethod
    def describe(self, name: str) -> SpotRun:
        """The run's current state. Raises NotFoundError."""

    @abstractmethod
    def list_runs(self, *, limit: int = 100) -> list[SpotRun]:
        """Runs, newest first."""

    @abstractmethod
    def events(self, name: str) -> list[SpotEvent]:
        """The run's timeline in order. Raises NotFoundError."""

    @abstractmethod
    def log_tail(self, name: str, max_lines: int = 200) -> list[str]:
        """The end of the run's log (the console output on EC2). Raises NotFoundError."""

    @abstractmethod
    def terminate(self, name: str) -> SpotRun:
        """Ends the run (and cancels a persistent request). Raises NotFoundError."""

    def interrupt(self, name: str) -> SpotRun:
        """Simulator only: serve the interruption notice to the current instance now.

        Raises:
            InvalidInputError: the backend cannot interrupt, or the run has no running instance.
        """
        from core.errors import InvalidInputError

        raise InvalidInputError("only the local simulator can interrupt an instance; EC2 does it on its own")

    def price_history(self, instance_types: list[str], *, days: float = 7) -> list[PricePoint]:
        """Spot prices of the types over the last days, oldest first (none without a price feed).

        Raises:
            BackendError, CredentialsError: the price feed failed.
        """
        return []

    def cleanup(self, name: str) -> list[str]:
        """Deletes what the ended run left behind and returns the names deleted (nothing by default).

        Raises:
            NotFoundError: no such run.
            InvalidInputError: the run still has instances.
        """
        self.describe(name)
        return []
