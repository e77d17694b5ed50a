"""The simulated venue (a `Broker`) and the replay driver over recorded order books and trades."""

from serving.brokers.sim.replay import SimReplay
from serving.brokers.sim.venue import SimulatedVenue, ns_to_dt

__all__ = ["SimReplay", "SimulatedVenue", "ns_to_dt"]
