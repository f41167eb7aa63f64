"""The scenarios of the bench and the cells they expand to.

A cell is one measurement: one model, one scenario, one setting (connections, rate, size, ...).
Profiles fix the settings; every setting can be overridden from the command line.
"""

import random
from dataclasses import dataclass, asdict, field

SCENARIOS = {
    "connections": "Throughput versus connections (closed loop, 128 B)",
    "latency": "Latency at fixed offered rates (open loop, 128 B)",
    "churn": "Connection churn: a new connection per request",
    "size": "Message size sweep (closed loop)",
    "work": "Per-message CPU work and blocking wait (closed loop, 128 B)",
    "idle": "Idle connections: server memory per connection",
}

PROFILES = {
    # Latency cells get a longer window: a p99 over 10,000 samples moves with a single stall of
    # the machine (a virtual machine stalls for milliseconds now and then). Idle cells hold their
    # connections longer: a server that forks a process per connection needs seconds to take
    # 10,000 of them.
    # Every model and every scenario, about 5 minutes on a 2-core machine.
    "quick": dict(duration=1.0, latency_duration=3.0, idle_duration=3.0, warmup=0.3, repeat=1,
                  connections=[1, 16, 128, 512],
                  rates=[10000, 50000, 100000], latency_connections=32,
                  churn_connections=8, reconnect=1,
                  sizes=[64, 1024, 16384, 65536], size_connections=4,
                  work_us=[50], sleep_us=[500], work_connections=16,
                  idle=[1000, 10000]),
    # A real study: longer windows, more points, three repeats for error bars.
    "full": dict(duration=5.0, latency_duration=10.0, idle_duration=5.0, warmup=1.0, repeat=3,
                 connections=[1, 8, 32, 128, 512, 2048, 10000],
                 rates=[5000, 10000, 25000, 50000, 75000, 100000, 150000, 200000],
                 latency_connections=64, churn_connections=16, reconnect=1,
                 sizes=[64, 256, 1024, 4096, 16384, 65536], size_connections=4,
                 work_us=[10, 100], sleep_us=[100, 1000], work_connections=16,
                 idle=[1000, 10000]),
    # Seconds: for the tests of the bench itself.
    "tiny": dict(duration=0.3, latency_duration=0.3, idle_duration=0.5, warmup=0.1, repeat=1,
                 connections=[1, 4],
                 rates=[5000], latency_connections=4,
                 churn_connections=2, reconnect=1,
                 sizes=[64, 4096], size_connections=2,
                 work_us=[20], sleep_us=[200], work_connections=4,
                 idle=[100]),
}

MESSAGE_SIZE = 128


@dataclass
class Settings:
    """Every setting of a run: a profile with the command line's overrides, resolved once.
    The fields are the keys of PROFILES, in their order (results.json meta.settings)."""
    duration: float          # measured window of a cell, seconds
    latency_duration: float  # ... of a latency cell
    idle_duration: float     # ... of an idle cell (how long connections are held)
    warmup: float
    repeat: int
    connections: list
    rates: list
    latency_connections: int
    churn_connections: int
    reconnect: int
    sizes: list
    size_connections: int
    work_us: list
    sleep_us: list
    work_connections: int
    idle: list

    @classmethod
    def resolve(cls, profile, **overrides):
        """The profile's settings with every override that is not None. An overridden duration
        is every scenario's window; a zero in work_us / sleep_us means none of that kind."""
        values = dict(PROFILES[profile])
        if overrides.get("duration") is not None:
            overrides.update(latency_duration=overrides["duration"],
                             idle_duration=overrides["duration"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["work_us"] = [w for w in values["work_us"] if w > 0]
        values["sleep_us"] = [s for s in values["sleep_us"] if s > 0]
        return cls(**values)

    def window(self, scenario):
        """The measured window of a scenario's cells, seconds."""
        return {"latency": self.latency_duration, "idle": self.idle_duration}.get(
            scenario, self.duration)

    def as_dict(self):
        return asdict(self)


@dataclass
class Cell:
    scenario: str
    model: str
    connections: int
    size: int = MESSAGE_SIZE
    pipeline: int = 1
    rate: float = 0.0
    reconnect: int = 0
    work_us: int = 0
    sleep_us: int = 0
    idle: bool = False
    repeat: int = 0
    status: str = "pending"   # ok | unservable | failed | interrupted
    reason: str = ""
    result: dict = field(default_factory=dict)

    def setting(self):
        """The cell's setting as short text, the same for every model."""
        if self.scenario == "connections":
            return f"c={self.connections}"
        if self.scenario == "latency":
            return f"rate={self.rate:.0f}"
        if self.scenario == "churn":
            return f"reconnect={self.reconnect} c={self.connections}"
        if self.scenario == "size":
            return f"size={self.size}"
        if self.scenario == "work":
            return f"work={self.work_us}us" if self.work_us else f"sleep={self.sleep_us}us"
        return f"idle={self.connections}"

    def key(self):
        """Identifies the cell across runs (for scripts/compare): scenario, model, setting."""
        return f"{self.scenario}/{self.model}/{self.setting()}"

    def slug(self):
        return self.key().replace("/", "_").replace("=", "").replace(" ", "_")

    def params(self):
        d = asdict(self)
        for k in ("status", "reason", "result"):
            d.pop(k)
        return d


def build_cells(settings, models, scenarios, workers):
    """Every cell of the run, repeats interleaved (each repeat covers everything once), with the
    cells a model cannot serve already marked."""
    p = settings
    cells = []
    for rep in range(p.repeat):
        for model in models:
            per_model = []
            if "connections" in scenarios:
                per_model += [Cell("connections", model.name, c) for c in p.connections]
            if "latency" in scenarios:
                per_model += [Cell("latency", model.name, p.latency_connections, rate=r)
                              for r in p.rates]
            if "churn" in scenarios:
                per_model.append(Cell("churn", model.name, p.churn_connections,
                                      reconnect=p.reconnect))
            if "size" in scenarios:
                per_model += [Cell("size", model.name, p.size_connections, size=s)
                              for s in p.sizes]
            if "work" in scenarios:
                per_model += [Cell("work", model.name, p.work_connections, work_us=w)
                              for w in p.work_us]
                per_model += [Cell("work", model.name, p.work_connections, sleep_us=s)
                              for s in p.sleep_us]
            if "idle" in scenarios:
                per_model += [Cell("idle", model.name, n, idle=True) for n in p.idle]
            limit, why = model.connection_limit(workers)
            for cell in per_model:
                cell.repeat = rep
                # Churn connections are short: a one-at-a-time server still serves them all.
                if limit is not None and cell.scenario != "churn" and cell.connections > limit:
                    cell.status = "unservable"
                    cell.reason = f"{cell.connections} connections: {model.name} {why}"
            cells += per_model
    return cells


def run_order(cells, seed):
    """The order the cells run in: each repeat whole before the next, its cells shuffled - so
    that a drift of the machine over a repeat (heat, another tenant) lands on every model alike
    instead of on whichever runs last - reproducibly from `seed`."""
    rng = random.Random(seed)
    order = []
    for rep in sorted({c.repeat for c in cells}):
        batch = [c for c in cells if c.repeat == rep]
        rng.shuffle(batch)
        order += batch
    return order
