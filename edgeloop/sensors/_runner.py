"""Every device of a yard scenario, run as separate processes or as agents in this one.

::

    runner = YardRunner.from_scenario("calm", connect="tcp://127.0.0.1:5555", speed=10)
    runner.start()        # one `edgeloop device run` per device, or in-process agents
    runner.wait()         # until the scenario's last simulated second has played
    runner.stop()

A scenario's cameras become camera agents named as in the scenario; each trap zone
becomes a trap agent named after its zone. All of them share one ``start_at`` (the wall
time of simulated second 0), so processes started at different moments, or restarted,
agree on the simulated time. Processes write their device files, journals and the trap
catch log under ``run_dir``. A device process that dies is started again (with backoff:
0.1 s doubling to 5 s); it recovers its journal and rejoins the present.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import structlog

from edgeloop.sensors.device import (
    DeviceAgent,
    DeviceConfig,
    SourceConfig,
    TrapConfig,
    build_agent,
)
from edgeloop.sensors.world import Scenario, load_scenario

__all__ = ["YardRunner", "yard_devices", "device_toml"]

_log = structlog.get_logger("edgeloop.sensors.runner")

Mode = Literal["processes", "in-process"]


def yard_devices(
    scenario: str,
    *,
    connect: str,
    seed: int | None = None,
    speed: float = 1.0,
    run_dir: Path | None = None,
    node_key: str | None = None,
    keys: Path | None = None,
) -> list[DeviceConfig]:
    """The device configs of every camera and trap of ``scenario`` (a name or a path).

    ``keys`` is a directory holding each device's ``NAME.key_secret`` (CurveZMQ, with the
    node's public key ``node_key``)."""
    loaded: Scenario = load_scenario(scenario)
    source = SourceConfig(
        kind="yard",
        scenario=scenario,
        seed=loaded.seed if seed is None else seed,
        speed=speed,
    )
    catches = run_dir / "catches.jsonl" if run_dir is not None else None
    configs = [
        DeviceConfig(
            name=camera.id,
            node=connect,
            kind="camera",
            data_dir=run_dir / camera.id if run_dir is not None else None,
            node_key=node_key,
            secret_key=keys / f"{camera.id}.key_secret" if keys is not None else None,
            source=source,
        )
        for camera in loaded.cameras
    ]
    configs += [
        DeviceConfig(
            name=zone.id,
            node=connect,
            kind="trap",
            data_dir=run_dir / zone.id if run_dir is not None else None,
            node_key=node_key,
            secret_key=keys / f"{zone.id}.key_secret" if keys is not None else None,
            source=source,
            trap=TrapConfig(zone=zone.id, catches=catches),
        )
        for zone in loaded.zones
        if zone.trap
    ]
    return configs


def device_toml(config: DeviceConfig) -> str:
    """A device file that :func:`~edgeloop.sensors.device.load_device` reads back as
    ``config`` (the fields a runner sets)."""

    def q(value: object) -> str:
        return json.dumps(str(value))

    lines = ["[device]", f"name = {q(config.name)}", f"kind = {q(config.kind)}"]
    lines.append(f"node = {q(config.node)}")
    if config.data_dir is not None:
        lines.append(f"data_dir = {q(config.data_dir.resolve())}")
    if config.node_key is not None or config.secret_key is not None:
        lines.append("[device.security]")
        lines.append(f"mode = {q(config.security_mode)}")
        if config.node_key is not None:
            lines.append(f"node_key = {q(config.node_key)}")
        if config.secret_key is not None:
            lines.append(f"secret_key = {q(config.secret_key.resolve())}")
    source = config.source
    lines += ["[device.source]", f"kind = {q(source.kind)}"]
    if source.seed is not None:
        lines.append(f"seed = {source.seed}")
    lines.append(f"speed = {source.speed!r}")
    if source.scenario is not None:
        scenario = source.scenario
        if Path(scenario).exists():
            scenario = str(Path(scenario).resolve())
        lines.append(f"scenario = {q(scenario)}")
    if config.kind == "trap":
        lines += ["[device.trap]", f"zone = {q(config.trap.zone)}"]
        if config.trap.catches is not None:
            lines.append(f"catches = {q(config.trap.catches.resolve())}")
    return "\n".join(lines) + "\n"


class YardRunner:
    """Runs a scenario's devices (see the module docstring)."""

    def __init__(
        self,
        configs: list[DeviceConfig],
        *,
        mode: Mode = "processes",
        run_dir: Path | None = None,
        duration: float | None = None,
        log_format: str = "json",
        restart: bool = True,
    ) -> None:
        self.configs = configs
        self.mode: Mode = mode
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="edgeloop-yard-"))
        self.duration = duration
        self.log_format = log_format
        self.restart = restart
        self.start_at = 0.0
        self.agents: list[DeviceAgent] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped = threading.Event()
        self.restarts: dict[str, int] = {}
        """Device processes restarted after they died, by name."""
        self._watcher: threading.Thread | None = None

    @classmethod
    def from_scenario(
        cls,
        scenario: str,
        *,
        connect: str,
        mode: Mode = "processes",
        seed: int | None = None,
        speed: float = 1.0,
        run_dir: Path | None = None,
        node_key: str | None = None,
        keys: Path | None = None,
        restart: bool = True,
    ) -> YardRunner:
        """A runner for every device of ``scenario``; it lasts the scenario's duration."""
        if run_dir is None:
            run_dir = Path(tempfile.mkdtemp(prefix="edgeloop-yard-"))
        configs = yard_devices(
            scenario,
            connect=connect,
            seed=seed,
            speed=speed,
            run_dir=run_dir,
            node_key=node_key,
            keys=keys,
        )
        duration = load_scenario(scenario).duration / speed
        return cls(configs, mode=mode, run_dir=run_dir, duration=duration, restart=restart)

    def start(self, lead: float = 0.0) -> YardRunner:
        """Start every device; they share one ``start_at``: simulated second 0 is ``lead``
        seconds from now (time for every process to come up, so none misses the start)."""
        self.start_at = time.time() + lead
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for config in self.configs:
            if self.mode == "in-process":
                agent = build_agent(config, start_at=self.start_at)
                self.agents.append(agent.start())
            else:
                self.spawn(config.name)
        if self.mode == "processes" and self.restart:
            self._watcher = threading.Thread(
                target=self._supervise, name="edgeloop-yard-supervisor", daemon=True
            )
            self._watcher.start()
        _log.info(
            "yard_started",
            devices=[c.name for c in self.configs],
            mode=self.mode,
            run_dir=str(self.run_dir),
        )
        return self

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart, after a crash) the process of device ``name``."""
        config = next(c for c in self.configs if c.name == name)
        path = self.run_dir / f"{name}.toml"
        path.write_text(device_toml(config))
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edgeloop",
                    "device",
                    "run",
                    str(path),
                    "--start-at",
                    repr(self.start_at),
                    "--log-format",
                    self.log_format,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        self.processes[name] = process
        return process

    def _supervise(self) -> None:
        """Restart a device process that died (a crash, a ``kill -9``) with backoff: it
        recovers its journal and rejoins the present (the runner's ``start_at``)."""
        due: dict[str, float] = {}
        while not self._stopped.wait(0.1):
            now = time.monotonic()
            for name, process in list(self.processes.items()):
                if process.poll() is None or self._stopped.is_set():
                    continue
                count = self.restarts.get(name, 0)
                if name not in due:
                    due[name] = now + min(5.0, 0.1 * 2**count)
                    _log.warning("device_died", device=name, code=process.returncode)
                if now >= due[name]:
                    del due[name]
                    self.restarts[name] = count + 1
                    self.spawn(name)
                    _log.info("device_restarted", device=name, restarts=count + 1)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the scenario has played (plus a second for the last acks), a
        :meth:`stop`, or ``timeout``; whether the scenario finished."""
        played = None if self.duration is None else self.duration + 1.0
        limit = played if timeout is None else min(timeout, played or timeout)
        stopped = self._stopped.wait(limit)
        return not stopped and played is not None and limit == played

    def stop(self, timeout: float = 10.0) -> dict[str, int | None]:
        """Stop every device (SIGTERM, then SIGKILL after ``timeout``); the exit codes of
        the processes (``None`` for in-process agents)."""
        self._stopped.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        codes: dict[str, int | None] = {}
        for agent in self.agents:
            agent.stop()
            codes[agent.name] = None
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        _log.info("yard_stopped", codes=codes)
        return codes

    def catches(self) -> list[dict[str, object]]:
        """What the traps caught so far (ground truth), from the catch log."""
        path = self.run_dir / "catches.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def __enter__(self) -> YardRunner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
