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
    "work": "Per-message CPU work and blocking wait (closed loop, 128 B); mixed: 1 message in "
            "N costs, the cheap ones' latency apart",
    "idle": "Idle connections: server memory per connection",
}

PROFILES = {
    # Latency cells get a longer window: a p99 over 10,000 samples moves with a single stall of
    # the machine (a virtual machine stalls for milliseconds now and then). Idle cells hold their
    # connections longer: a server that forks a process per connection needs seconds to take
    # 10,000 of them.
    # The default: few cells, each repeated 6 times - the fewest repeats that give a
    # distribution-free 95 % interval of the median - in about 10 minutes on a 2-core machine.
    #
    # Mixed work (the work scenario's mixed cells): 1 message in `mixed_every` of each
    # connection costs `mixed_sleep_us` of blocking wait (or `mixed_work_us` of CPU), the others
    # nothing; the cheap messages' p99 is the headline. How many costly messages a window holds:
    # a model that pays the cost on its one thread (every event loop) pays them one after the
    # other, so at 10 ms each at most 100 per second - fewer, as the 16 x 99 cheap messages
    # between take their turn - about 90/s; CPU work on the server's one CPU is capped at 100/s
    # for every model. 100 costly messages per cell would take a window of 1.1 s or more: for
    # 14 models x 6 repeats x 2 cells, 168 cells of 1.45 s with their warm-up, 4 minutes more
    # than the quick profile's 10. So quick has the blocking-wait cell only (the head-of-line
    # blocking that separates the models; CPU work on one CPU mostly shows the scheduler's time
    # slice), with a 0.5 s window: about 45 costly messages per cell for a one-thread loop
    # (270 over the 6 repeats), hundreds for a thread per connection; the cheap messages, the
    # headline, number thousands. 84 cells of ~0.85 s: 71 s.
    "quick": dict(duration=0.4, latency_duration=0.8, idle_duration=0.5, warmup=0.2, repeat=6,
                  connections=[1, 128],
                  rates=[20000], latency_connections=16,
                  churn_connections=4, reconnect=1,
                  sizes=[16384], size_connections=4,
                  work_us=[50], sleep_us=[], work_connections=16,
                  idle=[1000],
                  mixed_every=100, mixed_sleep_us=[10000], mixed_work_us=[],
                  mixed_duration=0.5),
    # A real study: longer windows, more points, repeats until the intervals are within +-5 %.
    "full": dict(duration=5.0, latency_duration=10.0, idle_duration=5.0, warmup=1.0,
                 repeat="auto",
                 connections=[1, 8, 32, 128, 512, 2048, 10000],
                 rates=[5000, 10000, 25000, 50000, 75000, 100000, 150000, 200000],
                 latency_connections=64, churn_connections=16, reconnect=1,
                 sizes=[64, 256, 1024, 4096, 16384, 65536], size_connections=4,
                 work_us=[10, 100], sleep_us=[100, 1000], work_connections=16,
                 idle=[1000, 10000],
                 # 5 s: about 450 costly messages per cell even for a one-thread loop.
                 mixed_every=100, mixed_sleep_us=[10000], mixed_work_us=[10000],
                 mixed_duration=5.0),
    # Seconds: for the tests of the bench itself.
    "tiny": dict(duration=0.3, latency_duration=0.3, idle_duration=0.5, warmup=0.1, repeat=1,
                 connections=[1, 4],
                 rates=[5000], latency_connections=4,
                 churn_connections=2, reconnect=1,
                 sizes=[64, 4096], size_connections=2,
                 work_us=[20], sleep_us=[200], work_connections=4,
                 idle=[100],
                 mixed_every=10, mixed_sleep_us=[2000], mixed_work_us=[2000],
                 mixed_duration=0.3),
}

# --repeat auto: every cell AUTO_MIN times (the fewest with a 95 % interval of the median), then
# again, one repeat at a time, each cell whose headline interval is wider than +-AUTO_TOLERANCE
# of its median, up to AUTO_MAX. From 6 to 8 values the interval is the min-max range, which a
# new value can only widen; at 9 it becomes the 2nd to the 8th value: the cap is where a cell
# can first narrow.
AUTO_MIN, AUTO_MAX, AUTO_TOLERANCE = 6, 9, 0.05

MESSAGE_SIZE = 128


@dataclass
class Settings:
    """Every setting of a run: a profile with the command line's overrides, resolved once.
    The fields are the keys of PROFILES, in their order (results.json meta.settings)."""
    duration: float          # measured window of a cell, seconds
    latency_duration: float  # ... of a latency cell
    idle_duration: float     # ... of an idle cell (how long connections are held)
    warmup: float
    repeat: object           # a count, or "auto" (AUTO_MIN to AUTO_MAX)
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
    mixed_every: int         # work scenario, mixed cells: message k costs when k % N == 0
    mixed_sleep_us: list     # ... their blocking wait per costly message (a cell each)
    mixed_work_us: list      # ... their CPU work per costly message (a cell each)
    mixed_duration: float    # ... their window

    @classmethod
    def resolve(cls, profile, **overrides):
        """The profile's settings with every override that is not None. An overridden duration
        is every scenario's window; a zero in work_us / sleep_us / mixed_*_us means none of
        that kind, a mixed_every of 0 no mixed cells."""
        values = dict(PROFILES[profile])
        if overrides.get("duration") is not None:
            overrides.update(latency_duration=overrides["duration"],
                             idle_duration=overrides["duration"],
                             mixed_duration=overrides["duration"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("work_us", "sleep_us", "mixed_sleep_us", "mixed_work_us"):
            values[key] = [v for v in values[key] if v > 0]
        if not values["mixed_every"]:
            values["mixed_sleep_us"], values["mixed_work_us"] = [], []
        return cls(**values)

    @property
    def auto(self):
        return self.repeat == "auto"

    @property
    def first_repeats(self):
        """The repeats every cell gets (then --repeat auto adds to the unsettled ones)."""
        return AUTO_MIN if self.auto else self.repeat

    def window(self, scenario, mixed=False):
        """The measured window of a scenario's cells (mixed: the work scenario's mixed
        cells), seconds."""
        if mixed:
            return self.mixed_duration
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
    status: str = "pending"   # ok | errors | unservable | unavailable | failed | interrupted
    reason: str = ""
    result: dict = field(default_factory=dict)
    # Added later (results.csv's last columns); defaults for runs written before them.
    attempt: int = 0          # 0, then 1 and 2 when a disturbed measurement is re-measured
    disturbed: bool = False   # platform stalls could explain the cell's figures (methodology)
    server_model: str = ""    # the model the series runs ("": the series' own name)
    server_options: str = ""  # a variant's server options
    threads: int = None       # the --threads the bench gave (a one-connection-per-worker pool)
    kernel_tuning: str = ""   # sysctls raised for the cell (--tune-kernel): "name=value,..."
    cost_every: int = 0       # a mixed work cell: only message k % cost_every == 0 costs

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
            cost = f"work={self.work_us}us" if self.work_us else f"sleep={self.sleep_us}us"
            return f"mixed every={self.cost_every} {cost}" if self.cost_every else cost
        return f"idle={self.connections}"

    def needs_costs(self):
        """True if the server must take per-message costs (--work-us, --sleep-us)."""
        return bool(self.work_us or self.sleep_us)

    def cost_options(self):
        """The echo-server options the cell sets itself, as [(option, value)]: a work cell's
        message size and costs; none for the others."""
        if not self.needs_costs():
            return []
        opts = [("--msg-size", self.size), ("--work-us", self.work_us),
                ("--sleep-us", self.sleep_us)]
        return opts + ([("--cost-every", self.cost_every)] if self.cost_every else [])

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

    def again(self):
        """A fresh copy of the cell for another attempt at the same repeat."""
        d = self.params()
        d.update(attempt=self.attempt + 1, disturbed=False)
        return Cell(**d)

    def another_repeat(self, repeat):
        d = self.params()
        d.update(repeat=repeat, attempt=0, disturbed=False)
        return Cell(**d)


def options_fixed_by(series, cell):
    """The options the cell sets itself (Cell.cost_options) that a variant's options fix too:
    the variant is left out of such a cell."""
    return [opt for opt, _ in cell.cost_options() if series.sets_option(opt)]


def cells_of_series(settings, series, scenarios, repeat, tune_kernel=False):
    """The cells of one series for one repeat, with those it cannot serve already marked."""
    p = settings
    name = series.name
    cells = []
    if "connections" in scenarios:
        cells += [Cell("connections", name, c) for c in p.connections]
    if "latency" in scenarios:
        cells += [Cell("latency", name, p.latency_connections, rate=r) for r in p.rates]
    if "churn" in scenarios:
        cells.append(Cell("churn", name, p.churn_connections, reconnect=p.reconnect))
    if "size" in scenarios:
        cells += [Cell("size", name, p.size_connections, size=s) for s in p.sizes]
    if "work" in scenarios:
        cells += [Cell("work", name, p.work_connections, work_us=w) for w in p.work_us]
        cells += [Cell("work", name, p.work_connections, sleep_us=s) for s in p.sleep_us]
        cells += [Cell("work", name, p.work_connections, sleep_us=s, cost_every=p.mixed_every)
                  for s in p.mixed_sleep_us]
        cells += [Cell("work", name, p.work_connections, work_us=w, cost_every=p.mixed_every)
                  for w in p.mixed_work_us]
    if "idle" in scenarios:
        cells += [Cell("idle", name, n, idle=True) for n in p.idle]
    model = series.model
    limit, why = model.connection_limit()
    no_costs = "" if model.supports_costs else (
        f"{model.name} does not support per-message costs (its --list --json says "
        "supports_costs false)")
    for cell in cells:
        cell.repeat = repeat
        if series.is_variant:
            cell.server_model = model.name
            cell.server_options = " ".join(series.options)
        cell.threads, pool_why = model.pool_for(cell.connections, series.given_threads())
        # Churn connections are short: a one-at-a-time server still serves them all.
        fixed = options_fixed_by(series, cell)
        if no_costs and cell.needs_costs():
            cell.status, cell.reason = "unservable", no_costs
        elif fixed:
            # Served, the cell would be another one under this one's name and setting.
            cell.status = "unservable"
            cell.reason = (f"the variant sets {', '.join(fixed)}, which this cell sets itself "
                           f"({cell.setting()}): a variant is left out of the cells that vary "
                           "an option it fixes")
        elif cell.scenario != "churn":
            if limit is not None and cell.connections > limit:
                cell.status = "unservable"
                cell.reason = f"{cell.connections} connections: {model.name} {why}"
            elif pool_why:
                cell.status = "unservable"
                cell.reason = f"{cell.connections} connections: {model.name} {pool_why}"
        if cell.status == "pending":
            tuning = []
            for k in model.kernel_limits:
                if cell.connections <= k.usable():
                    continue
                if tune_kernel:
                    tuning.append(f"{k.sysctl}={k.needed(cell.connections)}")
                else:
                    cell.status = "unservable"
                    cell.reason = (f"{cell.connections} connections: limited by {k.sysctl} = "
                                   f"{k.value} ({k.why}; {k.usable():,} connections with 10 % "
                                   "left to the rest of the system; --tune-kernel raises it)")
                    break
            if cell.status == "pending":
                cell.kernel_tuning = ",".join(tuning)
    return cells


def build_cells(settings, series, scenarios, tune_kernel=False, repeats=None):
    """Every cell of the run, repeat by repeat (each repeat covers everything once), with the
    cells a series cannot serve already marked. series: [models.Series]."""
    cells = []
    for rep in range(settings.first_repeats if repeats is None else repeats):
        for s in series:
            cells += cells_of_series(settings, s, scenarios, rep, tune_kernel)
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
